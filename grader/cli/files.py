"""The commands that write: swap, unswap, swaps and reset. None of them changes a learner's file
except `reset`, which saves it to .kata/backups/ first."""

from datetime import datetime
from pathlib import Path

from .. import swaps
from ..project import KataError, Project
from ..registry import MODULE_EXERCISES, Exercise, find
from .commands import read_swaps


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
    current = read_swaps(project, writing=True)
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
    current = read_swaps(project, writing=True)
    every = [k.lower() for k in args.exercises] == ["all"]
    for ex in chosen:
        if ex in current:
            print(f"Unswapped {ex.label}: its tests check your {ex.exercise_file} again.")
        elif not every:
            print(f"{ex.label} was not swapped.")
    if every and not current:
        print("No exercise was swapped.")
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
    from ..scaffold import ScaffoldError, strip_solutions

    ex = find(args.exercise)
    if not ex.has_module:
        raise KataError(f"{ex.label} has no exercise file to reset (it runs your 01-09).")
    project.require_exercises()
    source = project.solution_file(ex)
    try:
        fresh = strip_solutions(source.read_text(encoding="utf-8"), ex.label, source.name)
    except (OSError, ScaffoldError) as error:
        raise KataError(f"Cannot make a fresh {ex.exercise_file} from solutions/{source.name} ({error}).") from None
    target, backup = project.exercise_file(ex), None
    try:
        if target.is_file():
            mine = target.read_bytes()
            if mine == fresh.encode("utf-8"):
                print(f"{ex.exercise_file} is already fresh; nothing to do.")
                return 0
            backup = backup_path(project, ex)
            backup.parent.mkdir(parents=True, exist_ok=True)
            backup.write_bytes(mine)  # first: the learner's file is replaced only once it is saved
            target.write_text(fresh, encoding="utf-8")
            print(f"Saved your {ex.exercise_file} to {backup.relative_to(project.root)} and put a fresh one in its "
                  f"place.")
        else:
            target.write_text(fresh, encoding="utf-8")
            print(f"Put a fresh {ex.exercise_file} in place (there was no file to save).")
    except OSError as error:
        kept = f"; your file is saved in {backup}" if backup is not None and backup.is_file() else ""
        raise KataError(f"Cannot reset {ex.exercise_file} ({error.strerror or error}: {error.filename}){kept}.") from None
    return 0


def backup_path(project: Project, ex: Exercise) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = project.backups / f"{ex.name}-{stamp}.py"
    n = 1
    while path.exists():
        path = project.backups / f"{ex.name}-{stamp}-{n}.py"
        n += 1
    return path
