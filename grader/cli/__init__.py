"""python -m grader (or `kata`): your progress, one exercise in full, hints, swaps, watch mode, grading output.

    python -m grader                  every exercise's state, points, progress and the next step
    python -m grader check NN         one exercise, with every failure's whole message
    python -m grader list             every exercise with its state, one line each
    python -m grader hint NN [--all]  one more hint each time (or all of them)
    python -m grader swap NN...       the reference stands in for exercises/<module>.py (`all` for every one)
    python -m grader unswap NN...     your own file again
    python -m grader swaps            what is swapped
    python -m grader watch            re-run the current exercise whenever you save a file in exercises/
    python -m grader reset NN         a fresh exercise file (yours is saved to .kata/backups/ first)
    python -m grader solution NN      the reference, once yours passes (or with --give-up, which the report shows)
    python -m grader train ...        train your GPT (grader/training/train.py)
    python -m grader sample ...       sample from a trained GPT (grader/training/sample.py)
    python -m grader speed ...        how much each of exercise 14's steps speeds up your model's training
    python -m grader trace ...        one forward pass of your GPT as a call tree: shapes, statistics, the next TODO
    python -m grader inspect RUN      attention maps, next-token top-k, parameter counts, training statistics
    python -m grader experiment ...   short trainings that vary one setting, compared on one plot

Options (before or after the command): --impl exercises|solutions, --timeout SECONDS (per
test), --root DIR; for the reports (the overview, list, check) --format
text|json|gradescope|junit and --output PATH.
Exit status: 0 when the command ran (whatever the score); 1 when `check`'s exercise does not
pass yet or `solution` declines; 2 for bad usage or a malformed swaps.txt (one sentence;
nothing is changed; a malformed .kata/state.json is reported and ignored).
"""

import importlib
import os
import sys
from pathlib import Path

from .. import screens
from ..project import KataError, Project
from . import commands, files
from .parser import DEFAULTS, IMPLS, PASSTHROUGH, PASSTHROUGH_MODULES, VALUE_OPTIONS, build_parser

REPORTS = (None, "list", "check")  # the commands that write a report: --format and --output go with them
COMMANDS = dict(check=commands.cmd_check, list=commands.cmd_list, hint=commands.cmd_hint, swap=files.cmd_swap,
                unswap=files.cmd_unswap, swaps=files.cmd_swaps, watch=commands.cmd_watch, reset=files.cmd_reset,
                solution=commands.cmd_solution)


# --- train and sample: handed over to their own modules -------------------------------------


def split_passthrough(argv: list[str]):
    """(options before, command, arguments after) when the command is train, sample, trace, inspect or experiment; else None."""
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in VALUE_OPTIONS:
            i += 2
            continue
        if token.startswith("-"):
            i += 1
            continue
        return (argv[:i], token, argv[i + 1:]) if token in PASSTHROUGH else None
    return None


def _take_impl(tokens: list[str]):
    """(impl or None, tokens without --impl)."""
    impl, rest, i = None, [], 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--impl":
            if i + 1 >= len(tokens):
                raise KataError("--impl needs a value: exercises or solutions.")
            impl, i = tokens[i + 1], i + 2
            continue
        if token.startswith("--impl="):
            impl = token.split("=", 1)[1]
        else:
            rest.append(token)
        i += 1
    if impl is not None and impl not in IMPLS:
        raise KataError(f"--impl must be exercises or solutions, not {impl!r}.")
    return impl, rest


def passthrough(before: list[str], name: str, after: list[str]) -> int:
    impl, before = _take_impl(before)
    if before:
        raise KataError(f"Only --impl may come before `{name}`; put its other options after it.")
    impl_after, after = _take_impl(after)
    impl = impl_after or impl
    module = importlib.import_module(PASSTHROUGH_MODULES.get(name, f"grader.training.{name}"))
    if impl:
        os.environ["KATA_IMPL"] = impl
        after = ["--impl", impl, *after]
    return module.main(after)


# --- entry point ----------------------------------------------------------------------------


def program_name() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m grader" if name in ("", "__main__.py", "-c") else name


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = program_name()
    commands.WARNED.clear()  # once per command (a notebook runs many in one process)
    try:
        split = split_passthrough(argv)
        if split is not None:
            return passthrough(*split)
        try:
            args = build_parser(prog, __doc__).parse_args(argv)
        except SystemExit as done:  # --help
            return int(done.code or 0)
        report_options = [f"--{key}" for key in ("format", "output") if hasattr(args, key)]
        if report_options and args.command not in REPORTS:
            raise KataError(f"{report_options[0]} goes with the overview, `list` and `check` (the reports), "
                            f"not `{args.command}`.")
        for key, value in DEFAULTS.items():
            if not hasattr(args, key):
                setattr(args, key, value)
        project = Project.at(args.root)
        con = screens.console()
        return COMMANDS.get(args.command, commands.cmd_home)(project, args, con)
    except KataError as error:
        print(error, file=sys.stderr)
        return 2
    except ValueError as error:  # registry.find: an unknown exercise
        if "There is no exercise" not in str(error):
            raise
        print(error, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
