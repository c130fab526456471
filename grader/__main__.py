"""`python -m grader` and the `kata` console script: see grader/cli/."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
