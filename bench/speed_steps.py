"""Exercise 14's speed-ups, one after another: tokens/s of a training step of the reference GPT.

    python bench/speed_steps.py                          # the cpu preset's model, on the CPU (and CUDA/MPS if present)
    python bench/speed_steps.py --preset gpu --device cuda --steps 50
    python bench/speed_steps.py --vocab-size 50257       # GPT-2's vocabulary instead of Tiny Shakespeare's 65 characters

The same table as `python -m grader speed` (grader/training/speed.py; how each row is measured:
grader/training/speedups.py), for the reference implementation unless --impl exercises is given.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.training import speed  # noqa: E402


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--impl" or a.startswith("--impl=") for a in argv):
        argv = ["--impl", "solutions", *argv]
    return speed.main(argv)


if __name__ == "__main__":
    sys.exit(main())
