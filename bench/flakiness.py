"""Are the tests deterministic? Runs the whole suite with the reference N times, each in a fresh
process (as CI does), and prints every test whose outcome was not the same in every run.

    python bench/flakiness.py [--runs 10] [pytest args...]
"""

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args, pytest_args = parser.parse_known_args()
    outcomes = collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            report = Path(tmp) / f"run{run}.json"
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pytest", "--impl=solutions", "-q", f"--kata-report={report}",
                            *pytest_args], cwd=ROOT, capture_output=True)
            tests = json.loads(report.read_text())["tests"]
            for t in tests:
                outcomes[t["nodeid"]].append(t["outcome"])
            counts = collections.Counter(t["outcome"] for t in tests)
            print(f"run {run + 1}/{args.runs}: {dict(counts)} in {time.perf_counter() - start:.0f} s", flush=True)
    flaky = {nodeid: seen for nodeid, seen in outcomes.items() if len(set(seen)) > 1 or len(seen) != args.runs}
    for nodeid, seen in sorted(flaky.items()):
        print(f"FLAKY {nodeid}: {collections.Counter(seen)}")
    print(f"{len(outcomes)} tests x {args.runs} runs: {len(flaky)} with differing outcomes")
    return 1 if flaky else 0


if __name__ == "__main__":
    sys.exit(main())
