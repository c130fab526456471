"""The learner's parts that the train and sample commands use, from exercises/ (swaps applied) or solutions/.

    parts = load_parts("exercises")
    model = parts.GPT(parts.GPTConfig(...))          # 06 (and 01-05 inside it)
    parts.configure_optimizers(model, lr, ...)        # 07
    parts.train_step(model, optimizer, batches, ...)  # 08
    parts.generate(model, idx, 100)                   # 09

A part the learner has not written yet raises NotImplementedError("06 gpt: ...");
not_started() turns that into the sentence the commands print.
"""

import importlib
import re
import sys
from types import SimpleNamespace

IMPLS = ("exercises", "solutions")
TODO = re.compile(r"^(?P<id>\d\d) (?P<name>\w+): ")


def load_parts(impl: str) -> SimpleNamespace:
    """The classes and functions of one implementation, by name."""
    config = importlib.import_module(f"{impl}.config")
    gpt = importlib.import_module(f"{impl}.gpt")
    optim = importlib.import_module(f"{impl}.optim")
    train = importlib.import_module(f"{impl}.train")
    generate = importlib.import_module(f"{impl}.generate")
    return SimpleNamespace(
        impl=impl,
        GPTConfig=config.GPTConfig,
        GPT=gpt.GPT,
        configure_optimizers=optim.configure_optimizers,
        lr_at=optim.lr_at,
        get_batch=train.get_batch,
        train_step=train.train_step,
        estimate_loss=train.estimate_loss,
        generate=generate.generate,
    )


def not_started(error: BaseException, impl: str) -> str | None:
    """One sentence for an exercise's untouched TODO, or None if error is something else."""
    if not isinstance(error, NotImplementedError):
        return None
    match = TODO.match(str(error))
    if not match:
        return None
    from grader.registry import BY_ID

    if match["id"] not in BY_ID:
        return None
    label = BY_ID[match["id"]].label
    if impl == "solutions":
        return f"The reference solution raised {label}'s TODO ({error}); solutions/ should be complete."
    return (
        f"Your model cannot train yet: exercise {label} is not finished ({error}); finish it "
        f"(`pytest {BY_ID[match['id']].test_file}`) or swap in the reference with `python -m grader swap {match['id']}`."
    )


def exit_status(command, impl: str | None, expected: tuple) -> int:
    """command()'s status; an expected error or an exercise's untouched TODO prints its sentence and gives 2."""
    try:
        return command()
    except expected as error:
        print(error, file=sys.stderr)
        return 2
    except NotImplementedError as error:
        message = not_started(error, impl or "exercises")
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 2
