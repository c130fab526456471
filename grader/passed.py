"""Which exercises passed, and for which contents of their files: .kata/passed.json.

`train` and `sample` use a learner's part of the second half (10 kv_cache, 11 bpe, 12 muon,
13 checkpoint, 14 speed) once that exercise passes, and the given or reference part until
then. Running an exercise's tests to find out would cost seconds at every start, so every
command that runs tests (the overview, list, check, watch, solution) records here each
exercise it saw pass, keyed by the contents of everything its verdict depends on: the
learner's files it runs (its own and its dependencies', swaps applied), swaps.txt, its test
file, tests/harness.py and the reference module. A changed byte anywhere makes the record
stale, and then the commands say so ("changed since its last check") instead of guessing.

The file is the grader's own cache, not the learner's: it is rewritten freely, and one that
cannot be read is treated as empty.

    before = keys(project, exercises, swapped) before a run of tests
    record(project, progress, swapped, before) after it
    verdict(project, ex) -> "passed" | "failing" | "changed" | "unchecked"
    learner_or_reference(project, ex)         whose part a command uses, and a phrase saying why
"""

import hashlib
import json

from .registry import Exercise, dependencies

FILENAME = "passed.json"


def key(project, ex: Exercise, swapped) -> str:
    """A hash of every file ex's verdict depends on."""
    files = [project.root / "swaps.txt", project.test_file(ex), project.root / "tests" / "harness.py"]
    for d in [ex, *dependencies(ex, swapped)]:
        if d.has_module:
            files += [project.exercise_file(d), project.solution_file(d)]
    digest = hashlib.sha1()
    for path in files:
        digest.update(str(path.relative_to(project.root)).encode())
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<missing>")
    return digest.hexdigest()


def _load(project) -> dict:
    try:
        data = json.loads((project.state_dir / FILENAME).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def keys(project, exercises, swapped) -> dict:
    """Each exercise's key now: taken before a run of its tests, so that a file saved during the run is not
    recorded as the one that ran."""
    return {ex.id: key(project, ex, swapped) for ex in exercises}


def record(project, progress, swapped, before: dict) -> None:
    """Remember each exercise of progress (from a run of its tests on the learner's files) as passed or not,
    under the keys its files had when the run started (before: keys())."""
    if progress.impl != "exercises" or not project.state_dir.parent.is_dir():
        return
    data = _load(project)
    for status in progress.statuses:
        if status.state in ("swapped", "missing", "no tests") or not status.tests or status.exercise.id not in before:
            continue
        data[status.exercise.id] = dict(key=before[status.exercise.id], passed=status.state == "passed")
    try:
        project.state_dir.mkdir(exist_ok=True)
        tmp = project.state_dir / (FILENAME + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(project.state_dir / FILENAME)
    except OSError:
        pass  # a read-only checkout: nothing is remembered, and the commands say it "has not been checked yet"


def verdict(project, ex: Exercise, swapped=()) -> str:
    """"passed" or "failing" for exactly these files; "changed" when the last check saw other files;
    "unchecked" when no run of its tests was ever recorded."""
    entry = _load(project).get(ex.id)
    if not isinstance(entry, dict):
        return "unchecked"
    if entry.get("key") != key(project, ex, swapped):
        return "changed"
    return "passed" if entry.get("passed") else "failing"


def learner_or_reference(project, ex: Exercise, swapped=()) -> tuple[str, str]:
    """("exercises" or "solutions", a phrase for a run's header saying whose part it is and why)."""
    from .scaffold import is_fresh

    if ex in swapped:
        return "solutions", f"the reference's ({ex.label} is swapped)"
    found = verdict(project, ex, swapped)
    if found == "passed":
        return "exercises", f"yours ({ex.label} passes)"
    check = f"`python -m grader check {ex.id}`"
    if is_fresh(project, ex):
        why = f"your {ex.label} is not started"
    elif found == "failing":
        why = f"your {ex.label} does not pass yet"
    elif found == "changed":
        why = f"your {ex.label}, or a file or swap it depends on, changed since its last check: {check}"
    else:
        why = f"your {ex.label} has not been checked yet: {check}"
    return "solutions", f"the reference's ({why})"
