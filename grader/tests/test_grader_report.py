"""The grader's report: states, score, next step, messages, and the json/gradescope/junit formats.

Each test runs `python -m grader` in this process (cli.main) on a tiny fake project
(see conftest.py), so the grader's own logic is tested without torch.
"""

import json
import xml.etree.ElementTree as ET

import pytest

from grader.cli import main
from grader.registry import EXERCISES

TOTAL = sum(ex.points for ex in EXERCISES)  # the points of every exercise


def run(capsys, fake, *argv):
    code = main(fake.args(*argv))
    out, err = capsys.readouterr()
    return code, out, err


def states(capsys, fake, *argv):
    code, out, err = run(capsys, fake, "--format", "json", *argv)
    assert code == 0, err
    data = json.loads(out)
    return data, {e["id"]: e["label"] for e in data["exercises"]}


def test_fresh_project_shows_zero_percent_and_next_01(capsys, fake):
    code, out, err = run(capsys, fake)
    assert code == 0, err
    assert "0 %" in out and f"0 of {TOTAL} points" in out
    assert "next: 01 norms" in out
    assert "pytest tests/test_01_norms.py" in out
    assert "first TODO: first — return the id" in out


def test_fresh_project_states(capsys, fake):
    data, label = states(capsys, fake)
    assert label["01"] == label["02"] == label["04"] == "not started"
    assert label["03"] == "blocked by 01 — finish it or `swap 01`"
    assert label["99"].startswith("blocked by 06")  # its first direct dependency: swapping it brings 01-05 along
    assert data["score"] == 0 and data["max_score"] == TOTAL
    assert data["next"] == {"id": "01", "name": "norms", "command": "pytest tests/test_01_norms.py"}


def test_reference_scores_everything(capsys, fake):
    data, label = states(capsys, fake, "--impl", "solutions")
    assert set(label.values()) == {"passed"}
    assert data["score"] == TOTAL and data["percent"] == 100.0 and data["next"] is None
    code, out, _ = run(capsys, fake, "--impl", "solutions")
    assert "100 %" in out and "Every exercise passes" in out


def test_passed_in_progress_failing_and_points(capsys, fake):
    fake.solve("01")
    fake.write("02", first=True)  # second still a TODO: in progress
    fake.write("04", text=fake.root.joinpath("exercises/mlp.py").read_text().replace(
        'raise NotImplementedError("04 mlp: first — return the id")', "return 5"))  # wrong: failing
    data, label = states(capsys, fake)
    assert label["01"] == "passed"
    assert label["02"] == "in progress"
    assert label["04"] == "failing"
    assert label["03"] == "blocked by 02 — finish it or `swap 02`"
    assert data["score"] == 5
    mlp = next(e for e in data["exercises"] if e["id"] == "04")
    assert mlp["passed"] == 0 and mlp["total"] == 2 and mlp["points"] == 0
    assert mlp["message"] == "first() returned 5, expected 4."
    assert data["next"]["id"] == "02"


def test_first_failure_message_is_shown_in_one_or_two_lines(capsys, fake):
    fake.solve("01", "02", "03")
    fake.write("04", text=fake.root.joinpath("exercises/mlp.py").read_text().replace(
        'raise NotImplementedError("04 mlp: first — return the id")', "return 5"))
    code, out, _ = run(capsys, fake)
    assert "04 mlp: first() returned 5, expected 4." in out
    assert "Traceback" not in out and "assert" not in out
    assert "next: 04 mlp" in out


def test_syntax_error_is_reported_with_file_and_line_and_hides_nothing_else(capsys, fake):
    fake.solve("01", "02", "04")
    fake.write("03", text='"""attention"""\n\n\ndef first(:\n    return 3\n')
    data, label = states(capsys, fake)
    assert label["03"] == "crashed on import"
    attention = next(e for e in data["exercises"] if e["id"] == "03")
    assert attention["message"] == "crashed on import: exercises/attention.py, line 4: SyntaxError: invalid syntax"
    assert label["01"] == label["02"] == label["04"] == "passed"  # the others still show their results
    assert label["05"] == "blocked by 03 — finish it or `swap 03`"  # block imports attention
    assert label["07"] == "not started"
    code, out, _ = run(capsys, fake)
    assert "03 attention: crashed on import: exercises/attention.py, line 4: SyntaxError: invalid syntax" in out


def test_error_at_import_time_names_file_and_line(capsys, fake):
    fake.solve("01")
    fake.write("02", text='"""rotary"""\nimport math\n\nTABLE = math.sqrt(-1)\n')
    data, label = states(capsys, fake)
    rotary = next(e for e in data["exercises"] if e["id"] == "02")
    assert label["02"] == "crashed on import"
    assert rotary["message"] == "crashed on import: exercises/rotary.py, line 4: ValueError: math domain error"


def test_infinite_loop_times_out_once_and_the_rest_still_shows(capsys, fake):
    fake.solve("01", "02", "03")
    fake.write("04", text='"""mlp"""\n\n\ndef first():\n    while True:\n        pass\n\n\n'
                          'def second():\n    while True:\n        pass\n')
    data, label = states(capsys, fake, "--timeout", "0.5")
    assert label["04"] == "timed out after 0.5 s"
    mlp = next(e for e in data["exercises"] if e["id"] == "04")
    assert "exercises/mlp.py, line 5" in mlp["message"] or "exercises/mlp.py, line 6" in mlp["message"]
    assert label["05"] == "blocked by 04 — finish it or `swap 04`"  # its tests would hang too: not run
    assert label["01"] == "passed" and label["07"] == "not started"
    outcomes = [t["outcome"] for e in data["exercises"] if e["id"] in ("04", "05") for t in e["tests"]]
    assert outcomes == ["timeout"] * 4
    # one time limit for the hang, not one per test: the others that would run the same code are not run
    ran = [t for e in data["exercises"] if e["id"] in ("04", "05") for t in e["tests"]
           if not t["message"].startswith("not run:")]
    assert len(ran) == 1, [t["message"] for t in ran]


def test_module_that_imports_the_reference_uses_the_reference(capsys, fake):
    fake.write("01", text='"""norms"""\nfrom solutions.norms import first, second  # noqa\n')
    data, label = states(capsys, fake)
    assert label["01"] == "uses the reference"
    assert data["score"] == 0
    norms = next(e for e in data["exercises"] if e["id"] == "01")
    assert norms["passed"] == 2 and norms["points"] == 0
    assert "line 2 imports from solutions.norms" in norms["message"]


def test_functions_that_are_the_reference_objects_use_the_reference(capsys, fake):
    fake.write("01", text='"""norms"""\nimport importlib\n\n_ref = importlib.import_module("solu" + "tions.norms")\n'
                          'first = _ref.first\n\n\ndef second():\n    return -1\n')
    data, label = states(capsys, fake)
    assert label["01"] == "uses the reference"
    assert "first is the reference's own" in next(e for e in data["exercises"] if e["id"] == "01")["message"]


def test_list_shows_one_line_per_exercise(capsys, fake):
    fake.solve("01")
    code, out, _ = run(capsys, fake, "list")
    lines = out.strip().splitlines()
    assert code == 0
    assert len(lines) == len(EXERCISES) + 1  # one line per exercise and the total
    assert lines[0].startswith("01 norms") and "passed" in lines[0] and "5/5" in lines[0]
    assert lines[2].startswith("03 attention") and "blocked by 02" in lines[2]
    assert lines[-1] == f"5/{TOTAL} points ({round(500 / TOTAL)} %)"


def test_check_runs_one_exercise_with_full_messages(capsys, fake):
    fake.write("04", text=fake.root.joinpath("exercises/mlp.py").read_text().replace(
        'raise NotImplementedError("04 mlp: first — return the id")', "return 5"))
    code, out, _ = run(capsys, fake, "check", "4")
    assert code == 1  # not passed (pytest's convention)
    assert out.startswith("04 mlp — The feed-forward network: failing")
    assert "✗ test_first" in out and "first() returned 5, expected 4." in out
    assert "1 tests not started" in out and "second — return minus the id" in out
    assert "01 norms" not in out  # only that exercise ran


def test_check_of_a_failing_dependency_says_blocked(capsys, fake):
    fake.write("03", text="def first(:\n")
    code, out, _ = run(capsys, fake, "check", "05")
    assert "blocked by 03" in out and "python -m grader swap 03" in out
    assert "crashed on import: exercises/attention.py, line 1: SyntaxError: invalid syntax" in out


def test_output_is_plain_text_when_piped(capsys, fake):
    fake.solve("01")
    code, out, _ = run(capsys, fake)
    assert "\x1b[" not in out


# --- machine formats ------------------------------------------------------------------------

# Gradescope's results.json (https://gradescope-autograders.readthedocs.io/en/latest/specs/), as a JSON schema.
GRADESCOPE_SCHEMA = {
    "type": "object",
    "required": ["score", "tests"],
    "properties": {
        "score": {"type": "number", "minimum": 0},
        "max_score": {"type": "number", "minimum": 0},
        "execution_time": {"type": "number"},
        "output": {"type": "string"},
        "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "stdout_visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "extra_data": {"type": "object"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "score", "max_score", "output", "visibility"],
                "properties": {
                    "name": {"type": "string"},
                    "score": {"type": "number", "minimum": 0},
                    "max_score": {"type": "number", "minimum": 0},
                    "status": {"enum": ["passed", "failed"]},
                    "number": {"type": "string"},
                    "output": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
                    "extra_data": {"type": "object"},
                },
                "additionalProperties": False,
            },
        },
        "leaderboard": {"type": "array"},
    },
    "additionalProperties": False,
}
TYPES = {"object": dict, "array": list, "string": str, "number": (int, float), "integer": int, "boolean": bool}


def validate(value, schema, where="results"):
    """A small JSON-schema check (type, enum, minimum, required, properties, additionalProperties, items)."""
    if "type" in schema:
        assert isinstance(value, TYPES[schema["type"]]) and not isinstance(value, bool), f"{where}: {value!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if "minimum" in schema:
        assert value >= schema["minimum"], f"{where}: {value!r} < {schema['minimum']}"
    for key in schema.get("required", ()):
        assert key in value, f"{where}: missing {key!r}"
    for key, item in (value.items() if isinstance(value, dict) else ()):
        if key in schema.get("properties", {}):
            validate(item, schema["properties"][key], f"{where}.{key}")
        else:
            assert schema.get("additionalProperties", True), f"{where}: unexpected key {key!r}"
    if "items" in schema:
        for i, item in enumerate(value):
            validate(item, schema["items"], f"{where}[{i}]")


@pytest.mark.parametrize("swapped", [False, True])
def test_gradescope_results_validate_and_add_up(capsys, fake, tmp_path, swapped):
    fake.solve("01", "02")
    fake.write("04", first=True)
    if swapped:
        assert main(fake.args("swap", "03")) == 0
    path = tmp_path / "results.json"
    code, out, err = run(capsys, fake, "--format", "gradescope", "--output", str(path))
    assert code == 0, err
    assert f"wrote {path}: 10/{TOTAL} points" in out
    results = json.loads(path.read_text())
    validate(results, GRADESCOPE_SCHEMA)
    assert results["score"] == 10 and results["max_score"] == TOTAL
    assert sum(t["score"] for t in results["tests"]) == pytest.approx(10)
    assert sum(t["max_score"] for t in results["tests"]) == pytest.approx(TOTAL)
    norms = [t for t in results["tests"] if t["name"].startswith("01 norms")]
    assert len(norms) == 2 and sum(t["score"] for t in norms) == pytest.approx(5)
    mlp = [t for t in results["tests"] if t["name"].startswith("04 mlp")]
    assert [t["score"] for t in mlp] == [0, 0]  # an exercise's points only when it passes
    if swapped:
        attention = [t for t in results["tests"] if t["name"].startswith("03 attention")]
        assert len(attention) == 1 and attention[0]["score"] == 0 and attention[0]["max_score"] == 15
        assert attention[0]["output"].startswith("swapped")


def test_gradescope_goes_to_results_json_by_default(capsys, fake, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, fake, "--format", "gradescope")
    assert code == 0 and (tmp_path / "results.json").is_file()
    validate(json.loads((tmp_path / "results.json").read_text()), GRADESCOPE_SCHEMA)


def test_junit_has_one_suite_per_exercise(capsys, fake):
    fake.solve("01")
    fake.write("04", text=fake.root.joinpath("exercises/mlp.py").read_text().replace(
        'raise NotImplementedError("04 mlp: first — return the id")', "return 5"))
    code, out, _ = run(capsys, fake, "--format", "junit")
    assert code == 0
    root = ET.fromstring(out)
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert len(suites) == len(EXERCISES)
    assert suites["01 norms"].get("failures") == "0" and suites["01 norms"].get("tests") == "2"
    assert suites["04 mlp"].get("failures") == "1" and suites["04 mlp"].get("skipped") == "1"
    props = {p.get("name"): p.get("value") for p in suites["01 norms"].iter("property")}
    assert props["state"] == "passed" and props["points"] == "5"
    assert root.get("tests") == str(2 * len(EXERCISES))  # two tests per fake exercise


def test_json_to_a_file(capsys, fake, tmp_path):
    path = tmp_path / "report.json"
    code, out, _ = run(capsys, fake, "--format", "json", "-o", str(path))
    assert code == 0 and json.loads(path.read_text())["next"]["id"] == "01"


def test_check_exits_0_once_the_exercise_passes(capsys, fake):
    fake.solve("04")
    code, out, _ = run(capsys, fake, "check", "04")
    assert code == 0 and "04 mlp — The feed-forward network: passed" in out


def test_check_and_the_overview_agree_on_a_blocked_exercise(capsys, fake):
    """03 needs 01 and 02: with 02 untouched, `check 03` says blocked by 02, as the overview does."""
    fake.solve("01")
    fake.write("03", first=True)
    _, out, _ = run(capsys, fake, "check", "03")
    assert out.startswith("03 attention — Causal self-attention: blocked by 02")
    data, labels_by_id = states(capsys, fake)
    assert labels_by_id["03"].startswith("blocked by 02")


def test_a_swapped_dependency_brings_the_reference_s_own(capsys, fake):
    """05 needs 01, 03, 04; 03 needs 02. With 03 swapped, 02 no longer blocks 05 (the reference brings its own)."""
    fake.solve("01", "04")
    assert main(fake.args("swap", "03")) == 0
    capsys.readouterr()
    data, labels_by_id = states(capsys, fake)
    assert not labels_by_id["05"].startswith("blocked"), labels_by_id["05"]
    assert labels_by_id["06"].startswith("blocked by 02")  # 06 uses rotary directly


def test_text_output_can_be_written_to_a_file(capsys, fake, tmp_path):
    code, out, _ = run(capsys, fake, "--output", str(tmp_path / "report.txt"))
    assert code == 0 and out.startswith("wrote ")
    assert "next: 01 norms" in (tmp_path / "report.txt").read_text()


def test_check_shows_a_crash_on_import_once(capsys, fake):
    fake.write("04", text="def first(:\n")
    code, out, _ = run(capsys, fake, "check", "04")
    assert code == 1
    assert out.count("crashed on import: exercises/mlp.py, line 1") == 1, out
    assert "2 tests could not run" in out


def test_a_file_that_ends_the_interpreter_is_one_sentence_not_silence(capsys, fake):
    """os._exit in a learner's file ends the forked test run, and the command says so (exit 2)."""
    fake.write("02", text="import os\nos._exit(3)\n")
    code, out, err = run(capsys, fake)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "exited with status 3 before it could report" in err


def test_blocked_by_names_the_direct_dependency_whose_swap_unblocks_it(capsys, fake):
    """05 needs 01, 03, 04, and 03 needs 02: with 01 and 04 done, 05 is blocked by 03 (not 02)."""
    fake.solve("01", "04")
    data, label = states(capsys, fake)
    assert label["05"].startswith("blocked by 03"), label["05"]
