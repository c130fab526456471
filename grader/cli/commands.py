"""The commands that read: the overview, list, check, hint, solution, watch.

Each runs the tests it needs in one in-process pytest session (grader/plugin/runner.py)
and draws the result with grader/screens/.
"""

import io
import sys
from pathlib import Path

from .. import passed, screens, state, swaps
from ..progress import Progress, compute, fully_swapped
from ..project import KataError, Project
from ..registry import EXERCISES, Exercise, dependencies, find
from ..screens import formats, overview
from ..screens.exercise import exercise as exercise_screen, show_hints


# --- running the tests ----------------------------------------------------------------------


def read_swaps(project: Project, writing: bool = False) -> list[Exercise]:
    """The swapped exercises; a malformed swaps.txt stops the command (one sentence)."""
    try:
        return swaps.read(project.swap_file)
    except swaps.SwapFileError as error:
        raise KataError(f"{error}{' Nothing was changed.' if writing else ''}") from None


def grade(project: Project, args, focus: Exercise | None = None) -> Progress:
    """Run the tests the state of these exercises needs (minus the swapped ones) in one pytest session.

    focus None (the overview): every exercise; an untouched file's tests are reported not started
    without running (fast on a fresh checkout). focus an exercise (check, solution): it, every test
    run, and the dependencies its state depends on ("blocked by"), which may take the fast path.
    """
    from ..plugin.isolated import IsolatedRun  # imports pytest: only for commands that run tests
    from ..plugin.runner import DEFAULT_TIMEOUT

    if args.impl == "exercises":
        project.require_exercises()
        swapped, gave_up = read_swaps(project), remembered(project).gave_up
    else:  # the reference: no swaps, no give-ups
        swapped, gave_up = [], {}
    if focus is None:
        exercises, skip = list(EXERCISES), True
    else:
        deps = dependencies(focus, swapped)
        exercises, skip = [*deps, focus], deps
    run = [ex for ex in exercises if not fully_swapped(ex, swapped)]
    # in a fork of this process: a learner's file that crashes the interpreter (os._exit, a segfault) ends the
    # run, not the command (grader/plugin/isolated.py)
    before = passed.keys(project, exercises, swapped)
    result, crash = IsolatedRun(project, run, impl=args.impl, timeout=args.timeout or DEFAULT_TIMEOUT,
                                skip_untouched=skip).result()
    if crash:
        raise KataError(f"{crash[0].upper()}{crash[1:]}: look at what your last change does when its file is "
                        f"imported or run (`pytest {run[0].test_file if len(run) == 1 else 'tests/'}` shows it).")
    progress = compute(project, result, swapped, gave_up, exercises)
    passed.record(project, progress, swapped, before)
    return progress


WARNED: set = set()  # projects whose malformed state file this command has reported already


def remembered(project: Project) -> state.State:
    """The hints shown and give-ups; a malformed .kata/state.json is reported once and read as empty."""
    memory, problem = state.read(project)
    if problem and project.root not in WARNED:
        WARNED.add(project.root)
        print(f"{problem} It is ignored (never rewritten) until you fix or delete it.", file=sys.stderr)
    return memory


def emit(progress: Progress, args, con, text) -> None:
    """Print or write the progress in the format asked for; text(progress, con) draws the text screen."""
    if args.format == "gradescope":
        path = formats.gradescope_path(args.output)
        write(path, formats.dumps(formats.gradescope(progress)))
        print(f"wrote {path}: {progress.score}/{progress.max_score} points")
        return
    if args.format == "text":
        if not args.output:
            text(progress, con)
            return
        buffer = io.StringIO()
        text(progress, screens.console(buffer))
        body = buffer.getvalue()
    else:
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
    emit(grade(project, args), args, con, overview.home)
    return 0


def cmd_list(project, args, con) -> int:
    emit(grade(project, args), args, con, overview.listing)
    return 0


def cmd_check(project, args, con) -> int:
    """Exit status 0 when the exercise passes, 1 when it does not (as pytest's)."""
    ex = find(args.exercise)
    progress = grade(project, args, focus=ex)
    emit(progress, args, con, lambda p, c: exercise_screen(p.of(ex), c, verbose=args.verbose))
    return 0 if progress.of(ex).state == "passed" else 1


def cmd_hint(project, args, con) -> int:
    ex = find(args.exercise)
    shown, count, problem = state.reveal_hints(project, ex, every=args.all)
    show_hints(ex, count, previously=shown, con=con, remembered=not problem)
    if problem:
        print(f"{problem} Hints are not remembered until you fix or delete it (it is never rewritten).",
              file=sys.stderr)
    return 0


def cmd_solution(project, args, con) -> int:
    ex = find(args.exercise)
    if not ex.has_module:
        raise KataError(f"{ex.label} has no reference module; it runs your other exercises (see {ex.test_file}).")
    if args.impl != "exercises":
        raise KataError("`solution` is about your own exercises/; drop --impl solutions.")
    # giving up is recorded, so a malformed state file stops --give-up here (exit 2); else it is only read
    memory = state.load(project) if args.give_up else remembered(project)
    if ex.id in memory.gave_up:
        return show_solution(project, ex, con)
    swapped = ex in read_swaps(project)
    if not swapped:
        status = grade(project, args, focus=ex).of(ex)
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
    text = without_markers(text)
    con.print(f"# solutions/{path.name} — the reference for {ex.label}", highlight=False, markup=False)
    if con.is_terminal:
        from rich.syntax import Syntax

        con.print(Syntax(text, "python", line_numbers=False))
    else:
        sys.stdout.write(text)
    return 0


def without_markers(text: str) -> str:
    """The reference as a learner reads it: no ### BEGIN/END SOLUTION or ### TODO: lines (grader/scaffold.py)."""
    from ..scaffold import BEGIN, END, TODO

    return "".join(line for line in text.splitlines(keepends=True)
                   if not (BEGIN.match(line) or END.match(line) or TODO.match(line)))


def cmd_watch(project, args, con) -> int:
    from .watch import Watch

    project.require_exercises()
    read_swaps(project)  # stop now on a malformed swap file
    remembered(project)  # say once that a malformed state file is ignored
    start = find(args.exercise) if args.exercise else None
    return Watch(project, con, impl=args.impl, timeout=args.timeout, poll=args.poll, start=start,
                 threads=args.threads).run()
