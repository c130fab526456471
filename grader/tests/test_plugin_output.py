"""What `pytest tests/test_NN_*.py` prints for a learner (grader/plugin/terminal.py), on copies of the real project.

Each test runs pytest in a subprocess, as the learner does, on one exercise's test file.
"""

import re
import subprocess
import sys

import pytest

from conftest import learner_env
from grader.sandbox import make_project
from grader.scaffold import fresh_exercises
from grader.registry import ROOT


def pytest_output(project, *files) -> tuple[int, list[str]]:
    proc = subprocess.run([sys.executable, "-m", "pytest", *files], cwd=project, capture_output=True, text=True,
                          env=learner_env())
    return proc.returncode, (proc.stdout + proc.stderr).splitlines()


@pytest.fixture
def fresh_project(tmp_path):
    return make_project(tmp_path, {}, exercises="fresh")


def test_a_syntax_error_is_one_short_block(fresh_project):
    norms = fresh_project / "exercises" / "norms.py"
    lines = norms.read_text(encoding="utf-8").splitlines()
    broken = next(i for i, line in enumerate(lines) if line.startswith("def rms_norm("))
    lines[broken] = lines[broken].replace("def rms_norm(", "def rms_norm(:")
    norms.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out = pytest_output(fresh_project, "tests/test_01_norms.py")
    text = "\n".join(out)
    assert code == 1, text
    assert len(out) <= 30, f"{len(out)} lines:\n{text}"
    assert sum("exercises/norms.py, line" in line for line in out) == 1, text
    assert f"exercises/norms.py, line {broken + 1}: SyntaxError: invalid syntax" in text
    assert "Traceback" not in text and "FAILURES" not in text
    n = sum(line.count("C") for line in out if line.startswith("tests/test_01_norms.py "))
    assert n > 20 and f"{n} crashed" in out[-1], text  # every test once, as crashed


def test_a_malformed_swap_file_is_one_short_block(fresh_project):
    (fresh_project / "swaps.txt").write_text("03\nnot-an-exercise\n", encoding="utf-8")
    code, out = pytest_output(fresh_project, "tests/test_01_norms.py")
    text = "\n".join(out)
    assert code == 1 and len(out) <= 30, text
    assert sum("swaps.txt, line 2: 'not-an-exercise' is not an exercise id" in line for line in out) == 1, text
    assert "Traceback" not in text


def test_active_swaps_are_listed_above_the_final_line(tmp_path):
    fresh = fresh_exercises()
    project = make_project(tmp_path, {"norms.py": fresh["norms.py"]})
    (project / "swaps.txt").write_text("01\n", encoding="utf-8")
    code, out = pytest_output(project, "tests/test_01_norms.py")
    assert code == 0
    last = [line for line in out if line.strip()]
    assert last[-2].startswith("swapped: 01 norms") and "unswap 01" in last[-2], "\n".join(out)
    assert re.search(r" \d+ passed in ", last[-1]) and "failed" not in last[-1], last[-1]


def test_an_endless_loop_costs_one_time_limit_and_one_short_block(tmp_path):
    """Under plain pytest too: the test that hangs is stopped, the others that would run the same code are not
    run, and the stack dump gives way to the line that was running."""
    solution = (ROOT / "solutions" / "norms.py").read_text(encoding="utf-8")
    start = solution.index("def layer_norm(")
    body = solution.index('"""', solution.index('"""', start) + 3) + 3
    looping = solution[:body] + "\n    while True:\n        pass\n" + solution[body:]
    project = make_project(tmp_path, {"norms.py": looping})
    code, out = pytest_output(project, "tests/test_01_norms.py", "--kata-timeout=1")
    text = "\n".join(out)
    assert code == 1 and len(out) <= 30, text
    assert "timed out after 1 s, running exercises/norms.py, line" in text and "while True:" in text, text
    assert re.search(r"\d+ more tests would run the same code: not run", text), text
    assert "Traceback" not in text and "Timeout (>" not in text, text
