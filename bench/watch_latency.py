"""How fast does `python -m grader watch` answer a save? Prints, per exercise (01, 03, 06 by default):

- save -> verdict: from writing the exercise file to the verdict's line on watch's screen,
  over --saves saves that flip the verdict (the reference, then a known mistake, in turn):
  median and max;
- the tests' own time: the same test file run by pytest in a warm process (torch and
  pytest already imported), the reference and the mistake in turn (the median of 4 runs
  after a first one): what a run costs without starting Python;
- a cold `python -m pytest tests/test_NN_*.py` beside it (the learner's other loop).

Goals (issue 9): 01's median save -> verdict <= 1.0 s; 03's and 06's <= 1.5x the tests' own time.
Everything runs in a throwaway copy of the project (grader/sandbox.py) whose exercises/ is
the reference, so the real exercises/ is never read or written.

    python bench/watch_latency.py [--saves 10] [--exercise 01 --exercise 03]
"""

import argparse
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.mutants import corpus  # noqa: E402
from grader.registry import BY_ID  # noqa: E402
from grader.sandbox import make_project  # noqa: E402

MISTAKES = {"01": "01-unbiased-variance", "03": "03-no-sqrt-d-scale", "06": "06-no-ln-f"}


class Screen:
    """watch's output, line by line, each with the time it arrived."""

    def __init__(self, proc):
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self.read, args=(proc.stdout,), daemon=True).start()

    def read(self, stream):
        for line in stream:
            self.lines.put((time.perf_counter(), line.rstrip("\n")))

    def wait_for(self, text: str, seconds: float = 600) -> float:
        deadline = time.perf_counter() + seconds
        while True:
            try:
                when, line = self.lines.get(timeout=max(0.01, deadline - time.perf_counter()))
            except queue.Empty:
                raise TimeoutError(f"watch did not print {text!r} within {seconds:g} s") from None
            if text in line:
                return when


def mistake_text(ex_id: str) -> tuple[str, str]:
    ex = BY_ID[ex_id]
    wanted = MISTAKES.get(ex_id)
    mutant = next((m for m in corpus() if m.id == wanted), None) or next(
        m for m in corpus() if m.module == ex.name and not m.tests)
    good = (ROOT / "solutions" / f"{ex.name}.py").read_text(encoding="utf-8")
    return good, mutant.apply(good)


def latency(project: Path, ex_id: str, saves: int) -> list[float]:
    ex = BY_ID[ex_id]
    good, bad = mistake_text(ex_id)
    target = project / "exercises" / f"{ex.name}.py"
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "grader", "watch", ex_id, "--root", str(project)], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                            env=env)
    screen = Screen(proc)
    head = f"{ex.label} — {ex.title}: "
    try:
        screen.wait_for(head + "passed")
        times = []
        for i in range(saves):
            text, verdict = (bad, "failing") if i % 2 == 0 else (good, "passed")
            time.sleep(0.5)  # a learner does not save twice within a blink
            started = time.perf_counter()
            target.write_text(text, encoding="utf-8")
            times.append(screen.wait_for(head + verdict) - started)
        return times
    finally:
        proc.terminate()
        proc.wait(timeout=30)


OWN_TIME = """
import statistics, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
import torch, pytest
from grader.plugin.runner import run_tests
from grader.project import Project
from grader.registry import BY_ID
project, ex = Project.at({root!r}), BY_ID[{ex_id!r}]
texts = [Path({good!r}).read_text(), Path({bad!r}).read_text()]
target = project.root / "exercises" / (ex.name + ".py")
times = []
for i in range(5):
    target.write_text(texts[i % 2])
    started = time.perf_counter()
    run_tests(project, [ex], impl="exercises")
    times.append(time.perf_counter() - started)
target.write_text(texts[0])
print(statistics.median(times[1:]))
"""


def own_time(project: Path, ex_id: str) -> float:
    """pytest on the test file in a warm process, the reference and the mistake in turn (after one run)."""
    good, bad = mistake_text(ex_id)
    files = project.parent / f"own-{ex_id}"
    files.mkdir(exist_ok=True)
    (files / "good.py").write_text(good, encoding="utf-8")
    (files / "bad.py").write_text(bad, encoding="utf-8")
    code = OWN_TIME.format(root=str(project), ex_id=ex_id, good=str(files / "good.py"), bad=str(files / "bad.py"))
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def cold_pytest(project: Path, ex_id: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", BY_ID[ex_id].test_file, "-q"], cwd=project,
                   capture_output=True, text=True)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=10)
    parser.add_argument("--exercise", action="append", help="01, 03, 06 by default (repeatable)")
    args = parser.parse_args()
    ids = [e.zfill(2) for e in (args.exercise or ["01", "03", "06"])]
    print(f"{'exercise':<14}{'save->verdict median':>22}{'max':>8}{'tests own time':>16}{'ratio':>7}"
          f"{'cold pytest':>13}")
    with tempfile.TemporaryDirectory(prefix="kata-watch-bench-") as base:
        project = make_project(Path(base), {})
        for ex_id in ids:
            times = latency(project, ex_id, args.saves)
            own = own_time(project, ex_id)
            cold = cold_pytest(project, ex_id)
            median = statistics.median(times)
            print(f"{BY_ID[ex_id].label:<14}{median:>20.2f} s{max(times):>6.2f} s{own:>14.2f} s"
                  f"{median / own:>6.2f}x{cold:>11.2f} s", flush=True)
    print(f"({args.saves} saves each, alternating the reference and a known mistake; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
