"""The plugin's record of a session: one plain dict per test (outcome, message, cause, crash...),
written as JSON with --kata-report and returned to the grader by grader/plugin/runner.py."""

import json
import os
import sys
import time
from pathlib import Path

from .learner import _in, exercise_of, learner_dir


def crash_message(report) -> str:
    """The exception line (e.g. 'AssertionError: 03 attention: ...') of a failed report."""
    if getattr(report, "kata_message", None):
        return report.kata_message
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    if isinstance(longrepr, tuple):  # skip: (file, line, reason)
        return str(longrepr[2])
    return str(longrepr).strip().splitlines()[-1] if longrepr else ""


class Collector:
    """Records one result per test (and per broken test file) as plain dicts."""

    def __init__(self, impl=None, swapped=()):
        self.impl = impl
        self.swapped = list(swapped)  # swapped exercises: their reference runs, so a hang there is not theirs
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
        from ..registry import BY_ID, BY_NAME

        ex = BY_NAME.get(Path(site["file"]).stem)
        ex_id = ex.id if ex is not None and ex.has_module else test_exercise
        if ex_id in BY_ID and ex_id not in self.hung:
            self.hung[ex_id] = (site, test_name)

    def hung_before(self, exercise) -> tuple | None:
        """(sentence, site) if a test of this exercise would run code that already hung."""
        from ..registry import BY_ID, dependencies

        ex = BY_ID.get(exercise or "")
        if ex is None:
            return None
        for candidate in [ex, *dependencies(ex, self.swapped)]:
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
    from ..registry import MODULE_EXERCISES
    from ..shortcut import reference_objects, uses_reference

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
