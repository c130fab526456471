"""GPT Kata's grader: progress report, swaps, hints, training. See `python -m grader --help`."""
