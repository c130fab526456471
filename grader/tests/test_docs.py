"""The README's and CURRICULUM.md's tables of exercises say what the registry says."""

import re

import pytest

from grader.registry import EXERCISES, ROOT


def table_rows(path) -> dict:
    """{exercise id: the row's cells} for the markdown table rows that start with an exercise id."""
    rows = {}
    for line in (ROOT / path).read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| (\d\d) \|(.*)\|\s*$", line)
        if match:
            rows[match[1]] = [cell.strip() for cell in match[2].split("|")]
    return rows


@pytest.mark.parametrize("path", ["README.md", "CURRICULUM.md"])
def test_every_exercise_is_in_the_table_with_its_module_and_needs(path):
    rows = table_rows(path)
    assert list(rows) == [ex.id for ex in EXERCISES], f"{path}: the table's exercises differ from the registry's"
    for ex in EXERCISES:
        module, needs = rows[ex.id][0], rows[ex.id][-2 if path == "CURRICULUM.md" else -1]
        assert module == (f"`{ex.name}.py`" if ex.has_module else "—"), (path, ex.id)
        assert needs == ", ".join(ex.depends), (path, ex.id, needs)


def test_curriculum_titles_and_points_are_the_registry_s():
    rows = table_rows("CURRICULUM.md")
    for ex in EXERCISES:
        assert rows[ex.id][1] == ex.title and rows[ex.id][3] == str(ex.points), ex.id


def test_curriculum_has_a_written_section_per_exercise():
    text = (ROOT / "CURRICULUM.md").read_text(encoding="utf-8")
    for ex in EXERCISES:
        heading = f"## {ex.id} {ex.name.replace('_', ' ') if not ex.has_module else ex.name}"
        assert heading in text, f"CURRICULUM.md has no section {heading!r}"
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        assert "(written with the exercise)" not in section and len(section.split()) > 80, f"{heading} is a stub"
