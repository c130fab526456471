"""The kata's pytest plugin (loaded with `-p grader.plugin`, set in pyproject.toml).

- `--impl exercises|solutions` picks the implementation under test (default exercises);
  tests read it from the environment variable KATA_IMPL through tests/harness.py.
- A test that runs into an exercise's untouched TODO (`NotImplementedError("03 attention: ...")`)
  is reported as *not started* (an xfail with the TODO's text), not as a failure.
- `--kata-report FILE` writes every test's outcome and message as JSON; the grader and the
  mutant runner read that instead of scraping pytest's text output. Besides outcome and
  message, a failed test whose assertion named its mistake carries `cause` (the sentence; see
  tests/harness.py), a test whose learner module crashed on import carries `crash` ({file, line, error}),
  another failure `where` ({file, line} of the learner's code that raised, when it did), a
  timed-out one `timeout` (seconds) and `hung` ({file, line} of the learner's code that was
  running, when known); `modules` says, per learner module loaded, whether it was swapped and
  whether it merely re-exports the reference (`uses_reference`, a sentence, or null).
- `--kata-timeout SECONDS` (default 30, unless pytest's own `--timeout` is given): a time limit
  for every kata test without a timeout marker of its own (the end-to-end test, which trains,
  gets max(10x, 300 s)). Once a test times out in the learner's code, the tests that would run
  the same hanging code (those of the exercise whose file hung and of the exercises that depend
  on it) are not run but reported as timed out, so an infinite loop costs one time limit, not
  one per test: under plain pytest as under the grader.
- `--kata-threads N` (default 1): torch's threads per operation while the tests run.
- What pytest prints (grader/plugin/terminal.py): a learner's file that does not import is one
  block at the end, not a traceback per test; the TODOs reached; the swaps in force.
- `--kata-skip-untouched` (the grader's overview sets it): the tests of an exercise whose file is
  still byte for byte the fresh skeleton are reported not started without running. Not-started
  reports are built without formatting a traceback (that cost ~40 ms a test).
"""

import os
import re
from pathlib import Path

import pytest
from _pytest._code.code import ReprFileLocation, TerminalRepr

from .. import threads
from .collector import Collector
from .learner import (
    active_swaps, exercise_of, import_crash, is_timeout, learner_dir, learner_site, not_started_message, timeout_of,
)
from .runner import DEFAULT_TIMEOUT
from .terminal import Terminal

IMPLS = ("exercises", "solutions")
END_TO_END_TIMEOUT = 300  # seconds at least, with --kata-timeout, for the end-to-end test (it trains a model)


def pytest_addoption(parser):
    group = parser.getgroup("kata")
    group.addoption(
        "--impl", choices=IMPLS, default=os.environ.get("KATA_IMPL", "exercises"),
        help="which implementation the kata tests check: your exercises/ (default) or the reference solutions/",
    )
    group.addoption("--kata-report", metavar="FILE", help="write each test's outcome and message to FILE as JSON")
    group.addoption(
        "--kata-timeout", type=float, default=None, metavar="SECONDS",
        help="time limit per kata test (default 30; the end-to-end test gets max(10x, 300 s)); after a timeout, "
             "the tests that would run the same hanging code are reported as timed out without running",
    )
    group.addoption(
        "--kata-threads", type=threads.flag, default=1, metavar="N",
        help="torch's threads per operation while the kata's tests run (default 1: their tensors are tiny, and on "
             "a busy machine extra threads only wait; 0: torch's default)",
    )
    group.addoption(
        "--kata-skip-untouched", nargs="?", const="all", default=None, metavar="IDS",
        help="report the tests of an exercise whose file is still the fresh skeleton as not started, without "
             "running them, when the run has the exercises it depends on (the grader's fast path: each such "
             "test would stop at a TODO of the file); IDS (01,02) limits this to those exercises",
    )


def pytest_configure(config):
    os.environ["KATA_IMPL"] = config.getoption("impl")
    config.addinivalue_line("markers", "hf: needs the transformers library (slow to import)")
    collector = Collector(config.getoption("impl"), active_swaps(config))
    config.pluginmanager.register(collector, "kata-collector")
    config._kata_collector = collector
    config.pluginmanager.register(Terminal(config, collector), "kata-terminal")


class NotRun(Exception):
    """Raised in setup for a test that would run code that already hung in an earlier test."""


def untouched_todo(config, ex) -> str | None:
    """The first TODO's message if exercises/<module>.py is still exactly the fresh skeleton (and not swapped)."""
    from ..scaffold import strip_solutions
    from ..swaps import SwapFileError, read

    root = Path(config.rootpath)
    try:
        if ex in read(root / "swaps.txt"):
            return None
        text = (root / "exercises" / f"{ex.name}.py").read_text(encoding="utf-8")
        solution = root / "solutions" / f"{ex.name}.py"
        fresh = strip_solutions(solution.read_text(encoding="utf-8"), ex.label, solution.name)
    except (OSError, UnicodeDecodeError, ValueError, SwapFileError):
        return None
    match = re.search(r'raise NotImplementedError\("(.*)"\)', fresh)
    return match[1].replace('\\"', '"').replace("\\\\", "\\") if text == fresh and match else None


def pytest_collection_modifyitems(config, items):
    from ..registry import BY_ID, dependencies

    skip = config.getoption("kata_skip_untouched")
    if skip and config.getoption("impl") == "exercises":
        allowed = None if skip == "all" else set(skip.split(","))
        swapped = active_swaps(config)
        # only where the run also has every dependency, whose state tells "not started" from "blocked"
        present = {exercise_of(str(item.path)) for item in items}
        todos = {}
        for item in items:
            ex = BY_ID.get(exercise_of(str(item.path)) or "")
            if ex is None or not ex.has_module or (allowed is not None and ex.id not in allowed):
                continue
            if all(d.id in present for d in dependencies(ex, swapped)):
                if ex.id not in todos:
                    todos[ex.id] = untouched_todo(config, ex)
                item._kata_untouched = todos[ex.id]
    seconds = config.getoption("kata_timeout")
    if seconds is None and config.getoption("timeout", None) is not None:
        return  # the learner asked pytest-timeout for a limit of their own: it applies as given
    seconds = seconds or DEFAULT_TIMEOUT  # the grader's default too
    for item in items:
        ex = BY_ID.get(exercise_of(str(item.path)) or "")
        if ex is None or item.get_closest_marker("timeout") is not None:
            continue
        item.add_marker(pytest.mark.timeout(seconds if ex.has_module else max(10 * seconds, END_TO_END_TIMEOUT)))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    collector = getattr(item.config, "_kata_collector", None)
    if collector is not None and collector.hung:
        reason = collector.hung_before(exercise_of(str(item.path)))
        if reason:
            raise NotRun(*reason)
    todo = getattr(item, "_kata_untouched", None)
    if todo:
        raise NotImplementedError(todo)  # what the test would raise at once, without running it


@pytest.hookimpl(tryfirst=True, specname="pytest_runtest_makereport")
def pytest_runtest_makereport_not_started(item, call):
    """A not-started test's report, made here without formatting its traceback (that costs ~40 ms a test)."""
    message = not_started_message(call.excinfo)
    if not message or call.when not in ("setup", "call"):
        return None
    reason = f"not started: {message}"
    report = pytest.TestReport(
        item.nodeid, item.location, {name: 1 for name in item.keywords}, "skipped",
        (str(item.path), item.location[1], reason), call.when,
        duration=call.duration, start=call.start, stop=call.stop, user_properties=item.user_properties,
    )
    report.wasxfail = reason
    report.kata_not_started = message
    return report


@pytest.hookimpl(tryfirst=True, specname="pytest_runtest_makereport")
def pytest_runtest_makereport_kata_failure(item, call):
    """A kata assertion's report (tests/harness.py: its message is the whole teaching text), with the test's
    line instead of a formatted traceback: the traceback adds nothing for the learner, and formatting one
    costs more than most tests (~0.1 s each)."""
    excinfo = call.excinfo
    if excinfo is None or call.when != "call" or not kata_assertion(excinfo.value):
        return None
    line = next((entry.lineno + 1 for entry in reversed(excinfo.traceback) if entry.path == item.path),
                item.location[1] + 1)
    message = f"{type(excinfo.value).__name__}: {excinfo.value}"
    report = pytest.TestReport(
        item.nodeid, item.location, {name: 1 for name in item.keywords}, "failed",
        KataFailure(item.location[0], line, message), call.when,
        duration=call.duration, start=call.start, stop=call.stop, user_properties=item.user_properties,
    )
    report.kata_message = message
    return report


class KataFailure(TerminalRepr):
    """A kata assertion as pytest shows it: the test file's line and the message (also in the summary)."""

    def __init__(self, path, line, message):
        self.reprcrash = ReprFileLocation(path, line, message)

    def toterminal(self, tw) -> None:
        crash = self.reprcrash
        tw.line(f"{crash.path}:{crash.lineno}: {crash.message}")


def kata_assertion(error) -> bool:
    """A failure whose message is a kata test's whole teaching text (tests/harness.py's Mismatch, OffLimits)."""
    return isinstance(error, AssertionError) and type(error).__name__ in ("Mismatch", "OffLimits")


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    excinfo = call.excinfo
    if excinfo is None or not report.failed:
        return
    folder = learner_dir(item.config)
    if excinfo.errisinstance(NotRun):
        text, hung = excinfo.value.args
        report.longrepr = text
        report.kata_outcome, report.kata_hung, report.kata_timeout = "timeout", hung, timeout_of(item)
        return
    if is_timeout(excinfo):
        hung = learner_site(excinfo, folder)
        report.kata_outcome, report.kata_hung, report.kata_timeout = "timeout", hung, timeout_of(item)
        collector = getattr(item.config, "_kata_collector", None)
        if collector is not None and hung is not None:
            collector.record_hang(exercise_of(str(item.path)), hung, item.name)
        return
    cause = getattr(excinfo.value, "cause", None)
    if isinstance(cause, str) and cause:
        report.kata_cause = cause  # the mistake the test established (tests/harness.py: Mismatch.cause)
    crash = import_crash(excinfo, folder)
    if crash:
        report.kata_crash = crash
    else:
        report.kata_where = learner_site(excinfo, folder)
