"""The grader's commands: hint, swap/unswap/swaps, reset, solution, train/sample hand-over, and bad input.

In this process (cli.main) on tiny fake projects (conftest.py); one subprocess run
checks the real entry point.
"""

import json
import re
import subprocess
import sys
import types

import pytest

from conftest import learner_env
from grader import cli
from grader.cli import main
from grader.registry import BY_ID, EXERCISES, MODULE_EXERCISES, ROOT


def run(capsys, fake, *argv):
    code = main(fake.args(*argv))
    out, err = capsys.readouterr()
    return code, out, err


def labels(capsys, fake, *argv):
    code, out, err = run(capsys, fake, "--format", "json", *argv)
    assert code == 0, err
    data = json.loads(out)
    return data, {e["id"]: e["label"] for e in data["exercises"]}


# --- hints ----------------------------------------------------------------------------------


def test_every_exercise_has_at_least_three_hints_and_none_is_code():
    for ex in EXERCISES:
        assert len(ex.hints) >= 3, ex.label
        assert len(set(ex.hints)) == len(ex.hints), ex.label
        for hint in ex.hints:
            assert hint.strip() and "\n" not in hint, ex.label
            assert not re.search(r"\bdef \w+\(|\bclass \w+[(:]|^\s*(return|import)\b", hint), \
                f"{ex.label}: a hint reads like code: {hint}"


def test_hint_shows_one_more_each_time_and_remembers(capsys, fake):
    hints = BY_ID["03"].hints
    code, out, _ = run(capsys, fake, "hint", "03")
    assert code == 0
    assert f"1/{len(hints)}." in out and hints[0] in out and hints[1] not in out
    assert "again for the next one" in out
    code, out, _ = run(capsys, fake, "hint", "3")
    assert hints[0] in out and hints[1] in out and hints[2] not in out
    state = json.loads((fake.root / ".kata" / "state.json").read_text())
    assert state["hints"] == {"03": 2}
    for _ in range(len(hints)):
        code, out, _ = run(capsys, fake, "hint", "attention")
    assert all(h in out for h in hints) and "That is every hint" in out


def test_hint_all_shows_every_hint(capsys, fake):
    code, out, _ = run(capsys, fake, "hint", "07", "--all")
    assert code == 0 and all(h in out for h in BY_ID["07"].hints)
    assert json.loads((fake.root / ".kata" / "state.json").read_text())["hints"] == {"07": len(BY_ID["07"].hints)}


# --- swaps ----------------------------------------------------------------------------------


def test_swap_unswap_and_swaps(capsys, fake):
    before = (fake.root / "exercises" / "attention.py").read_bytes()
    code, out, _ = run(capsys, fake, "swap", "03")
    assert code == 0 and "Swapped 03 attention" in out
    assert (fake.root / "swaps.txt").read_text().splitlines()[-1] == "03  # attention"
    assert (fake.root / "exercises" / "attention.py").read_bytes() == before  # no learner file is touched
    code, out, _ = run(capsys, fake, "swaps")
    assert out.startswith("03 attention")
    code, out, _ = run(capsys, fake, "swap", "03")
    assert "already swapped" in out
    code, out, _ = run(capsys, fake, "unswap", "03")
    assert "Unswapped 03 attention" in out and not (fake.root / "swaps.txt").exists()
    code, out, _ = run(capsys, fake, "swaps")
    assert out.strip() == "No exercise is swapped."


def test_swapped_shows_as_swapped_and_unblocks(capsys, fake):
    fake.solve("02")
    main(fake.args("swap", "01"))
    capsys.readouterr()
    data, label = labels(capsys, fake)
    assert label["01"] == "swapped"
    assert label["03"] == "not started"  # a swapped dependency does not block; 02 passes
    assert data["score"] == 5  # 02 only: a swapped exercise earns nothing
    assert data["next"]["id"] == "03"


def test_swapping_every_exercise_shows_every_one_swapped_and_scores_nothing(capsys, fake):
    assert main(fake.args("swap", "all")) == 0
    capsys.readouterr()
    data, label = labels(capsys, fake)
    assert set(label.values()) == {"swapped"}  # 99 too: every part it runs is the reference
    assert data["score"] == 0 and data["percent"] == 0 and data["next"] is None
    code, out, _ = run(capsys, fake)
    assert "0 %" in out and f"{len(EXERCISES)} swapped" in out


def test_end_to_end_with_some_parts_swapped_passes_but_scores_nothing(capsys, fake):
    fake.solve(*[ex.id for ex in MODULE_EXERCISES if ex.id != "09"])
    main(fake.args("swap", "09"))
    capsys.readouterr()
    data, label = labels(capsys, fake)
    assert label["99"] == "passed (with 09 swapped)"
    assert data["score"] == sum(ex.points for ex in EXERCISES) - BY_ID["09"].points - BY_ID["99"].points


def test_swap_applies_in_pytest_too(fake, tmp_path):
    """The swap hook in exercises/__init__.py: a plain pytest run sees the reference."""
    (fake.root / "swaps.txt").write_text("01\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/test_01_norms.py", "-q", "-p", "no:randomly"],
                          cwd=fake.root, capture_output=True, text=True, env=learner_env())
    assert "2 passed" in proc.stdout, proc.stdout + proc.stderr


# --- reset and solution ---------------------------------------------------------------------


def test_reset_saves_a_backup_and_puts_the_fresh_file_back(capsys, fake):
    fresh = (fake.root / "exercises" / "mlp.py").read_text()
    mine = fake.write("04", first=True).read_text()
    code, out, _ = run(capsys, fake, "reset", "04")
    assert code == 0
    backups = list((fake.root / ".kata" / "backups").glob("mlp-*.py"))
    assert len(backups) == 1 and backups[0].read_text() == mine
    assert str(backups[0].relative_to(fake.root)) in out
    assert (fake.root / "exercises" / "mlp.py").read_text() == fresh
    code, out, _ = run(capsys, fake, "reset", "04")
    assert "already fresh" in out and len(list((fake.root / ".kata" / "backups").iterdir())) == 1


def test_reset_restores_a_deleted_file(capsys, fake):
    (fake.root / "exercises" / "optim.py").unlink()
    data, label = labels(capsys, fake)
    assert label["07"] == "missing"
    code, out, _ = run(capsys, fake, "reset", "07")
    assert code == 0 and (fake.root / "exercises" / "optim.py").is_file()


def test_solution_only_once_yours_passes(capsys, fake):
    code, out, _ = run(capsys, fake, "solution", "01")
    assert code == 1 and "return 1" not in out and "--give-up" in out
    fake.solve("01")
    code, out, _ = run(capsys, fake, "solution", "01")
    assert code == 0 and "return 1" in out and "solutions/norms.py" in out


def test_solution_with_give_up_is_recorded_and_reported(capsys, fake):
    code, out, _ = run(capsys, fake, "solution", "02", "--give-up")
    assert code == 0 and "return 2" in out and "gave up" in out
    assert "02" in json.loads((fake.root / ".kata" / "state.json").read_text())["gave_up"]
    fake.solve("01", "02")
    data, label = labels(capsys, fake)
    assert label["02"] == "passed (gave up)"
    assert data["score"] == 5  # 01 only
    code, out, _ = run(capsys, fake, "list")
    assert "passed (gave up)" in out


def test_solution_of_a_swapped_exercise_needs_give_up(capsys, fake):
    main(fake.args("swap", "01"))
    capsys.readouterr()
    code, out, _ = run(capsys, fake, "solution", "01")
    assert code == 1 and "swapped" in out


# --- train and sample -----------------------------------------------------------------------


@pytest.mark.parametrize("argv, expected", [
    (["train", "--steps", "3"], ["--steps", "3"]),
    (["--impl", "solutions", "train", "--steps", "3"], ["--impl", "solutions", "--steps", "3"]),
    (["train", "--steps", "3", "--impl=solutions"], ["--impl", "solutions", "--steps", "3"]),
])
def test_train_gets_the_rest_of_the_arguments(monkeypatch, argv, expected):
    seen = []
    monkeypatch.setitem(sys.modules, "grader.training.train", types.SimpleNamespace(main=lambda a: seen.append(a) or 7))
    monkeypatch.setenv("KATA_IMPL", "solutions")  # restored afterwards: train sets it from --impl
    assert main(argv) == 7
    assert seen == [expected]


# --- malformed input: one sentence, exit 2, nothing changed ----------------------------------


BAD = [
    (["check", "42"], "There is no exercise '42'"),
    (["hint", "banana"], "There is no exercise 'banana'"),
    (["swap", "03", "77"], "There is no exercise '77'"),
    (["swap", "99"], "has no module of its own"),
    (["reset", "99"], "has no exercise file"),
    (["solution", "0"], "There is no exercise '00'"),
    (["frobnicate"], "invalid choice"),
    (["--format", "xml"], "invalid choice"),
    (["--timeout", "-1"], "above 0 seconds"),
    (["check"], "the following arguments are required"),
    (["--impl", "nobody", "train"], "--impl must be exercises or solutions"),
]


@pytest.mark.parametrize("argv, sentence", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_usage_exits_2_with_a_sentence_and_changes_nothing(capsys, fake, argv, sentence):
    before = fake.snapshot()
    code, out, err = run(capsys, fake, *argv)
    assert code == 2
    assert sentence in err and len(err.strip().splitlines()) == 1
    assert fake.snapshot() == before


CORRUPT_SWAPS = ["03\nbanana\n", "99\n", b"\xff\xfe\x00garbage"]


@pytest.mark.parametrize("content", CORRUPT_SWAPS, ids=["unknown id", "no module", "not text"])
@pytest.mark.parametrize("argv", [[], ["list"], ["check", "01"], ["swap", "02"], ["unswap", "03"], ["swaps"],
                                  ["watch"], ["--format", "gradescope"]])
def test_corrupt_swap_file_exits_2_and_is_left_as_it_was(capsys, fake, content, argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = fake.root / "swaps.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = fake.snapshot()
    code, out, err = run(capsys, fake, *argv)
    assert code == 2 and "swaps.txt" in err and len(err.strip().splitlines()) == 1
    assert fake.snapshot() == before and not (tmp_path / "results.json").exists()


CORRUPT_STATES = ["{not json", '{"hints": {"03": -1}}', '{"hints": {"42": 1}}', "[]", '{"gave_up": {"01": 5}}']


@pytest.mark.parametrize("content", CORRUPT_STATES)
@pytest.mark.parametrize("argv", [[], ["list"], ["check", "01"], ["hint", "03"]])
def test_a_corrupt_state_file_is_reported_once_ignored_and_left_as_it_was(capsys, fake, content, argv):
    (fake.root / ".kata").mkdir()
    (fake.root / ".kata" / "state.json").write_text(content)
    before = fake.snapshot()
    code, out, err = run(capsys, fake, *argv)
    assert code in (0, 1) and ".kata/state.json is not valid" in err and len(err.strip().splitlines()) == 1
    assert out.strip(), "the command still shows what it shows"
    assert fake.snapshot() == before


@pytest.mark.parametrize("content", CORRUPT_STATES)
def test_giving_up_with_a_corrupt_state_file_exits_2_and_records_nothing(capsys, fake, content):
    (fake.root / ".kata").mkdir()
    (fake.root / ".kata" / "state.json").write_text(content)
    before = fake.snapshot()
    code, out, err = run(capsys, fake, "solution", "01", "--give-up")
    assert code == 2 and ".kata/state.json is not valid" in err and len(err.strip().splitlines()) == 1
    assert fake.snapshot() == before


@pytest.mark.parametrize("argv", [[], ["list"], ["check", "01"], ["reset", "01"], ["swap", "01"], ["watch"],
                                  ["solution", "01"]])
def test_missing_exercises_folder_exits_2_and_creates_nothing(capsys, fake, argv):
    import shutil

    shutil.rmtree(fake.root / "exercises")
    before = fake.snapshot()
    code, out, err = run(capsys, fake, *argv)
    assert code == 2 and "There is no exercises/ folder" in err and len(err.strip().splitlines()) == 1
    assert fake.snapshot() == before and not (fake.root / "exercises").exists()


def test_missing_project_folder_exits_2(capsys, tmp_path):
    assert main(["--root", str(tmp_path / "nowhere")]) == 2
    assert "There is no project folder" in capsys.readouterr().err


# --- the real entry point -------------------------------------------------------------------


def test_python_m_grader_runs_as_a_program_with_plain_output(fake):
    proc = subprocess.run([sys.executable, "-m", "grader", "--root", str(fake.root), "list"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("01 norms") and "\x1b[" not in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "grader", "--root", str(fake.root), "check", "42"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("There is no exercise '42'")


def test_the_console_script_is_declared():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kata"] == "grader.__main__:main"
    assert cli.main is __import__("grader.__main__", fromlist=["main"]).main


# --- what passed, for train and sample ------------------------------------------------------


def test_a_check_records_what_passed_for_exactly_these_files(capsys, fake):
    from grader import passed
    from grader.project import Project

    project = Project.at(fake.root)
    ex = BY_ID["04"]
    assert passed.verdict(project, ex) == "unchecked"
    assert "your 04 mlp is not started" in passed.learner_or_reference(project, ex)[1]
    fake.write("04", first=True)
    assert "has not been checked yet" in passed.learner_or_reference(project, ex)[1]
    fake.solve("04")
    assert main(fake.args("check", "04")) == 0
    assert passed.verdict(project, ex) == "passed"
    assert passed.learner_or_reference(project, ex)[0] == "exercises"
    fake.write("04", first=True)  # a save: the record no longer applies
    assert passed.verdict(project, ex) == "changed"
    assert "changed since its last check" in passed.learner_or_reference(project, ex)[1]
    assert main(fake.args("check", "04")) == 1
    assert passed.verdict(project, ex) == "failing"
    capsys.readouterr()
