"""The grader's small memory, .kata/state.json: how many hints each exercise has shown, and give-ups.

    {"version": 1, "hints": {"03": 2}, "gave_up": {"03": "2025-01-31T14:05:09"}}

A file that is not this shape is never rewritten. Commands that only read it (the
overview, check, watch, hint) say so in one sentence and go on as if it were empty;
a command that must record something in it (`solution --give-up`) stops with that
sentence (exit 2) until the learner fixes or deletes it.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime

from .project import KataError, Project
from .registry import BY_ID


@dataclass
class State:
    hints: dict[str, int] = field(default_factory=dict)  # exercise id -> hints shown so far
    gave_up: dict[str, str] = field(default_factory=dict)  # exercise id -> when (ISO time)


def read(project: Project) -> tuple[State, str | None]:
    """(the state, None), or (an empty state, the sentence saying why the file cannot be used)."""
    try:
        return load(project), None
    except KataError as error:
        return State(), str(error)


def load(project: Project) -> State:
    path = project.state_file
    name = f"{path.parent.name}/{path.name}"
    if path.parent.exists() and not path.parent.is_dir():
        raise KataError(f"{path.parent.name} at the project root should be the grader's folder, but it is a file; "
                        f"move it away.")
    if not path.exists():
        return State()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else type(error).__name__
        raise KataError(f"{name} is not valid ({reason}); fix or delete it (it only holds hint progress "
                        f"and give-ups).") from None
    problem = _problem(data)
    if problem:
        raise KataError(f"{name} is not valid ({problem}); fix or delete it (it only holds hint progress "
                        f"and give-ups).")
    return State(hints=dict(data.get("hints", {})), gave_up=dict(data.get("gave_up", {})))


def _problem(data) -> str | None:
    if not isinstance(data, dict):
        return "not a JSON object"
    unknown = set(data) - {"version", "hints", "gave_up"}
    if unknown:
        return f"unknown key {sorted(unknown)[0]!r}"
    hints = data.get("hints", {})
    if not isinstance(hints, dict):
        return "'hints' is not an object"
    for key, value in hints.items():
        if key not in BY_ID:
            return f"'hints' names no exercise {key!r}"
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"'hints' for {key} is not a count"
    gave_up = data.get("gave_up", {})
    if not isinstance(gave_up, dict):
        return "'gave_up' is not an object"
    for key, value in gave_up.items():
        if key not in BY_ID:
            return f"'gave_up' names no exercise {key!r}"
        if not isinstance(value, str):
            return f"'gave_up' for {key} is not a time"
    return None


def save(project: Project, state: State) -> None:
    data = dict(version=1, hints=dict(sorted(state.hints.items())), gave_up=dict(sorted(state.gave_up.items())))
    tmp = project.state_file.with_suffix(".tmp")
    try:
        project.state_dir.mkdir(exist_ok=True)
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        tmp.replace(project.state_file)
    except OSError as error:
        raise KataError(f"Cannot write {project.state_file} ({error.strerror or error}).") from None


def now() -> str:
    return datetime.now().isoformat(timespec="seconds")


def reveal_hints(project: Project, ex, every: bool = False) -> tuple[int, int, str | None]:
    """One more of ex's hints (every: all of them), remembered in the state file: (shown before, shown now,
    problem). With a malformed state file nothing is written and problem says why."""
    memory, problem = read(project)
    shown = memory.hints.get(ex.id, 0)
    count = len(ex.hints) if every else min(shown + 1, len(ex.hints))
    if not problem and count != shown:
        memory.hints[ex.id] = count
        save(project, memory)
    return shown, count, problem
