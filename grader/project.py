"""Where a project's parts live, and the one error type the grader turns into exit status 2.

The project is the checkout the grader belongs to (registry.ROOT), or another copy
of it given with `--root` (the grader's own tests and benchmarks use throwaway copies).
"""

import argparse
from dataclasses import dataclass
from pathlib import Path

from .registry import ROOT, Exercise

STATE_DIR = ".kata"


class KataError(Exception):
    """Bad usage or a malformed input: the message is one sentence; the command exits 2 and changes nothing."""


class UsageError(KataError, ValueError):
    """A command's flags used wrongly (argparse's complaint), in one sentence."""


class Parser(argparse.ArgumentParser):
    """argparse that refuses bad usage with one sentence (UsageError; the command exits 2), not the usage text."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`).")


@dataclass(frozen=True)
class Project:
    root: Path

    @classmethod
    def at(cls, root=None) -> "Project":
        path = Path(root).resolve() if root else ROOT
        if not path.is_dir():
            raise KataError(f"There is no project folder at {path}.")
        return cls(path)

    @property
    def exercises(self) -> Path:
        return self.root / "exercises"

    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def swap_file(self) -> Path:
        return self.root / "swaps.txt"

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def backups(self) -> Path:
        return self.state_dir / "backups"

    def test_file(self, ex: Exercise) -> Path:
        return self.root / ex.test_file

    def exercise_file(self, ex: Exercise) -> Path | None:
        return self.root / ex.exercise_file if ex.has_module else None

    def solution_file(self, ex: Exercise) -> Path | None:
        return self.solutions / f"{ex.name}.py" if ex.has_module else None

    def require_exercises(self) -> None:
        """KataError unless exercises/ is there (the grader never recreates it on its own)."""
        if not self.exercises.is_dir():
            raise KataError(
                f"There is no exercises/ folder in {self.root}; restore it (git checkout -- exercises) "
                f"or generate a fresh one with `python -m grader.scaffold --out exercises`."
            )
        if not (self.exercises / "__init__.py").is_file():
            raise KataError(
                f"exercises/__init__.py is missing in {self.root}; restore it (git checkout -- exercises/__init__.py)."
            )
