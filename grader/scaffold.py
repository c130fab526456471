"""Generate the learner's exercises/ from solutions/ by stripping the marked regions.

In a solutions module, each body a learner writes is marked nbgrader-style:

    def causal_attention(q, k, v):
        ### BEGIN SOLUTION
        ### TODO: scores = q @ kᵀ / sqrt(D) ...
        ...the reference code...
        ### END SOLUTION

and becomes, in exercises/:

        # TODO: scores = q @ kᵀ / sqrt(D) ...
        raise NotImplementedError("03 attention: causal_attention — scores = q @ kᵀ / sqrt(D) ...")

A region that belongs to a later exercise than the file's names it after the
marker, `### BEGIN SOLUTION 10`, and its NotImplementedError carries that
exercise's label ("10 kv_cache: CausalSelfAttention.forward — ..."): exercise 10
(the KV cache) revisits code in attention.py, gpt.py and generate.py, and a learner
who has not reached it yet still passes 03, 06 and 09, whose tests never go there.

Files without markers (config.py) are copied as they are; exercises/__init__.py
is the swap hook below. Nothing here writes into exercises/ itself:

    python -m grader.scaffold --out DIR   write a fresh exercises/ into DIR (which must not exist)
    python -m grader.scaffold --check     exit 1 if the committed exercises/ differs from a fresh one
"""

import argparse
import re
import sys
from pathlib import Path

from .registry import ROOT, BY_ID, BY_NAME

SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"

BEGIN = re.compile(r"^(?P<indent>\s*)### BEGIN SOLUTION(?:[ \t]+(?P<id>\S+))?\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")
TODO = re.compile(r"^\s*### TODO:\s?(?P<text>.*)$")
DEF = re.compile(r"^(?P<indent>\s*)(?:def|class)\s+(?P<name>\w+)")

EXERCISES_INIT = '''"""Your implementation. Each module here is yours to write: run its tests with

    pytest tests/test_01_norms.py

and see your progress with `python -m grader`. Generated from solutions/ by
grader/scaffold.py; the grader never overwrites these files (only an explicit
`python -m grader reset NN` does, after saving your version).
"""

from grader.swaps import apply as _apply_swaps

_apply_swaps(__name__)  # modules swapped with `python -m grader swap NN` are the reference's
'''


class ScaffoldError(ValueError):
    pass


def _owner(lines: list[str], start: int, indent: str) -> str:
    """The qualified name (Class.method or function) of the def enclosing line `start`."""
    names, limit = [], len(indent)
    for line in reversed(lines[:start]):
        match = DEF.match(line)
        if match and len(match["indent"]) < limit:
            names.append(match["name"])
            limit = len(match["indent"])
            if limit == 0:
                break
    return ".".join(reversed(names))


def _region_label(begin, label: str, filename: str, line: int) -> str:
    """The label of a region: the file's, or that of the exercise named after BEGIN SOLUTION."""
    key = begin["id"]
    if key is None:
        return label
    if not key.isdigit() or key.zfill(2) not in BY_ID:
        raise ScaffoldError(f"{filename}:{line}: BEGIN SOLUTION {key}: {key!r} is not an exercise id in "
                            f"grader/registry.py.")
    return BY_ID[key.zfill(2)].label


def strip_solutions(text: str, label: str, filename: str = "<solution>") -> str:
    """The exercise version of a solutions module's text; label is the exercise's "03 attention".

    A region opened with `### BEGIN SOLUTION NN` belongs to exercise NN: its NotImplementedError
    carries NN's label instead of the file's."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        begin = BEGIN.match(lines[i])
        if END.match(lines[i]):
            raise ScaffoldError(f"{filename}:{i + 1}: END SOLUTION without a BEGIN SOLUTION.")
        if not begin:
            out.append(lines[i])
            i += 1
            continue
        indent, start = begin["indent"], i
        region_label = _region_label(begin, label, filename, i + 1)
        todos = []
        i += 1
        while i < len(lines) and not END.match(lines[i]):
            if BEGIN.match(lines[i]):
                raise ScaffoldError(f"{filename}:{i + 1}: BEGIN SOLUTION inside another region.")
            todo = TODO.match(lines[i])
            if todo:
                todos.append(todo["text"].strip())
            i += 1
        if i == len(lines):
            raise ScaffoldError(f"{filename}:{start + 1}: BEGIN SOLUTION without an END SOLUTION.")
        if not todos:
            raise ScaffoldError(f"{filename}:{start + 1}: a region needs at least one '### TODO:' line.")
        where = _owner(lines, start, indent)
        out.append(f"{indent}# TODO: {todos[0]}\n")
        out.extend(f"{indent}#       {todo}\n" for todo in todos[1:])
        message = f"{region_label}: {where} — {todos[0].rstrip(',;: ')}".replace("\\", "\\\\").replace('"', '\\"')
        out.append(f'{indent}raise NotImplementedError("{message}")\n')
        i += 1  # past END SOLUTION
    return "".join(out)


def exercise_text(name: str) -> str:
    """The fresh exercises/<name>.py (name "__init__" or a module name)."""
    if name == "__init__":
        return EXERCISES_INIT
    source = SOLUTIONS / f"{name}.py"
    text = source.read_text(encoding="utf-8")
    if name not in BY_NAME:
        if "### BEGIN SOLUTION" in text:
            raise ScaffoldError(f"{source.name} has solution regions but no exercise in grader/registry.py.")
        return text
    return strip_solutions(text, BY_NAME[name].label, source.name)


def fresh_exercises() -> dict[str, str]:
    """Every file of a fresh exercises/: {"attention.py": text, ...}."""
    names = sorted(p.stem for p in SOLUTIONS.glob("*.py"))
    return {f"{name}.py": exercise_text(name) for name in names}


def write(out: Path) -> None:
    out.mkdir(parents=True)
    for filename, text in fresh_exercises().items():
        (out / filename).write_text(text, encoding="utf-8")


def differences(folder: Path = EXERCISES) -> list[str]:
    """One line per file where folder differs from a fresh exercises/."""
    fresh = fresh_exercises()
    present = {p.name for p in folder.glob("*.py")}
    problems = [f"{name}: missing" for name in sorted(fresh.keys() - present)]
    problems += [f"{name}: not generated from solutions/" for name in sorted(present - fresh.keys())]
    for name in sorted(fresh.keys() & present):
        if (folder / name).read_text(encoding="utf-8") != fresh[name]:
            problems.append(f"{name}: differs from the text generated from solutions/{name}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.scaffold", description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", type=Path, help="write a fresh exercises/ into this new folder")
    group.add_argument("--check", action="store_true", help="check that exercises/ equals a fresh one")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = differences()
            for line in problems:
                print(f"exercises/{line}")
            if problems:
                print("exercises/ is out of sync with solutions/: regenerate with "
                      "`python -m grader.scaffold --out /tmp/fresh` and copy the files over.")
                return 1
            print(f"exercises/ is in sync with solutions/ ({len(fresh_exercises())} files).")
            return 0
        if args.out.exists():
            print(f"{args.out} already exists; give a new folder so that nothing is overwritten.")
            return 2
        write(args.out)
        print(f"wrote a fresh exercises/ into {args.out}")
        return 0
    except ScaffoldError as error:
        print(error)
        return 2


if __name__ == "__main__":
    sys.exit(main())


def is_fresh(project, ex) -> bool:
    """Whether the learner's file of ex is still exactly what this module generates (nothing written yet)."""
    if not ex.has_module:
        return False
    try:
        mine = project.exercise_file(ex).read_text(encoding="utf-8")
        source = project.solution_file(ex)
        return mine == strip_solutions(source.read_text(encoding="utf-8"), ex.label, source.name)
    except (OSError, UnicodeDecodeError, ScaffoldError):
        return False
