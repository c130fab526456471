"""The kata's pytest plugin (loaded with `-p grader.plugin`, set in pyproject.toml).

- `--impl exercises|solutions` picks the implementation under test (default exercises);
  tests read it from the environment variable KATA_IMPL through tests/harness.py.
- A test that runs into an exercise's untouched TODO (`NotImplementedError("03 attention: ...")`)
  is reported as *not started* (an xfail with the TODO's text), not as a failure.
- `--kata-report FILE` writes every test's outcome and message as JSON; the grader and the
  mutant runner read that instead of scraping pytest's text output.
"""

import json
import os
import re
import time
from pathlib import Path

import pytest

IMPLS = ("exercises", "solutions")
NOT_STARTED = re.compile(r"^(?P<id>\d\d) (?P<name>\w+): ")
TEST_FILE = re.compile(r"test_(?P<id>\d\d)_\w+\.py$")


def pytest_addoption(parser):
    group = parser.getgroup("kata")
    group.addoption(
        "--impl", choices=IMPLS, default=os.environ.get("KATA_IMPL", "exercises"),
        help="which implementation the kata tests check: your exercises/ (default) or the reference solutions/",
    )
    group.addoption("--kata-report", metavar="FILE", help="write each test's outcome and message to FILE as JSON")


def pytest_configure(config):
    os.environ["KATA_IMPL"] = config.getoption("impl")
    config.addinivalue_line("markers", "hf: needs the transformers library (slow to import)")
    collector = Collector()
    config.pluginmanager.register(collector, "kata-collector")
    config._kata_collector = collector


def not_started_message(excinfo):
    """The TODO text if excinfo is an exercise's untouched NotImplementedError, else None."""
    if excinfo is None or not excinfo.errisinstance(NotImplementedError):
        return None
    message = str(excinfo.value)
    match = NOT_STARTED.match(message)
    if not match:
        return None
    from .registry import BY_ID  # cheap, and only needed here

    return message if match["id"] in BY_ID else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    message = not_started_message(call.excinfo)
    if message and report.outcome == "failed" and call.when in ("setup", "call"):
        report.outcome = "skipped"
        report.wasxfail = f"not started: {message}"
        report.kata_not_started = message


def exercise_of(path: str) -> str | None:
    match = TEST_FILE.search(path.replace("\\", "/"))
    return match["id"] if match else None


def crash_message(report) -> str:
    """The exception line (e.g. 'AssertionError: 03 attention: ...') of a failed report."""
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    if isinstance(longrepr, tuple):  # skip: (file, line, reason)
        return str(longrepr[2])
    return str(longrepr).strip().splitlines()[-1] if longrepr else ""


class Collector:
    """Records one result per test (and per broken test file) as plain dicts."""

    def __init__(self):
        self.results: dict[str, dict] = {}
        self.started = time.perf_counter()

    def _record(self, nodeid, path, outcome, message="", details="", duration=0.0):
        self.results[nodeid] = dict(
            nodeid=nodeid, exercise=exercise_of(path), outcome=outcome,
            message=message, details=details, duration=round(duration, 4),
        )

    def pytest_collectreport(self, report):
        if report.failed:
            path = report.nodeid.split("::")[0]
            self._record(report.nodeid or path, path, "error", crash_message(report), str(report.longrepr))

    def pytest_runtest_logreport(self, report):
        path = report.nodeid.split("::")[0]
        previous = self.results.get(report.nodeid)
        if report.when == "call" or (report.when == "setup" and not report.passed):
            outcome, message = report.outcome, ""
            if getattr(report, "kata_not_started", None):
                outcome, message = "not_started", report.kata_not_started
            elif report.failed:
                message = crash_message(report)
                outcome = "timeout" if "Timeout" in message and "pytest-timeout" in str(report.longrepr) else (
                    "failed" if report.when == "call" else "error")
            elif report.skipped:
                message = crash_message(report)
            details = str(report.longrepr) if report.failed else ""
            self._record(report.nodeid, path, outcome, message, details, report.duration)
        elif report.when == "teardown" and report.failed and previous and previous["outcome"] == "passed":
            self._record(report.nodeid, path, "error", crash_message(report), str(report.longrepr))

    def pytest_terminal_summary(self, terminalreporter, config):
        todos = sorted({r["message"] for r in self.results.values() if r["outcome"] == "not_started"})
        if todos:
            terminalreporter.section("not started")
            shown = todos[:8]
            for todo in shown:
                terminalreporter.line(todo)
            if len(todos) > len(shown):
                terminalreporter.line(f"... and {len(todos) - len(shown)} more")
        path = config.getoption("kata_report")
        if path:
            Path(path).write_text(json.dumps(self.report(), indent=1), encoding="utf-8")

    def report(self) -> dict:
        return dict(
            impl=os.environ.get("KATA_IMPL", "exercises"),
            seconds=round(time.perf_counter() - self.started, 3),
            tests=list(self.results.values()),
        )
