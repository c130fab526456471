"""Where the learner's code is and what it did: which exercise a test belongs to, an untouched
TODO, a crash on import, the line that raised or hung, a test's time limit."""

import re
import traceback
from pathlib import Path

import pytest

NOT_STARTED = re.compile(r"^(?P<id>\d\d) (?P<name>\w+): ")
TEST_FILE = re.compile(r"test_(?P<id>\d\d)_\w+\.py$")


def exercise_of(path: str) -> str | None:
    match = TEST_FILE.search(path.replace("\\", "/"))
    return match["id"] if match else None


def not_started_message(excinfo):
    """The TODO text if excinfo is an exercise's untouched NotImplementedError, else None."""
    if excinfo is None or not excinfo.errisinstance(NotImplementedError):
        return None
    message = str(excinfo.value)
    match = NOT_STARTED.match(message)
    if not match:
        return None
    from ..registry import BY_ID  # cheap, and only needed here

    return message if match["id"] in BY_ID else None


def learner_dir(config) -> Path:
    """The folder whose files are the implementation under test (exercises/ or, with --impl, solutions/)."""
    return Path(config.rootpath) / config.getoption("impl")


def _in(folder: Path, filename) -> bool:
    try:
        return Path(filename).resolve().parent == folder.resolve()
    except (OSError, ValueError, TypeError):
        return False


def _relative(folder: Path, filename) -> str:
    return f"{folder.name}/{Path(filename).name}"


def import_crash(excinfo, folder: Path) -> dict | None:
    """{file, line, error} if excinfo is a learner module failing to import (syntax error or top-level crash)."""
    error = excinfo.value
    if isinstance(error, SyntaxError) and error.filename and _in(folder, error.filename):
        return dict(file=_relative(folder, error.filename), line=error.lineno, error=f"{type(error).__name__}: {error.msg}")
    frames = [(frame.f_code, lineno) for frame, lineno in traceback.walk_tb(excinfo.tb)]
    module_frames = [i for i, (code, _) in enumerate(frames) if code.co_name == "<module>" and _in(folder, code.co_filename)]
    if not module_frames:
        return None
    code, line = frames[module_frames[-1]]
    for later, later_line in frames[module_frames[-1]:]:
        if later.co_filename == code.co_filename:
            line = later_line
    text = f"{type(error).__name__}: {error}".strip().rstrip(":")
    return dict(file=_relative(folder, code.co_filename), line=line, error=text)


def learner_site(excinfo, folder: Path) -> dict | None:
    """{file, line} of the innermost frame of the learner's code (where it raised, or was running at a timeout)."""
    site = None
    for frame, lineno in traceback.walk_tb(excinfo.tb):
        if _in(folder, frame.f_code.co_filename):
            site = dict(file=_relative(folder, frame.f_code.co_filename), line=lineno)
    return site


def is_timeout(excinfo) -> bool:
    return excinfo.errisinstance(pytest.fail.Exception) and "from pytest-timeout" in str(excinfo.value)


def timeout_of(item) -> float | None:
    """The time limit pytest-timeout applies to item, in seconds (None when there is none)."""
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        value = marker.kwargs.get("timeout", marker.args[0] if marker.args else None)
    else:
        value = item.config.getoption("timeout", None)
        if value is None:
            try:
                value = item.config.getini("timeout")
            except ValueError:  # pytest-timeout not loaded
                value = None
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def active_swaps(config) -> list:
    """The swapped exercises of the project under test (none for --impl solutions or a malformed file)."""
    from ..swaps import SwapFileError, read

    if config.getoption("impl") != "exercises":
        return []
    try:
        return read(Path(config.rootpath) / "swaps.txt")
    except SwapFileError:
        return []  # every test that imports exercises/ crashes, and grader/plugin/terminal.py says why
