"""Run kata tests in this process with pytest's own API and return the plugin's report.

    report = run_tests(project, [BY_ID["01"], BY_ID["03"]], impl="exercises", timeout=20)
    report["tests"]    # one dict per test: nodeid, exercise, outcome, message, details, ...
    report["modules"]  # per learner module: swapped, uses_reference

One pytest session collects every outcome through grader/plugin/ (no text is
scraped). Each run starts from fresh imports of the learner's code (and of the
project's tests and reference), so a file saved between two runs is seen, and
the modules it found are put back afterwards, so running inside another pytest
session (the grader's own tests) leaves that session as it was.
"""

import contextlib
import io
import os
import sys

import pytest

from ..project import KataError, Project
from ..registry import ROOT, Exercise

PROJECT_FOLDERS = ("exercises", "solutions", "tests", "data")
DEFAULT_TIMEOUT = 30.0  # seconds per test; the end-to-end test gets max(10x, 300 s) (see grader/plugin/)


def _project_module(name: str, module, folders: tuple[str, ...]) -> bool:
    if name.split(".")[0] in ("exercises", "solutions"):
        return True
    location = getattr(module, "__file__", None)
    return isinstance(location, str) and os.path.abspath(location).startswith(folders)


@contextlib.contextmanager
def fresh_imports(project: Project):
    """Forget the project's modules (learner code, reference, tests) for the run; restore them afterwards."""
    folders = tuple({os.path.join(str(root), name, "") for root in {ROOT, project.root, ROOT.resolve(),
                                                                       project.root.resolve()}
                     for name in PROJECT_FOLDERS})
    saved = {name: mod for name, mod in list(sys.modules.items()) if _project_module(name, mod, folders)}
    saved_path = list(sys.path)
    saved_impl = os.environ.get("KATA_IMPL")
    for name in saved:
        del sys.modules[name]
    try:
        yield
    finally:
        for name, mod in list(sys.modules.items()):
            if _project_module(name, mod, folders):
                del sys.modules[name]
        sys.modules.update(saved)
        sys.path[:] = saved_path
        if saved_impl is None:
            os.environ.pop("KATA_IMPL", None)
        else:
            os.environ["KATA_IMPL"] = saved_impl


@contextlib.contextmanager
def no_plugin_autoload():
    """pytest without loading every installed plugin's entry point (a scan of all installed packages)."""
    saved = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = saved


class _Grab:
    """A plugin that keeps the session's config, whose kata collector holds the results."""

    config = None

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config):
        self.config = config


def run_tests(project: Project, exercises: list[Exercise], impl: str = "exercises",
              timeout: float = DEFAULT_TIMEOUT, skip_untouched=False, threads: int = 1, fresh: bool = True) -> dict:
    """Run the test files of these exercises (those that exist) in one pytest session; the kata report.

    skip_untouched: report the tests of an exercise whose file is still the fresh skeleton as not started
    without running them (the overview's fast path); True for every exercise, or a collection of the
    exercises this may apply to (`check` and `watch` run the exercise itself to show each TODO hit, and
    only its dependencies may take the fast path).
    threads: torch's threads per operation during the tests (--kata-threads).
    fresh: forget the project's modules for the run and restore them after (False in a forked child,
        grader/plugin/isolated.py, which has never imported them and ends with the run).
    """
    files = [project.test_file(ex) for ex in exercises if project.test_file(ex).is_file()]
    if not files:
        return dict(impl=impl, seconds=0.0, tests=[], modules={})
    args = [
        *map(str, files),
        f"--rootdir={project.root}", "-c", str(project.root / "pyproject.toml"),
        f"--impl={impl}", f"--kata-timeout={timeout:g}", f"--kata-threads={threads}", *skip_option(skip_untouched),
        "-q", "--no-header", "--no-summary", "--color=no", "-p", "no:cacheprovider",
        "-p", "pytest_timeout",  # the one installed plugin the kata needs: no scan of every installed package
    ]
    grab = _Grab()
    output = io.StringIO()
    with fresh_imports(project) if fresh else contextlib.nullcontext(), contextlib.redirect_stdout(output), \
            contextlib.redirect_stderr(output), no_plugin_autoload():
        code = pytest.main(args, plugins=[grab])
        collector = getattr(grab.config, "_kata_collector", None)
        result = collector.report() if collector is not None else None
    if code == pytest.ExitCode.INTERRUPTED:
        raise KeyboardInterrupt
    if code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR) or result is None:
        last = [line for line in output.getvalue().splitlines() if line.strip()][-1:] or ["no output"]
        raise KataError(f"pytest could not run the tests ({last[0].strip()}).")
    return result


def skip_option(skip_untouched) -> list[str]:
    if skip_untouched is True:
        return ["--kata-skip-untouched"]
    ids = sorted(ex.id if isinstance(ex, Exercise) else str(ex) for ex in (skip_untouched or ()))
    return [f"--kata-skip-untouched={','.join(ids)}"] if ids else []
