"""How fast is the grader's home screen? Prints, for this machine:

- a bare `python -c "import torch"` (the yardstick; median of --repeat runs),
- `python -m grader` on a fresh checkout (every exercise still the skeleton; the target:
  about one import of torch plus a little),
- `python -m grader --impl solutions` (every test runs against the reference; the target:
  under 90 s on 2 cores).

Both grader runs use a throwaway copy of the project (grader/sandbox.py), so the
learner's own exercises/ is neither read nor written.

    python bench/grader_speed.py [--repeat 3]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.sandbox import make_project  # noqa: E402


def seconds(cmd, repeat, cwd=ROOT):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
            print(f"  ! {' '.join(map(str, cmd))} exited {proc.returncode}: {tail}")
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as base:
        fresh = make_project(Path(base), {}, exercises="fresh")
        torch_s = seconds([py, "-c", "import torch"], args.repeat)
        home_s = seconds([py, "-m", "grader", "--root", str(fresh)], args.repeat, cwd=fresh)
        solved_s = seconds([py, "-m", "grader", "--root", str(fresh), "--impl", "solutions"], 1, cwd=fresh)
    print(f"python -c 'import torch'                  {torch_s:6.2f} s   (yardstick; median of {args.repeat})")
    print(f"python -m grader, fresh checkout          {home_s:6.2f} s   {home_s / torch_s:4.1f}x torch"
          f"   (target: about 1x plus a little)")
    print(f"python -m grader --impl solutions         {solved_s:6.2f} s   (target: under 90 s on 2 cores)")


if __name__ == "__main__":
    main()
