"""Throwaway copies of the project, for the mutant runner, the grader's own tests and the benchmarks.

    project = make_project(base, {"attention.py": text})          # exercises/ = the reference + this file
    project = make_project(base, {}, exercises="fresh")            # exercises/ = a fresh scaffold (all TODOs)

The copy holds solutions/, tests/, grader/, data/ and pyproject.toml; the real
checkout is never written to.
"""

import shutil
import tempfile
from pathlib import Path

from .registry import ROOT

COPIED = ("solutions", "tests", "grader", "data", "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def make_project(base: Path, exercise_files: dict[str, str], exercises: str = "solutions") -> Path:
    """A new folder under base holding a copy of the project.

    exercises: "solutions" (the reference, as a learner who solved everything) or "fresh"
    (what grader/scaffold.py generates); then exercise_files ({"norms.py": text}) replace files in it.
    """
    from .scaffold import EXERCISES_INIT, fresh_exercises  # the scaffold reads solutions/: import late

    project = Path(tempfile.mkdtemp(prefix="kata-", dir=base))
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=IGNORED)
        elif source.exists():
            shutil.copy2(source, project / name)
    target = project / "exercises"
    if exercises == "fresh":
        target.mkdir()
        for name, text in fresh_exercises().items():
            (target / name).write_text(text, encoding="utf-8")
    elif exercises == "solutions":
        shutil.copytree(ROOT / "solutions", target, ignore=IGNORED)
    else:
        raise ValueError(f"exercises must be 'solutions' or 'fresh', not {exercises!r}.")
    (target / "__init__.py").write_text(EXERCISES_INIT, encoding="utf-8")
    for name, text in exercise_files.items():
        (target / name).write_text(text, encoding="utf-8")
    return project
