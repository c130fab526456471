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
    python -m grader train ...        train your GPT (grader/train.py)
    python -m grader sample ...       sample from a trained GPT (grader/sample.py)

Options for every command (before or after it): --impl exercises|solutions, --format
text|json|gradescope|junit, --output PATH, --timeout SECONDS (per test), --root DIR.
Exit status: 0 when the command ran (whatever the score); 1 when `solution` declines;
2 for bad usage or a malformed file (one sentence; nothing is changed).
"""

import argparse
import importlib
import os
import sys
from datetime import datetime
from pathlib import Path

from . import formats, report, state, swaps
from .progress import Progress, compute, fully_swapped
from .project import KataError, Project
from .registry import EXERCISES, MODULE_EXERCISES, Exercise, find

IMPLS = ("exercises", "solutions")
FORMATS = ("text", "json", "gradescope", "junit")
DEFAULTS = dict(impl="exercises", format="text", output=None, timeout=None, root=None, verbose=False)
VALUE_OPTIONS = ("--impl", "--format", "--output", "-o", "--timeout", "--root")
PASSTHROUGH = ("train", "sample")


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise KataError(f"{self.prog}: {message} (see `{self.prog} --help`).")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("the time limit must be above 0 seconds")
    return value


def build_parser(prog: str) -> Parser:
    common = Parser(add_help=False, prog=prog)
    common.add_argument("--impl", choices=IMPLS, default=argparse.SUPPRESS,
                        help="which implementation to grade: your exercises/ (default) or the reference solutions/")
    common.add_argument("--format", choices=FORMATS, default=argparse.SUPPRESS,
                        help="text (default), json, gradescope (writes results.json) or junit (XML)")
    common.add_argument("--output", "-o", metavar="PATH", default=argparse.SUPPRESS,
                        help="write json/junit there instead of stdout; gradescope's results.json path "
                             "(default /autograder/results/results.json when that folder exists, else ./results.json)")
    common.add_argument("--timeout", type=_seconds, metavar="SECONDS", default=argparse.SUPPRESS,
                        help="time limit per test (default 30; the end-to-end test gets max(10x, 300))")
    common.add_argument("--root", metavar="DIR", default=argparse.SUPPRESS,
                        help="the project folder (default: the checkout this grader belongs to)")
    common.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS,
                        help="check: list every passing test too")
    parser = Parser(prog=prog, parents=[common], description=__doc__.split("\n\n")[0],
                    epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=Parser)

    def command(name, help_text):
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text)

    command("check", "run one exercise's tests and show every message in full").add_argument("exercise")
    command("list", "every exercise with its state, one line each")
    hint = command("hint", "show one more hint for an exercise (remembered in .kata/state.json)")
    hint.add_argument("exercise")
    hint.add_argument("--all", action="store_true", help="show every hint")
    command("swap", "let the reference stand in for exercises (ids, or `all`); your files stay as they are") \
        .add_argument("exercises", nargs="+", metavar="exercise")
    command("unswap", "use your own files again for exercises (ids, or `all`)") \
        .add_argument("exercises", nargs="+", metavar="exercise")
    command("swaps", "list the swapped exercises")
    watch = command("watch", "re-run the current exercise whenever a file in exercises/ is saved")
    watch.add_argument("exercise", nargs="?", help="start here instead of at the first one left to do")
    watch.add_argument("--poll", action="store_true", help="check files every second instead of using watchdog")
    command("reset", "a fresh exercise file; yours is saved to .kata/backups/ first").add_argument("exercise")
    solution = command("solution", "show the reference once your version passes")
    solution.add_argument("exercise")
    solution.add_argument("--give-up", action="store_true",
                          help="show it now; the report records it and the exercise scores nothing")
    for name in PASSTHROUGH:
        sub.add_parser(name, help=f"{name} (grader/{name}.py; its own options follow, see `{prog} {name} --help`)",
                       add_help=False)
    return parser


# --- running the tests ----------------------------------------------------------------------


def read_swaps(project: Project) -> list[Exercise]:
    try:
        return swaps.read(project.swap_file)
    except swaps.SwapFileError as error:
        raise KataError(f"{error} Nothing was changed.") from None


def grade(project: Project, args, exercises=EXERCISES, overview: bool = False) -> Progress:
    """Run the tests of these exercises (minus the swapped ones) in one pytest session; their progress.

    overview: an untouched exercise's tests are not run, only reported as not started (fast on a fresh checkout).
    """
    from .runner import DEFAULT_TIMEOUT, run_tests  # imports pytest: only for commands that run tests

    if args.impl == "exercises":
        project.require_exercises()
        swapped, gave_up = read_swaps(project), state.load(project).gave_up
    else:  # the reference: no swaps, no give-ups
        swapped, gave_up = [], {}
    run = [ex for ex in exercises if not fully_swapped(ex, swapped)]
    result = run_tests(project, run, impl=args.impl, timeout=args.timeout or DEFAULT_TIMEOUT, skip_untouched=overview)
    return compute(project, result, swapped, gave_up, exercises)


def emit(progress: Progress, args, con, text) -> None:
    """Print or write the progress in the format asked for; text(progress, con) draws the text screen."""
    if args.format == "text":
        text(progress, con)
        return
    if args.format == "gradescope":
        path = formats.gradescope_path(args.output)
        write(path, formats.dumps(formats.gradescope(progress)))
        print(f"wrote {path}: {progress.score}/{progress.max_score} points")
        return
    body = formats.dumps(formats.as_json(progress)) if args.format == "json" else formats.junit(progress)
    if args.output:
        write(Path(args.output), body)
        print(f"wrote {args.output}: {progress.score}/{progress.max_score} points")
    else:
        sys.stdout.write(body)


def write(path: Path, body: str) -> None:
    if not path.parent.is_dir():
        raise KataError(f"Cannot write {path}: the folder {path.parent} does not exist.")
    try:
        path.write_text(body, encoding="utf-8")
    except OSError as error:
        raise KataError(f"Cannot write {path} ({error.strerror or error}).") from None


# --- commands -------------------------------------------------------------------------------


def cmd_home(project, args, con) -> int:
    emit(grade(project, args, overview=True), args, con, report.home)
    return 0


def cmd_list(project, args, con) -> int:
    emit(grade(project, args, overview=True), args, con, report.listing)
    return 0


def cmd_check(project, args, con) -> int:
    ex = find(args.exercise)
    progress = grade(project, args, [ex])
    emit(progress, args, con, lambda p, c: report.exercise(p.of(ex), c, verbose=args.verbose))
    return 0


def cmd_hint(project, args, con) -> int:
    ex = find(args.exercise)
    memory = state.load(project)
    shown = memory.hints.get(ex.id, 0)
    count = len(ex.hints) if args.all else min(shown + 1, len(ex.hints))
    show_hints(ex, count, previously=shown, con=con)
    if count != shown:
        memory.hints[ex.id] = count
        state.save(project, memory)
    return 0


def show_hints(ex: Exercise, count: int, previously: int, con) -> None:
    from rich.text import Text

    con.print(Text(f"Hints for {ex.label} — {ex.title}", style="bold"))
    for i, hint in enumerate(ex.hints[:count], start=1):
        new = i > previously
        con.print(Text(f"{i}/{len(ex.hints)}. ", style="bold" if new else "dim"),
                  Text(hint, style="" if new else "dim"))
    if count < len(ex.hints):
        con.print(Text(f"`python -m grader hint {ex.id}` again for the next one "
                       f"({len(ex.hints) - count} left), or --all.", style="dim"))
    elif previously >= len(ex.hints):
        con.print(Text(f"That is every hint. Still stuck? `python -m grader swap {ex.id}` lets the reference stand "
                       f"in while you go on; `python -m grader solution {ex.id} --give-up` shows it.", style="dim"))
    else:
        con.print(Text("That was the last hint.", style="dim"))


def exercises_of(keys: list[str]) -> list[Exercise]:
    if [k.lower() for k in keys] == ["all"]:
        return list(MODULE_EXERCISES)
    chosen = []
    for key in keys:
        ex = find(key)
        if not ex.has_module:
            raise KataError(f"{ex.label} has no module of its own to swap (it runs your 01-09); swap those instead.")
        if ex not in chosen:
            chosen.append(ex)
    return chosen


def cmd_swap(project, args, con) -> int:
    chosen = exercises_of(args.exercises)
    project.require_exercises()
    current = read_swaps(project)
    added = [ex for ex in chosen if ex not in current]
    for ex in chosen:
        if ex not in added:
            print(f"{ex.label} is already swapped.")
    if added:
        swaps.write(current + added, project.swap_file)
        for ex in added:
            print(f"Swapped {ex.label}: the reference stands in for {ex.exercise_file} in the tests and every "
                  f"grader command; your file is untouched. Undo with `python -m grader unswap {ex.id}`.")
        print("Swapped exercises show as swapped and score no points.")
    return 0


def cmd_unswap(project, args, con) -> int:
    chosen = exercises_of(args.exercises)
    current = read_swaps(project)
    for ex in chosen:
        if ex in current:
            print(f"Unswapped {ex.label}: its tests check your {ex.exercise_file} again.")
        else:
            print(f"{ex.label} was not swapped.")
    remaining = [ex for ex in current if ex not in chosen]
    if remaining != current:
        swaps.write(remaining, project.swap_file)
    return 0


def cmd_swaps(project, args, con) -> int:
    current = read_swaps(project)
    if not current:
        print("No exercise is swapped.")
    for ex in current:
        print(f"{ex.label}  (the reference stands in for {ex.exercise_file})")
    return 0


def cmd_reset(project, args, con) -> int:
    from .scaffold import ScaffoldError, strip_solutions

    ex = find(args.exercise)
    if not ex.has_module:
        raise KataError(f"{ex.label} has no exercise file to reset (it runs your 01-09).")
    project.require_exercises()
    source = project.solution_file(ex)
    try:
        fresh = strip_solutions(source.read_text(encoding="utf-8"), ex.label, source.name)
    except (OSError, ScaffoldError) as error:
        raise KataError(f"Cannot make a fresh {ex.exercise_file} from solutions/{source.name} ({error}).") from None
    target = project.exercise_file(ex)
    if target.is_file():
        mine = target.read_bytes()
        if mine == fresh.encode("utf-8"):
            print(f"{ex.exercise_file} is already fresh; nothing to do.")
            return 0
        backup = backup_path(project, ex)
        backup.parent.mkdir(parents=True, exist_ok=True)
        backup.write_bytes(mine)
        target.write_text(fresh, encoding="utf-8")
        print(f"Saved your {ex.exercise_file} to {backup.relative_to(project.root)} and put a fresh one in its place.")
    else:
        target.write_text(fresh, encoding="utf-8")
        print(f"Put a fresh {ex.exercise_file} in place (there was no file to save).")
    return 0


def backup_path(project: Project, ex: Exercise) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = project.backups / f"{ex.name}-{stamp}.py"
    n = 1
    while path.exists():
        path = project.backups / f"{ex.name}-{stamp}-{n}.py"
        n += 1
    return path


def cmd_solution(project, args, con) -> int:
    ex = find(args.exercise)
    if not ex.has_module:
        raise KataError(f"{ex.label} has no reference module; it runs your 01-09 (see {ex.test_file}).")
    memory = state.load(project)
    if args.impl != "exercises":
        raise KataError("`solution` is about your own exercises/; drop --impl solutions.")
    if ex.id in memory.gave_up:
        return show_solution(project, ex, con)
    swapped = ex in read_swaps(project)
    if not swapped:
        status = grade(project, args, [ex]).of(ex)
        if status.state == "passed":
            return show_solution(project, ex, con)
        why = f"{ex.label} is {status.label}"
    else:
        why = f"{ex.label} is swapped, so its tests check the reference, not yours"
    if not args.give_up:
        print(f"{why}: the reference shows once your own version passes. `python -m grader hint {ex.id}` helps; "
              f"`python -m grader solution {ex.id} --give-up` shows it now (the report then says you gave up and "
              f"the exercise scores nothing).")
        return 1
    memory.gave_up[ex.id] = state.now()
    state.save(project, memory)
    print(f"Recorded: you gave up on {ex.label} ({memory.gave_up[ex.id]}); it will score no points.")
    return show_solution(project, ex, con)


def show_solution(project: Project, ex: Exercise, con) -> int:
    path = project.solution_file(ex)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise KataError(f"Cannot read solutions/{path.name} ({error.strerror or error}).") from None
    con.print(f"# solutions/{path.name} — the reference for {ex.label}", highlight=False, markup=False)
    if con.is_terminal:
        from rich.syntax import Syntax

        con.print(Syntax(text, "python", line_numbers=False))
    else:
        sys.stdout.write(text)
    return 0


def cmd_watch(project, args, con) -> int:
    from .watch import Watch

    project.require_exercises()
    read_swaps(project), state.load(project)  # stop now on a malformed swap or state file
    start = find(args.exercise) if args.exercise else None
    return Watch(project, con, impl=args.impl, timeout=args.timeout, poll=args.poll, start=start).run()


COMMANDS = dict(check=cmd_check, list=cmd_list, hint=cmd_hint, swap=cmd_swap, unswap=cmd_unswap, swaps=cmd_swaps,
                watch=cmd_watch, reset=cmd_reset, solution=cmd_solution)


# --- train and sample: handed over to their own modules -------------------------------------


def split_passthrough(argv: list[str]):
    """(options before, command, arguments after) when the command is train or sample; else None."""
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
    try:
        module = importlib.import_module(f"grader.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"grader.{name}":
            raise
        print(f"The {name} command is not available yet: grader/{name}.py does not exist.", file=sys.stderr)
        return 2
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
    try:
        split = split_passthrough(argv)
        if split is not None:
            return passthrough(*split)
        try:
            args = build_parser(prog).parse_args(argv)
        except SystemExit as done:  # --help
            return int(done.code or 0)
        for key, value in DEFAULTS.items():
            if not hasattr(args, key):
                setattr(args, key, value)
        project = Project.at(args.root)
        con = report.console()
        return COMMANDS.get(args.command, cmd_home)(project, args, con)
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
