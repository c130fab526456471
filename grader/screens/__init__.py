"""The grader's screens and output formats.

    overview.py    the progress table, the one-line list
    exercise.py    one exercise in full (check, watch), the hints
    formats.py     JSON, Gradescope's results.json, JUnit XML

Rich draws the screens; piped or redirected, the same text comes out plain (no
colour codes, ASCII where the output cannot encode the bar). This module holds what
they share: the console, the states' colours, and a failure's teaching text.
"""

import os
import re
import sys
import textwrap

from rich.console import Console

from ..progress import Status

STYLES = {
    "passed": "green", "failing": "red", "crashed": "bold red", "timed out": "bold red", "missing": "bold red",
    "uses the reference": "bold red", "not started": "dim", "in progress": "yellow", "swapped": "cyan",
    "blocked": "magenta", "no tests": "dim",
}
PREFIX = re.compile(r"^(?:[\w.]*\.)?(?:Mismatch|OffLimits|AssertionError|Failed): ", re.S)


def console(file=None) -> Console:
    """A console on stdout: colours on a terminal, plain text (and a fixed width) when piped."""
    file = file or sys.stdout
    is_tty = hasattr(file, "isatty") and file.isatty()
    width = None if is_tty else int(os.environ.get("COLUMNS", 0) or 120)
    return Console(file=file, width=width, highlight=False, emoji=False, soft_wrap=not is_tty,
                   force_terminal=None if is_tty else False)


def _unicode(con: Console) -> bool:
    encoding = (getattr(con.file, "encoding", None) or "utf-8").lower().replace("-", "")
    return encoding.startswith("utf")


def teaching(message: str, status: Status | None = None) -> str:
    """A failure message without the exception's class name and the exercise's label."""
    text = PREFIX.sub("", (message or "").strip())
    lines = text.splitlines()
    for i, line in enumerate(lines[1:], start=1):  # pytest's introspection of a plain assert: not for learners
        if line.startswith("assert "):
            text = "\n".join(lines[:i]).rstrip()
            break
    if status is not None:
        label = f"{status.exercise.label}: "
        if text.startswith(label):
            text = text[len(label):]
    return text


def short(message: str, width: int, lines: int = 2, status: Status | None = None, cause: str | None = None
          ) -> list[str]:
    """The message wrapped to `width`, in at most `lines` lines (the end replaced by '…') — except its cause.

    cause: the mistake the message leads with (tests/harness.py puts it first); it is never cut, however
    many lines it takes, and the rest of the message (the call, the numbers) gets one line after it.
    """
    text = " ".join(teaching(message, status).split())
    width = max(width, 20)
    lead, rest = "", text
    if cause:
        cause = " ".join(cause.split())
        at = text.find(cause.rstrip("."))
        if at >= 0:
            end = at + len(cause.rstrip("."))
            end = end + 1 if text[end:end + 1] == "." else end
            lead, rest = text[:end], text[end:].strip()
    kept = textwrap.wrap(lead, width)
    more = textwrap.wrap(rest, width)
    room = max(lines - len(kept), 1 if kept else lines)
    if len(more) > room:
        more = more[:room]
        more[-1] = more[-1][: max(width - 2, 10)].rstrip() + " …"
    return (kept + more) or [""]


def next_command(status: Status) -> str:
    return f"pytest {status.exercise.test_file}"
