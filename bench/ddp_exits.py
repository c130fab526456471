"""Do two-process training runs exit cleanly, every time? Launches grader/tests/test_train_ddp.py's run (2
processes, gloo on the CPU, 3 steps of the tiny preset) --runs times and prints every run where a process
did not exit with 0, with the end of its stderr, and then the count.

A race at exit shows in some runs of many, not in one: until processes waited for each other before leaving
the gloo group (grader/training/runtime.py, Distributed.stop), process 1 left it while process 0 still wrote
its reports, and aborted with "terminate called without an active exception" in about one run of thirty on a
2-core machine (7 of 205).

    python bench/ddp_exits.py [--runs 60]   (about 3 minutes on 2 cores)
"""

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "grader" / "tests")]

import test_train_ddp as ddp  # noqa: E402  (the test's launcher, model and data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    failed = 0
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            data = root / "text.txt"
            data.write_text(ddp.small_text(), encoding="utf-8")
            codes = ddp.launch(lambda rank: ddp.train_args(data, root / f"out{rank}", "--grad-accum", "1"), root)
            if codes != [0] * ddp.WORLD:
                failed += 1
                tails = {rank: (root / f"rank{rank}.err").read_text().strip().splitlines()[-1:]
                         for rank in range(ddp.WORLD)}
                print(f"run {run + 1}: exit codes {codes}; last stderr lines {tails}", flush=True)
    print(f"{failed} of {args.runs} two-process runs had a process exit with a non-zero code")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
