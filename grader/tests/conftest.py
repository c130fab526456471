"""Fixtures for the grader's own tests: tiny throwaway projects that do not import torch.

A fake project has the real registry's exercises, each with a two-function module
(`first()` returns the id as an int, `second()` its negative) that imports its
dependencies' modules like the real ones do, a reference in solutions/, a fresh
exercise with TODOs in exercises/, and two tests per exercise in tests/. The grader
runs on it in this process with `--root`, in well under a second.
"""

import hashlib
import os
from pathlib import Path

import pytest

from grader.registry import EXERCISES, ROOT
from grader.scaffold import EXERCISES_INIT, strip_solutions


def _imports(ex) -> str:
    return "".join(f"from .{dep.name} import first as _{dep.name}\n" for dep in map(by_id, ex.depends)
                   if dep.has_module)


def solution_text(ex) -> str:
    """The reference, with its two bodies marked for grader/scaffold.py."""
    n = int(ex.id)
    return (f'"""Fake {ex.label}."""\n\n{_imports(ex)}\n\n'
            f"def first():\n    ### BEGIN SOLUTION\n    ### TODO: return the id\n    return {n}\n    ### END SOLUTION\n\n\n"
            f"def second():\n    ### BEGIN SOLUTION\n    ### TODO: return minus the id\n    return -{n}\n"
            f"    ### END SOLUTION\n")


def exercise_text(ex, first=False, second=False) -> str:
    """The learner's file: fresh (what the scaffold makes), or with first() and/or second() written."""
    text = strip_solutions(solution_text(ex), ex.label)
    if first:
        text = text.replace(f'    # TODO: return the id\n    raise NotImplementedError("{ex.label}: first — return the id")\n',
                            f"    return {int(ex.id)}\n")
    if second:
        text = text.replace(f'    # TODO: return minus the id\n    raise NotImplementedError("{ex.label}: second — return '
                            f'minus the id")\n', f"    return -{int(ex.id)}\n")
    return text


def test_text(ex) -> str:
    """Two tests that import the learner's module lazily, like tests/harness.py's learner()."""
    if ex.has_module:
        target = ex.name
        calls = (f'mine("{target}").first()', f'mine("{target}").second()')
        want = (int(ex.id), -int(ex.id))
    else:  # 99: runs every module it depends on
        deps = [d for d in _all_deps(ex) if d.has_module]
        calls = (" + ".join(f'mine("{d.name}").first()' for d in deps),
                 " + ".join(f'mine("{d.name}").second()' for d in deps))
        want = (sum(int(d.id) for d in deps), -sum(int(d.id) for d in deps))
    return f'''import importlib
import os


def mine(module):
    return importlib.import_module(os.environ.get("KATA_IMPL", "exercises") + "." + module)


def test_first():
    got = {calls[0]}
    assert got == {want[0]}, f"{ex.label}: first() returned {{got}}, expected {want[0]}."


def test_second():
    got = {calls[1]}
    assert got == {want[1]}, f"{ex.label}: second() returned {{got}}, expected {want[1]}; check the sign."
'''


def by_id(key):
    return next(e for e in EXERCISES if e.id == key)


def _all_deps(ex):
    from grader.registry import dependencies

    return dependencies(ex)


class Fake:
    """A fake project at root; helpers to write the learner's files and to snapshot every file."""

    def __init__(self, root: Path):
        self.root = root
        (root / "exercises").mkdir(parents=True)
        (root / "solutions").mkdir()
        (root / "tests").mkdir()
        (root / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text(encoding="utf-8"), encoding="utf-8")
        (root / "exercises" / "__init__.py").write_text(EXERCISES_INIT, encoding="utf-8")
        (root / "solutions" / "__init__.py").write_text('"""Fake reference."""\n', encoding="utf-8")
        for ex in EXERCISES:
            if ex.has_module:
                (root / "solutions" / f"{ex.name}.py").write_text(solution_text(ex), encoding="utf-8")
                self.write(ex.id)
            (root / ex.test_file).write_text(test_text(ex), encoding="utf-8")

    def write(self, ex_id, first=False, second=False, text=None) -> Path:
        ex = by_id(ex_id)
        path = self.root / "exercises" / f"{ex.name}.py"
        path.write_text(text if text is not None else exercise_text(ex, first, second), encoding="utf-8")
        return path

    def solve(self, *ids):
        for ex_id in ids:
            self.write(ex_id, True, True)

    def args(self, *argv) -> list[str]:
        return ["--root", str(self.root), *argv]

    def snapshot(self) -> dict:
        """Every file (but bytecode and the grader's cache of verdicts, .kata/passed.json) with its content's hash."""
        return {str(p.relative_to(self.root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.root.rglob("*"))
                if p.is_file() and "__pycache__" not in p.parts and p.name != "passed.json"}  # the grader's cache


def learner_env(**extra) -> dict:
    """The environment of a command a learner types: without the KATA_IMPL this session's --impl set."""
    env = {k: v for k, v in os.environ.items() if k != "KATA_IMPL"}
    env.update(extra)
    return env


@pytest.fixture
def fake(tmp_path) -> Fake:
    return Fake(tmp_path / "project")
