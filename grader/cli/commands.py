"""The commands that read: the overview, list, check, hint, solution, watch.

Each runs the tests it needs in one in-process pytest session (grader/plugin/runner.py)
and draws the result with grader/screens/.
"""

import sys
from pathlib import Path

from .. import state, swaps
from ..progress import Progress, compute, fully_swapped
from ..project import KataError, Project
from ..registry import EXERCISES, Exercise, find
from ..screens import formats, overview
from ..screens.exercise import exercise as exercise_screen, show_hints


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
    from ..plugin.runner import DEFAULT_TIMEOUT, run_tests  # imports pytest: only for commands that run tests

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
    emit(grade(project, args, overview=True), args, con, overview.home)
    return 0


def cmd_list(project, args, con) -> int:
    emit(grade(project, args, overview=True), args, con, overview.listing)
    return 0


def cmd_check(project, args, con) -> int:
    ex = find(args.exercise)
    progress = grade(project, args, [ex])
    emit(progress, args, con, lambda p, c: exercise_screen(p.of(ex), c, verbose=args.verbose))
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
