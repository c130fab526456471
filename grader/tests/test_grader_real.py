"""The grader on a copy of the real project with a fresh exercises/ (what a learner clones)."""

import json

from grader.cli import main
from grader.registry import EXERCISES
from grader.sandbox import make_project


def test_fresh_checkout_shows_zero_percent_and_next_01_norms(tmp_path, capsys):
    project = make_project(tmp_path, {}, exercises="fresh")
    assert main(["--root", str(project), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["score"] == 0 and data["percent"] == 0
    assert data["next"] == {"id": "01", "name": "norms", "command": "pytest tests/test_01_norms.py"}
    for exercise in data["exercises"]:
        if exercise["state"] == "no tests":  # a test file still being written
            continue
        # every test of a fresh checkout runs into a TODO: nothing fails, crashes or passes
        assert exercise["state"] in ("not started", "blocked"), (exercise["id"], exercise["message"])
        assert exercise["passed"] == 0 and exercise["total"] > 0
        assert {t["outcome"] for t in exercise["tests"]} <= {"not_started", "skipped"}, exercise["id"]
    assert len(data["exercises"]) == len(EXERCISES)


def test_the_overview_at_80_columns_shows_a_named_mistake_whole(tmp_path, capsys, monkeypatch):
    """layer_norm with the unbiased variance: the overview wraps the diagnosis, it never cuts it."""
    from grader.mutants import corpus
    from grader.registry import ROOT

    mutant = next(m for m in corpus() if m.id == "01-unbiased-variance")
    text = mutant.apply((ROOT / "solutions" / "norms.py").read_text(encoding="utf-8"))
    project = make_project(tmp_path, {}, exercises="fresh")
    (project / "exercises" / "norms.py").write_text(text, encoding="utf-8")
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["--root", str(project), "--format", "json"]) == 0
    norms = next(e for e in json.loads(capsys.readouterr().out)["exercises"] if e["id"] == "01")
    cause = next(t["cause"] for t in norms["tests"] if t.get("cause"))
    assert main(["--root", str(project)]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert " ".join(cause.split()) in " ".join(out.split()), out


def test_every_mutant_of_the_corpus_applies_once_and_compiles():
    """A corpus edit that no longer matches its reference, or leaves a syntax error, is a defect of the corpus:
    found here in a second, not by CI's mutant run."""
    from grader.mutants import corpus
    from grader.registry import ROOT

    broken = []
    for mutant in corpus():
        try:
            mutant.apply((ROOT / "solutions" / f"{mutant.module}.py").read_text(encoding="utf-8"))
        except ValueError as error:
            broken.append(str(error))
    assert not broken, "\n".join(broken)
