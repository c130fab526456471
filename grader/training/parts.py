"""The learner's parts that the train and sample commands use, from exercises/ (swaps applied) or solutions/.

    parts = load_parts("exercises")
    model = parts.GPT(parts.GPTConfig(...))          # 06 (and 01-05 inside it)
    parts.configure_optimizers(model, lr, ...)        # 07
    parts.train_step(model, optimizer, batches, ...)  # 08
    parts.generate(model, idx, 100)                   # 09

A part the learner has not written yet raises NotImplementedError("06 gpt: ...");
not_started() turns that into the sentence the commands print. Before a command starts,
require_parts() finds every unfinished part the run would reach, all at once: it runs the
command's calls on a shrunken copy of the model once with the learner's code, and, if a TODO
is reached, once per exercise with only that exercise's file the learner's (every other module
the reference's source, loaded under the learner's package so that relative imports reach the
learner's file), and names each exercise whose TODO was reached.
"""

import contextlib
import dataclasses
import importlib
import importlib.util
import re
import sys
from pathlib import Path
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
    except (UnfinishedParts, *expected) as error:
        print(error, file=sys.stderr)
        return 2
    except NotImplementedError as error:
        message = not_started(error, impl or "exercises")
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 2


class UnfinishedParts(Exception):
    """The parts a command needs that are not written yet: one sentence naming all of them."""


def require_parts(config, needs, command: str) -> None:
    """UnfinishedParts naming every exercise whose TODO the command's calls would reach (swaps applied).
    needs: the probes to run, of "model" (GPT(config), forward with targets, backward), "optimizer"
    (configure_optimizers, lr_at), "train_step" (get_batch, train_step, estimate_loss) and "generate"."""
    from grader.registry import BY_ID

    found = _reached(None, config, needs)
    if not found:
        return
    from grader.registry import MODULE_EXERCISES
    from grader.swaps import SwapFileError, read

    try:
        swapped = read()
    except SwapFileError:
        swapped = []
    todos = dict(found)
    for ex in MODULE_EXERCISES:
        if ex not in swapped:
            todos.update(_reached(ex, config, needs))
    ids = sorted(todos)
    listed = "; ".join(f"{BY_ID[i].label} ({todos[i]})" for i in ids)
    count = "an exercise it needs is" if len(ids) == 1 else f"{len(ids)} exercises it needs are"
    raise UnfinishedParts(
        f"Your model cannot {command} yet: {count} not finished: {listed}. Finish "
        f"{'it' if len(ids) == 1 else 'them'} (`python -m grader` shows where you are), or let the reference "
        f"stand in for now: python -m grader swap {' '.join(ids)}"
    )


def _reached(only, config, needs) -> dict:
    """{exercise id: its TODO's text} for the TODOs the calls reach, with only `only`'s file the learner's
    (None: every file the learner's)."""
    import torch

    from grader.registry import BY_ID

    with _learner_only(only) as package:
        try:
            _probe(package, config, needs, torch)
        except NotImplementedError as error:
            match = TODO.match(str(error))
            if match and match["id"] in BY_ID:
                return {match["id"]: str(error)[match.end():]}
            raise
        except SyntaxError as error:  # a learner's file that does not compile
            from grader.registry import BY_NAME

            ex = BY_NAME.get(Path(error.filename or "").stem)
            if ex is not None:
                return {ex.id: f"exercises/{ex.name}.py, line {error.lineno}: {error.msg}"}
            raise
        except Exception:  # a bug, not a TODO: the real run reports it with its own message
            return {}
    return {}


def _probe(package, config, needs, torch):
    """The command's calls on a shrunken copy of the model: one layer, 8 channels a head, 4 tokens."""
    cfg = dataclasses.replace(config, n_layer=1, n_embd=config.n_head * 8, mlp_hidden=None, dropout=0.0)
    module = lambda name: importlib.import_module(f"{package}.{name}")  # noqa: E731
    state = torch.get_rng_state()
    try:
        torch.manual_seed(0)
        T = min(4, cfg.block_size)
        idx = torch.randint(cfg.vocab_size, (1, T))
        model = module("gpt").GPT(cfg)
        _, loss = model(idx, idx)
        loss.backward()
        if "optimizer" in needs or "train_step" in needs:
            optimizer = module("optim").configure_optimizers(model, 1e-3)
            module("optim").lr_at(0, 10, 100, 1e-3, 1e-4)
        if "train_step" in needs:
            train = module("train")
            data = torch.arange(4 * T + 2) % cfg.vocab_size
            x, y = train.get_batch(data, 1, T)
            train.train_step(model, optimizer, [(x, y)])
            train.estimate_loss(model, data, 1, T, 1)
        if "generate" in needs:
            module("generate").generate(model, idx, 2)
    finally:
        torch.set_rng_state(state)


@contextlib.contextmanager
def _learner_only(only):
    """exercises.* as the learner's (only=None), or with only that exercise's file the learner's."""
    from grader.registry import MODULE_EXERCISES, ROOT

    ours = lambda name: name == "exercises" or name.startswith("exercises.")  # noqa: E731
    saved = {name: mod for name, mod in sys.modules.items() if ours(name)}
    for name in saved:
        del sys.modules[name]
    try:
        importlib.import_module("exercises")  # applies swaps.txt: swapped modules are the reference's
        if only is not None:
            for ex in MODULE_EXERCISES:  # course order: every module's dependencies come before it
                name = f"exercises.{ex.name}"
                if name in sys.modules:
                    continue
                if ex is only:
                    importlib.import_module(name)
                    continue
                spec = importlib.util.spec_from_file_location(name, ROOT / "solutions" / f"{ex.name}.py")
                mod = importlib.util.module_from_spec(spec)
                sys.modules[name] = mod
                spec.loader.exec_module(mod)
        yield "exercises"
    finally:
        for name in [n for n in sys.modules if ours(n)]:
            del sys.modules[name]
        sys.modules.update(saved)


SECOND_HALF = {"10": "kv_cache", "11": "bpe", "12": "muon", "13": "checkpoint", "14": "speed"}


def second_half(impl: str, ex_id: str):
    """(module, whose) for a part of exercises 10-14 a command uses: the learner's once that exercise passes
    on its current files (grader/passed.py), the reference's until then; whose is a phrase for the header."""
    from grader import passed, swaps
    from grader.project import Project
    from grader.registry import BY_ID

    name = SECOND_HALF[ex_id]
    if impl == "solutions":
        return importlib.import_module(f"solutions.{name}"), "the reference's"
    try:
        swapped = swaps.read()
    except swaps.SwapFileError:
        swapped = []
    which, whose = passed.learner_or_reference(Project.at(None), BY_ID[ex_id], swapped)
    return importlib.import_module(f"{which}.{name}"), whose


def why_not_yours(whose: str) -> str:
    """The reason in a second_half phrase, "the reference's (your 13 checkpoint is not started)" -> "your 13
    checkpoint is not started"."""
    return whose.split("(", 1)[1].rstrip(")")


def swaps_of_run(ckpt, impl: str) -> str | None:
    """For sample and inspect: the swaps a run trained with stand in again (its weights were trained with those
    modules), whatever swaps.txt says now. Call before `exercises` is imported. A sentence when they differ from
    swaps.txt's, else None."""
    import os

    from grader import swaps

    ids = ckpt["run"].get("swapped")
    if impl != "exercises" or ids is None or "exercises" in sys.modules:
        return None  # a checkpoint of the earlier layout, the reference, or this process has chosen already
    try:
        now = [ex.id for ex in swaps.read()]
    except swaps.SwapFileError:
        now = None
    os.environ[swaps.RUN_SWAPS] = ",".join(ids)
    if now == list(ids):
        return None
    if not ids:
        return "This run trained with none of the reference swapped in, so none is now either (swaps.txt aside)."
    return (f"This run trained with {', '.join(ids)} swapped in, so the reference stands in for them again "
            f"(swaps.txt aside).")
