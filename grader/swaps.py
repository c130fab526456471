"""Swapping a reference solution in for a learner's module, without touching the learner's file.

The swaps live in one small text file at the project root, swaps.txt, one
exercise id per line. exercises/__init__.py calls apply() when the package is
first imported (by pytest, by the grader, by any script), which aliases
exercises.<module> to solutions.<module> in sys.modules, so every relative
import (`from .attention import ...`) inside exercises/ gets the reference.
apply() reads the swaps.txt beside the exercises/ folder being imported, so a
copy of the project (the grader's tests, the mutant runner) has its own swaps.
"""

import importlib
import sys
from pathlib import Path

from .registry import ROOT, MODULE_EXERCISES, Exercise, find

SWAP_FILE = ROOT / "swaps.txt"
HEADER = (
    "# Exercises whose reference solution stands in for yours, one id per line.\n"
    "# Change with `python -m grader swap NN` / `unswap NN`; your files in exercises/ are untouched.\n"
)


class SwapFileError(ValueError):
    pass


RUN_SWAPS = "KATA_RUN_SWAPS"  # set by sample and inspect: the swaps a run trained with, in place of the file's


def read(path=None) -> list[Exercise]:
    """The swapped exercises, in course order. SwapFileError (one sentence) for a malformed file.
    In a process where KATA_RUN_SWAPS is set (ids separated by commas), those instead of the file's."""
    import os

    if os.environ.get(RUN_SWAPS) is not None:
        return [ex for ex in MODULE_EXERCISES if ex.id in os.environ[RUN_SWAPS].split(",")]
    path = path or SWAP_FILE
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SwapFileError(f"{path.name} cannot be read ({error}); fix or delete it.") from None
    swapped = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        key = entry.split()[0]
        try:
            ex = find(key)
        except ValueError:
            raise SwapFileError(
                f"{path.name}, line {number}: {entry!r} is not an exercise id; fix or delete that line."
            ) from None
        if not ex.has_module:
            raise SwapFileError(f"{path.name}, line {number}: {ex.label} has no module to swap; delete that line.")
        if ex not in swapped:
            swapped.append(ex)
    return [ex for ex in MODULE_EXERCISES if ex in swapped]


def write(exercises, path=None) -> None:
    """Replace the swap file with these exercises (or remove it when there are none)."""
    from .project import KataError

    path = path or SWAP_FILE
    lines = [f"{ex.id}  # {ex.name}\n" for ex in MODULE_EXERCISES if ex in exercises]
    tmp = path.with_suffix(".tmp")
    try:
        if not exercises:
            path.unlink(missing_ok=True)
            return
        tmp.write_text(HEADER + "".join(lines), encoding="utf-8")
        tmp.replace(path)
    except OSError as error:
        raise KataError(f"Cannot write {path} ({error.strerror or error}); the swaps are as they were.") from None


def swap_file_of(package) -> Path:
    """The swap file of the project that holds this exercises package (its parent folder's swaps.txt)."""
    location = getattr(package, "__file__", None)
    return Path(location).resolve().parent.parent / SWAP_FILE.name if location else SWAP_FILE


def apply(package: str) -> list[Exercise]:
    """Alias package.<module> to solutions.<module> for each swapped exercise (only for "exercises")."""
    if package != "exercises":
        return []
    parent = sys.modules[package]
    try:
        swapped = read(swap_file_of(parent))
    except SwapFileError as error:
        raise ImportError(str(error)) from None
    for ex in swapped:
        module = importlib.import_module(f"solutions.{ex.name}")
        sys.modules[f"{package}.{ex.name}"] = module
        setattr(parent, ex.name, module)
    return swapped
