"""How fast is `python -m grader trace` on the tiny preset, next to a bare `python -c "import torch"`?

The target: trace (tiny) takes at most 1.5x a bare import of torch. Measured side by side, the
commands interleaved round by round (a shared machine's load hits both alike), median of --repeat:

- python -c "import torch"                                      (the yardstick)
- python -m grader trace --impl solutions                       (the whole forward pass, every call)
- python -m grader trace --impl solutions --backward            (and the gradient table)
- python -m grader trace, on a fresh learner tree               (stops at the first TODO, then names
                                                                 every unfinished part: one probe each)

The learner tree is a throwaway copy (grader/sandbox.py); the real exercises/ is not read.

    python bench/trace_speed.py [--repeat 5]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.sandbox import make_project  # noqa: E402


def timed(cmd, cwd) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        print(f"  ! {' '.join(map(str, cmd))} exited {proc.returncode}: {tail}")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as base:
        fresh = make_project(Path(base), {}, exercises="fresh")
        commands = {
            "python -c 'import torch'": ([py, "-c", "import torch"], ROOT),
            "trace --impl solutions (tiny)": ([py, "-m", "grader", "trace", "--impl", "solutions"], ROOT),
            "trace --impl solutions --backward": ([py, "-m", "grader", "trace", "--impl", "solutions", "--backward"], ROOT),
            "trace, fresh learner tree": ([py, "-m", "grader", "trace"], fresh),
        }
        times = {name: [] for name in commands}
        timed(commands["python -c 'import torch'"][0], ROOT)  # warm the file cache
        for _ in range(args.repeat):
            for name, (cmd, cwd) in commands.items():
                times[name].append(timed(cmd, cwd))
    torch_s = statistics.median(times["python -c 'import torch'"])
    for name, values in times.items():
        median = statistics.median(values)
        ratio = "" if name.startswith("python -c") else f"   {median / torch_s:4.2f}x torch   (target: <= 1.5x)"
        print(f"{name:38s} {median:6.2f} s{ratio}")
    print(f"(median of {args.repeat}, interleaved; {py})")


if __name__ == "__main__":
    main()
