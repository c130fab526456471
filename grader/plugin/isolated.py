"""Run the tests in a fresh copy of a warm process: every run sees exactly the files as saved,
and nothing a run does (a crash, a hang, sys.exit, os._exit, a module-level change) reaches
the process that asked.

`watch` imports torch, numpy, pytest (and transformers when the tests need it) once, and never
runs a tensor operation itself. For each run it forks: the child inherits those imports
(copy-on-write, a few milliseconds), imports the learner's modules fresh, runs the tests
with grader/plugin/runner.py, writes the report to a file and exits; the parent reads the
file. Where there is no fork (Windows), and in a Jupyter kernel, the tests run in this process
(runner.py forgets and restores the project's modules around each run).

    warm_up(test_files)                                 # once, before the first run
    runner = IsolatedRun(project, exercises, ...)       # starts the child
    runner.done() / runner.result() / runner.kill()
"""

import importlib
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

FORK = hasattr(os, "fork")


def warm_up(test_files) -> None:
    """Import what the runs will need, so that a forked child starts warm: torch, pytest, and every
    library module the test files import anywhere (transformers' models inside a test, tiktoken, ...).
    Runs no tensor operation."""
    import gc

    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import torch

    from grader import threads

    threads.torch_default(torch)  # remembered before it changes: what --threads 0 gives the runs
    torch.set_num_threads(1)  # (an operation on several threads before fork could leave the child's pool broken)
    modules = {name: () for name in ("_pytest.python", "_pytest.runner", "_pytest.terminal", "_pytest.fixtures",
                                     "pytest_timeout", "grader.plugin", "grader.plugin.runner")}
    modules.update(library_imports(test_files))
    for name, attributes in sorted(modules.items()):
        try:
            module = importlib.import_module(name)
            for attribute in attributes:  # transformers loads a model's code when its class is first asked for
                getattr(module, attribute, None)
        except Exception:  # noqa: BLE001 — a module that does not import here will not in the test either
            pass
    gc.collect()
    gc.freeze()  # what is loaded now is never scanned by a child's garbage collector (seconds, with torch loaded)


LOCAL = ("exercises", "solutions", "harness", "grader", "data", "tests", "conftest")


def library_imports(test_files) -> dict[str, set[str]]:
    """{module: the names imported from it} for what the test files import, at the top or inside a test,
    that is not the project's own."""
    import ast

    found: dict[str, set[str]] = {}
    for path in test_files:
        try:
            tree = ast.parse(Path(path).read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.setdefault(alias.name, set())
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.setdefault(node.module, set()).update(alias.name for alias in node.names)
    return {name: names for name, names in found.items() if name.split(".")[0] not in LOCAL}


class IsolatedRun:
    """One run of run_tests(...) in a forked child (or, without fork, in this process at result())."""

    def __init__(self, project, exercises, chdir: bool = False, **options):
        """chdir: the child works in the project's folder (a copy of the project: the mutant runner)."""
        self.project, self.exercises, self.options, self.chdir = project, exercises, options, chdir
        self.started = time.perf_counter()
        self.pid = None
        self.report = None
        self.crash = None
        if not FORK or "ipykernel" in sys.modules:  # no fork, or a notebook's kernel (its threads own its I/O)
            return
        fd, name = tempfile.mkstemp(prefix="kata-run-", suffix=".json")
        os.close(fd)
        self.path = Path(name)
        import warnings

        with warnings.catch_warnings():  # Python 3.12+ warns that a threaded process forks: the child runs no thread
            warnings.simplefilter("ignore", DeprecationWarning)
            self.pid = os.fork()
        if self.pid == 0:
            self._child()

    def _child(self):
        code = 0
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C is the parent's to handle
            if self.chdir:
                os.chdir(self.project.root)
            from .runner import run_tests

            report = run_tests(self.project, self.exercises, **self.options)
            self.path.write_text(json.dumps(report), encoding="utf-8")
        except BaseException:  # noqa: BLE001 — everything goes back to the parent as text
            try:
                self.path.write_text(json.dumps({"error": traceback.format_exc(limit=5)}), encoding="utf-8")
            finally:
                code = 1
        finally:
            sys.stdout.flush()
            os._exit(code)

    def done(self) -> bool:
        """Whether the run has finished (a result is ready)."""
        if self.pid is None or self.report is not None or self.crash is not None:
            return True
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return False
        self._collect(status)
        return True

    def _collect(self, status):
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            data = {}
        finally:
            self.path.unlink(missing_ok=True)
        if "tests" in data:
            self.report = data
        elif "error" in data:
            self.crash = f"the test run failed: {data['error'].strip().splitlines()[-1]}"
        else:
            how = (f"was killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                   else f"exited with status {os.WEXITSTATUS(status)}")
            self.crash = f"the test run {how} before it could report (a crash in native code, or os._exit)"

    def result(self) -> tuple[dict | None, str | None]:
        """(the kata report, None) or (None, a sentence saying how the run ended without one). Waits."""
        if self.pid is None and self.report is None and self.crash is None:
            from .runner import run_tests

            self.report = run_tests(self.project, self.exercises, **self.options)
        try:
            while not self.done():
                time.sleep(0.01)
        except BaseException:  # Ctrl-C while waiting: the child and its report file go too
            self.kill()
            raise
        return self.report, self.crash

    def kill(self) -> None:
        if self.pid is not None and self.report is None and self.crash is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.path.unlink(missing_ok=True)
            self.crash = "stopped"

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started
