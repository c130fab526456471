"""What pytest prints for the kata, beyond its own lines.

- A learner's file that does not import (a syntax error, a crash at import time) or a
  malformed swaps.txt: every test that needs it is marked `C` and counted as "crashed"
  (not listed one by one under FAILURES with a traceback each), and one block at the end
  says which file, which line, the error and what to do. The exit status stays 1.
- The tests that ran into a TODO: "not started", with the TODOs they reached.
- The swaps in force, in the header and again just above the final line.
- The kata's tests run on one thread (`--kata-threads N` to change it, 0 for torch's
  default): their tensors are tiny, and on a busy machine torch's extra threads only wait.
"""

import sys

from .learner import active_swaps, exercise_of

CRASHED = "crashed"
TIMED_OUT = "timed out"  # its stack dump is replaced by one block at the end (hang_blocks)
NOT_RUN = "not run"  # would have run code that already hung


def swaps_line(swapped) -> str:
    names = ", ".join(ex.label for ex in swapped)
    ids = " ".join(ex.id for ex in swapped)
    return (f"swapped: {names} (the reference stands in for your file; these tests check it, not yours; "
            f"`python -m grader unswap {ids}`)")


class Terminal:
    """Registered by pytest_configure; reads what the collector recorded."""

    def __init__(self, config, collector):
        self.config, self.collector = config, collector
        self.threads_before = None

    def pytest_report_header(self, config):
        swapped = active_swaps(config)
        return [swaps_line(swapped)] if swapped else []

    def pytest_collection_finish(self, session):
        wanted = self.config.getoption("kata_threads")
        torch = sys.modules.get("torch")  # the test files import it; never imported here for its own sake
        if torch is not None:
            from grader import threads

            self.threads_before = torch.get_num_threads()
            threads.apply(wanted)  # 0: torch's own default, even in a watch's child (its parent set 1)

    def pytest_unconfigure(self, config):
        torch = sys.modules.get("torch")
        if self.threads_before is not None and torch is not None:
            torch.set_num_threads(self.threads_before)

    def pytest_report_teststatus(self, report, config):
        if getattr(report, "kata_crash", None) and report.failed:
            return CRASHED, "C", "CRASHED (see the end)"
        if getattr(report, "kata_outcome", None) == "timeout" and report.failed and report.kata_hung:
            if str(report.longrepr).startswith("not run"):
                return NOT_RUN, "-", "NOT RUN (see the end)"
            return TIMED_OUT, "T", "TIMED OUT (see the end)"
        return None

    def pytest_terminal_summary(self, terminalreporter, config):
        results = self.collector.results.values()
        self.crash_blocks(terminalreporter, [r for r in results if r.get("crash")])
        self.hang_blocks(terminalreporter, [r for r in results if r["outcome"] == "timeout" and r.get("hung")])
        todos = sorted({r["message"] for r in results if r["outcome"] == "not_started"})
        if todos:
            terminalreporter.section("not started")
            shown = todos[:8]
            for todo in shown:
                terminalreporter.line(todo)
            if len(todos) > len(shown):
                terminalreporter.line(f"... and {len(todos) - len(shown)} more")
        swapped = active_swaps(config)
        if swapped:
            terminalreporter.line(swaps_line(swapped))

    def crash_blocks(self, terminalreporter, crashed):
        """One block per distinct crash: the file, line and error, the source line, what to do."""
        if not crashed:
            return
        groups: dict[tuple, list] = {}
        for r in crashed:
            c = r["crash"]
            groups.setdefault((c["file"], c["line"], c["error"]), []).append(r)
        swaps = all("swaps.txt" in error and file.endswith("__init__.py") for file, _, error in groups)
        terminalreporter.section("swaps.txt cannot be used" if swaps else "crashed on import", red=True, bold=True)
        for (file, line, error), tests in groups.items():
            if "swaps.txt" in error and file.endswith("__init__.py"):  # raised while applying the swaps
                terminalreporter.line(error.split(": ", 1)[-1], red=True, bold=True)
            else:
                terminalreporter.line(f"{file}, line {line}: {error}" if line else f"{file}: {error}",
                                      red=True, bold=True)
                source = source_line(self.config, file, line)
                if source:
                    terminalreporter.line(f"    {source}")
            files = sorted({t["nodeid"].split("::")[0] for t in tests})
            ids = sorted({exercise_of(f) for f in files if exercise_of(f)})
            check = f" (`python -m grader check {ids[0]}` says the same)" if len(ids) == 1 else ""
            terminalreporter.line(f"  {len(tests)} test{'s' if len(tests) != 1 else ''} of {', '.join(files)} "
                                  f"could not run. Fix {file_to_fix(file)} and run them again{check}.")


    def hang_blocks(self, terminalreporter, timed_out):
        """One block per place in the learner's code that hung: the test that hit the time limit, the line it was
        running, and how many tests were not run because they would run it too (instead of a stack dump)."""
        if not timed_out:
            return
        terminalreporter.section("timed out", red=True, bold=True)
        for r in timed_out:
            if r["message"].startswith("not run"):
                continue
            site = r["hung"]
            name = r["nodeid"].split("::", 1)[-1]
            limit = f" after {r['timeout']:g} s" if r.get("timeout") else ""
            terminalreporter.line(f"{name} timed out{limit}, running {site['file']}, line {site['line']}:",
                                  red=True, bold=True)
            source = source_line(self.config, site["file"], site["line"])
            if source:
                terminalreporter.line(f"    {source}")
            skipped = sum(1 for t in timed_out if t["message"].startswith("not run") and
                          f"{site['file']}, line {site['line']} " in t["message"])
            if skipped:
                terminalreporter.line(f"  {skipped} more test{'s' if skipped != 1 else ''} would run the same code: "
                                      f"not run.")
            terminalreporter.line("  Something there does not finish (a loop that never ends, or far too much "
                                  "work); Ctrl-C stops a run at once, `--kata-timeout SECONDS` sets the limit.")


def file_to_fix(file: str) -> str:
    """The file the learner should open: swaps.txt for an error raised while applying swaps."""
    return "swaps.txt (or delete it)" if file.endswith("__init__.py") else file


def source_line(config, file, line) -> str | None:
    from pathlib import Path

    if not line:
        return None
    try:
        text = (Path(config.rootpath) / file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return text[line - 1].strip() if 0 < line <= len(text) and text[line - 1].strip() else None
