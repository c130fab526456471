"""grader/scaffold.py: exercises/ is generated from solutions/ and stays in sync."""

import ast
import importlib
import re

import pytest

from grader import scaffold
from grader.registry import BY_ID, MODULE_EXERCISES

SAMPLE = '''def f(x):
    """Doc."""
    ### BEGIN SOLUTION
    ### TODO: return x doubled, same shape
    ### TODO: (any dtype)
    return 2 * x
    ### END SOLUTION


class M:
    def forward(self, x):
        y = x
        ### BEGIN SOLUTION
        ### TODO: say "hi"; then add 1
        return y + 1
        ### END SOLUTION
'''


def test_a_region_becomes_its_todo_and_a_labelled_not_implemented_error():
    text = scaffold.strip_solutions(SAMPLE, "07 optim")
    assert "return 2 * x" not in text and "return y + 1" not in text
    assert "    # TODO: return x doubled, same shape\n    #       (any dtype)\n" in text
    assert 'raise NotImplementedError("07 optim: f — return x doubled, same shape")' in text
    assert 'raise NotImplementedError("07 optim: M.forward — say \\"hi\\"; then add 1")' in text
    assert "        y = x\n" in text  # given code outside regions stays
    ast.parse(text)


LATER = '''class M:
    def forward(self, x, cache=None):
        ### BEGIN SOLUTION
        ### TODO: double x
        y = 2 * x
        ### END SOLUTION
        if cache is not None:
            ### BEGIN SOLUTION 10
            ### TODO: add what the cache holds
            y = y + cache
            ### END SOLUTION
        return y
'''


def test_a_region_marked_with_another_exercise_is_labelled_with_that_exercise():
    text = scaffold.strip_solutions(LATER, "03 attention")
    assert 'raise NotImplementedError("03 attention: M.forward — double x")' in text
    assert ("            # TODO: add what the cache holds\n"
            '            raise NotImplementedError("10 kv_cache: M.forward — add what the cache holds")\n') in text
    assert "y = y + cache" not in text and "        if cache is not None:\n" in text
    ast.parse(text)


@pytest.mark.parametrize("marker", ["### BEGIN SOLUTION 42", "### BEGIN SOLUTION ten"])
def test_a_region_marked_with_an_unknown_exercise_is_reported(marker):
    with pytest.raises(scaffold.ScaffoldError, match="not an exercise id"):
        scaffold.strip_solutions(f"{marker}\n### TODO: x\nx = 1\n### END SOLUTION\n", "01 norms", "x.py")


@pytest.mark.parametrize("broken, words", [
    ("### BEGIN SOLUTION\nx = 1\n", "without an END"),
    ("### END SOLUTION\n", "without a BEGIN"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside another"),
    ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "TODO"),
])
def test_malformed_markers_are_reported_with_the_line(broken, words):
    with pytest.raises(scaffold.ScaffoldError, match=words):
        scaffold.strip_solutions(broken, "01 norms", "x.py")


def test_committed_exercises_are_in_sync_with_solutions():
    assert scaffold.differences() == [], "run `python -m grader.scaffold --check` for details"


@pytest.mark.parametrize("ex", MODULE_EXERCISES, ids=lambda e: e.label)
def test_every_exercise_module_has_regions_and_no_solution_code(ex):
    solution = (scaffold.SOLUTIONS / f"{ex.name}.py").read_text(encoding="utf-8")
    fresh = scaffold.exercise_text(ex.name)
    regions = re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", solution, flags=re.S)
    assert regions, f"solutions/{ex.name}.py has no learner regions"
    assert fresh.count(f'raise NotImplementedError("{ex.label}: ') == len(regions)
    hidden = {line.strip() for region in regions for line in region.splitlines()
              if line.strip() and not line.strip().startswith("###")}
    leaked = [line for line in fresh.splitlines() if line.strip() in hidden and len(line.strip()) > 12]
    assert not leaked, f"solution lines left in exercises/{ex.name}.py: {leaked[:3]}"


def test_regions_of_later_exercises_are_labelled_with_them_and_hide_their_code():
    for path in sorted(scaffold.SOLUTIONS.glob("*.py")):
        solution = path.read_text(encoding="utf-8")
        regions = re.findall(r"### BEGIN SOLUTION (\d\d)\n(.*?)### END SOLUTION", solution, flags=re.S)
        if not regions:
            continue
        fresh = scaffold.exercise_text(path.stem)
        for ex_id in {ex_id for ex_id, _ in regions}:
            label = BY_ID[ex_id].label
            mine = [body for i, body in regions if i == ex_id]
            assert fresh.count(f'raise NotImplementedError("{label}: ') == len(mine), (path.name, label)
            hidden = {line.strip() for body in mine for line in body.splitlines()
                      if line.strip() and not line.strip().startswith("###")}
            leaked = [line for line in fresh.splitlines() if line.strip() in hidden and len(line.strip()) > 12]
            assert not leaked, f"{label}'s solution lines left in exercises/{path.name}: {leaked[:3]}"


def test_generated_modules_import_and_name_their_exercise(tmp_path, monkeypatch):
    out = tmp_path / "fresh_pkg"
    scaffold.write(out)
    (out / "__init__.py").write_text("")  # without the swap hook: this is a stand-alone copy
    monkeypatch.syspath_prepend(str(tmp_path))
    norms = importlib.import_module("fresh_pkg.norms")
    with pytest.raises(NotImplementedError, match=r"^01 norms: layer_norm — "):
        norms.layer_norm(None)


def test_write_refuses_an_existing_folder(tmp_path):
    assert scaffold.main(["--out", str(tmp_path)]) == 2
