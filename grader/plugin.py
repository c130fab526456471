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
- `--kata-timeout SECONDS` (the grader sets it): a time limit for every kata test without a
  timeout marker of its own (the end-to-end test, which trains, gets max(10x, 300 s)). Once a
  test times out in the learner's code, the tests that would run the same hanging code (those of
  the exercise whose file hung and of the exercises that depend on it) are not run but reported
  as timed out, so an infinite loop costs one time limit, not one per test.
- `--kata-skip-untouched` (the grader's overview sets it): the tests of an exercise whose file is
  still byte for byte the fresh skeleton are reported not started without running. Not-started
  reports are built without formatting a traceback (that cost ~40 ms a test).
"""

import json
import os
import re
import sys
import time
import traceback
from pathlib import Path

import pytest

IMPLS = ("exercises", "solutions")
NOT_STARTED = re.compile(r"^(?P<id>\d\d) (?P<name>\w+): ")
TEST_FILE = re.compile(r"test_(?P<id>\d\d)_\w+\.py$")
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
        help="time limit per kata test (the end-to-end test gets max(10x, 300 s)); after a timeout, the tests "
             "that would run the same hanging code are reported as timed out without running",
    )
    group.addoption(
        "--kata-skip-untouched", action="store_true",
        help="report the tests of an exercise whose file is still the fresh skeleton as not started, without "
             "running them, when the run has the exercises it depends on (the grader's fast path: each such "
             "test would stop at a TODO of the file)",
    )


def pytest_configure(config):
    os.environ["KATA_IMPL"] = config.getoption("impl")
    config.addinivalue_line("markers", "hf: needs the transformers library (slow to import)")
    collector = Collector(config.getoption("impl"))
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


class NotRun(Exception):
    """Raised in setup for a test that would run code that already hung in an earlier test."""


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
        return dict(file=_relative(folder, error.filename), line=error.lineno, error=error.msg)
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


def untouched_todo(config, ex) -> str | None:
    """The first TODO's message if exercises/<module>.py is still exactly the fresh skeleton (and not swapped)."""
    from .scaffold import strip_solutions
    from .swaps import SwapFileError, read

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
    from .registry import BY_ID, dependencies

    if config.getoption("kata_skip_untouched") and config.getoption("impl") == "exercises":
        # only where the run also has every dependency, whose state tells "not started" from "blocked"
        present = {exercise_of(str(item.path)) for item in items}
        todos = {}
        for item in items:
            ex = BY_ID.get(exercise_of(str(item.path)) or "")
            if ex is not None and ex.has_module and all(d.id in present for d in dependencies(ex)):
                if ex.id not in todos:
                    todos[ex.id] = untouched_todo(config, ex)
                item._kata_untouched = todos[ex.id]
    seconds = config.getoption("kata_timeout")
    if not seconds:
        return
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
        if collector is not None and hung is not None and item.config.getoption("kata_timeout"):
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

    def __init__(self, impl=None):
        self.impl = impl
        self.results: dict[str, dict] = {}
        self.modules: dict[str, dict] = {}
        self.hung: dict[str, tuple] = {}  # exercise id whose code hung -> (site, test name)
        self.started = time.perf_counter()

    def _record(self, nodeid, path, outcome, message="", details="", duration=0.0, **extra):
        self.results[nodeid] = dict(
            nodeid=nodeid, exercise=exercise_of(path), outcome=outcome,
            message=message, details=details, duration=round(duration, 4),
            **{key: value for key, value in extra.items() if value is not None},
        )

    def record_hang(self, test_exercise, site, test_name):
        """Remember that the learner's code at site hung (a hang elsewhere, say in an import, is not repeated)."""
        from .registry import BY_ID, BY_NAME

        ex = BY_NAME.get(Path(site["file"]).stem)
        ex_id = ex.id if ex is not None and ex.has_module else test_exercise
        if ex_id in BY_ID and ex_id not in self.hung:
            self.hung[ex_id] = (site, test_name)

    def hung_before(self, exercise) -> tuple | None:
        """(sentence, site) if a test of this exercise would run code that already hung."""
        from .registry import BY_ID, dependencies

        ex = BY_ID.get(exercise or "")
        if ex is None:
            return None
        for candidate in [ex, *dependencies(ex)]:
            if candidate.id in self.hung:
                site, test_name = self.hung[candidate.id]
                return (f"not run: {site['file']}, line {site['line']} timed out in {test_name}", site)
        return None

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
                outcome = getattr(report, "kata_outcome", None) or (
                    "timeout" if "Timeout" in message and "pytest-timeout" in str(report.longrepr) else (
                        "failed" if report.when == "call" else "error"))
            elif report.skipped:
                message = crash_message(report)
            details = str(report.longrepr) if report.failed else ""
            self._record(report.nodeid, path, outcome, message, details, report.duration,
                         crash=getattr(report, "kata_crash", None), hung=getattr(report, "kata_hung", None),
                         where=getattr(report, "kata_where", None), cause=getattr(report, "kata_cause", None),
                         timeout=getattr(report, "kata_timeout", None) if outcome == "timeout" else None)
        elif report.when == "teardown" and report.failed and previous and previous["outcome"] == "passed":
            self._record(report.nodeid, path, "error", crash_message(report), str(report.longrepr))

    def pytest_sessionfinish(self, session):
        self.modules = module_checks(session.config, {r["exercise"] for r in self.results.values()})

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
            impl=self.impl or os.environ.get("KATA_IMPL", "exercises"),
            seconds=round(time.perf_counter() - self.started, 3),
            tests=list(self.results.values()),
            modules=self.modules,
        )


def module_checks(config, exercise_ids) -> dict:
    """Per learner module of the exercises run: swapped? merely re-exporting the reference?"""
    if config.getoption("impl") != "exercises":
        return {}
    from .registry import MODULE_EXERCISES
    from .shortcut import reference_objects, uses_reference

    folder = learner_dir(config)
    checks = {}
    for ex in MODULE_EXERCISES:
        if ex.id not in exercise_ids:
            continue
        path = folder / f"{ex.name}.py"
        loaded = sys.modules.get(f"exercises.{ex.name}")
        swapped = loaded is not None and loaded.__name__.startswith("solutions")
        reason = None
        if not swapped and path.exists():
            reason = uses_reference(path)
            reference = sys.modules.get(f"solutions.{ex.name}")
            if reason is None and loaded is not None and reference is not None and _in(folder, loaded.__file__):
                reason = reference_objects(loaded, reference)
        checks[ex.name] = dict(swapped=swapped, uses_reference=reason)
    return checks
