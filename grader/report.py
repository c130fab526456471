"""The grader's screens: the progress table, the one-line list, one exercise in full.

Rich draws them; piped or redirected, the same text comes out plain (no colour
codes, ASCII where the output cannot encode the bar).
"""

import os
import re
import sys
import textwrap

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .progress import Progress, Status

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


def short(message: str, width: int, lines: int = 2, status: Status | None = None) -> list[str]:
    """The message in at most `lines` lines of `width` characters (the end replaced by '…')."""
    text = " ".join(teaching(message, status).split())
    wrapped = textwrap.wrap(text, max(width, 20)) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: max(width - 2, 10)].rstrip() + " …"
    return wrapped


def bar(percent: float, width: int, unicode: bool) -> str:
    filled = round(width * percent / 100)
    full, empty = ("█", "░") if unicode else ("#", "-")
    return "[" + full * filled + empty * (width - filled) + "]"


def state_text(status: Status) -> Text:
    return Text(status.label, style=STYLES.get(status.state, ""))


def next_command(status: Status) -> str:
    return f"pytest {status.exercise.test_file}"


def home(progress: Progress, con: Console) -> None:
    """The progress table, the bar, the next step and the first failures' messages."""
    title = "GPT Kata: your progress" if progress.impl == "exercises" else "GPT Kata: the reference (--impl solutions)"
    con.print(Text(title, style="bold"), Text(f"  ({progress.seconds:.1f} s)", style="dim"))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("#")
    table.add_column("exercise")
    table.add_column("title")
    table.add_column("state")
    table.add_column("tests", justify="right")
    table.add_column("points", justify="right")
    for s in progress.statuses:
        tests = f"{s.passed}/{s.total}" if s.total else "-"
        table.add_row(s.exercise.id, s.exercise.name, s.exercise.title, state_text(s), tests,
                      f"{s.points}/{s.max_points}")
    con.print(table)
    summary(progress, con)
    messages(progress, con)


def summary(progress: Progress, con: Console) -> None:
    passed = sum(s.state == "passed" for s in progress.statuses)
    swapped = sum(s.state == "swapped" for s in progress.statuses)
    facts = [f"{progress.score} of {progress.max_score} points",
             f"{passed} of {len(progress.statuses)} exercises passed"]
    if swapped:
        facts.append(f"{swapped} swapped (no points)")
    given_up = sum(bool(s.gave_up) and s.state == "passed" for s in progress.statuses)
    if given_up:
        facts.append(f"{given_up} given up (no points)")
    percent = f"{progress.percent:.0f} %"
    con.print(Text(bar(progress.percent, 30, _unicode(con)), style="green"), Text(percent, style="bold"),
              Text("  " + " · ".join(facts) if _unicode(con) else "  " + "; ".join(facts)))
    con.print()
    upcoming = progress.next
    if upcoming is None:
        done = all(s.state == "passed" for s in progress.statuses)
        con.print("Every exercise passes. Well done!" if done else
                  "Nothing left to do but the swapped exercises: `python -m grader unswap NN` to write your own.")
        return
    ex = upcoming.exercise
    con.print(Text(f"next: {ex.label}", style="bold"), Text(f"— {ex.title}"))
    con.print(f"  run: {next_command(upcoming)}   (or `python -m grader watch`; stuck? `python -m grader hint {ex.id}`)")
    if upcoming.state in ("not started", "in progress") and upcoming.message:
        for line in short(upcoming.message, con.width - 14, 2, upcoming):
            con.print(Text("  first TODO: " + line if line is not None else ""), style="dim")


def messages(progress: Progress, con: Console) -> None:
    """For each exercise in trouble, its first failure's teaching message in one or two lines."""
    trouble = [s for s in progress.statuses
               if s.state in ("failing", "crashed", "timed out", "uses the reference", "missing")]
    if not trouble:
        return
    con.print()
    for s in trouble:
        lead = f"{s.exercise.label}:"
        lines = short(s.message, con.width - len(lead) - 2, 2, s)
        con.print(Text(lead, style=STYLES.get(s.state, "")), Text(lines[0]))
        for line in lines[1:]:
            con.print(" " * len(lead), Text(line))
    con.print(Text(f"Full messages: python -m grader check {trouble[0].exercise.id}", style="dim"))


def listing(progress: Progress, con: Console) -> None:
    """Every exercise with its state, one line each."""
    for s in progress.statuses:
        tests = f"{s.passed}/{s.total} tests" if s.total else "no tests run"
        line = Text(f"{s.exercise.id} {s.exercise.name:<12}")
        line.append(f"{s.label:<38}", style=STYLES.get(s.state, ""))
        line.append(f" {tests:>13}  {s.points:>2}/{s.max_points:<2} points")
        con.print(line)
    con.print(f"{progress.score}/{progress.max_score} points ({progress.percent:.0f} %)")


def exercise(status: Status, con: Console, verbose: bool = False) -> None:
    """One exercise in full: its state, every failure's whole message, the TODOs still open."""
    ex = status.exercise
    ok, bad, todo = ("✓", "✗", "·") if _unicode(con) else ("+", "x", ".")
    head = Text(f"{ex.label} — {ex.title}: ", style="bold")
    head.append(status.label, style=STYLES.get(status.state, ""))
    if status.total:
        head.append(f"  ({status.passed}/{status.total} tests, {status.points}/{status.max_points} points)")
    con.print(head)
    if status.state == "swapped":
        what = f"the reference stands in for {ex.exercise_file}" if ex.has_module else "every part it runs is swapped"
        con.print(f"Swapped: {what}, so its tests are not run and it scores nothing. "
                  f"`python -m grader unswap {ex.id if ex.has_module else 'NN'}` to test yours again.")
        return
    if status.state in ("crashed", "timed out", "uses the reference", "missing", "no tests"):
        con.print(Text(status.message, style=STYLES.get(status.state, "")))
    if status.state == "blocked":
        dep = status.blocked_by
        con.print(Text(f"{ex.label} depends on {dep.label}, which does not pass yet: fix it first "
                       f"(`python -m grader check {dep.id}`) or `python -m grader swap {dep.id}`.",
                       style=STYLES["blocked"]))
    failures = [t for t in status.tests if t["outcome"] in ("failed", "error", "timeout")]
    passed = [t for t in status.tests if t["outcome"] == "passed"]
    todos: dict[str, int] = {}
    for t in status.tests:
        if t["outcome"] == "not_started":
            todos[t["message"]] = todos.get(t["message"], 0) + 1
    if verbose:
        for t in passed:
            con.print(Text(f"{ok} {test_name(t)}", style="green"))
    elif passed:
        con.print(Text(f"{ok} {len(passed)} passed", style="green"))
    for t in failures:
        con.print()
        con.print(Text(f"{bad} {test_name(t)}", style="red"))
        con.print(Text(textwrap.indent(full_message(t, status), "    ")))
    if todos:
        con.print()
        con.print(Text(f"{todo} {sum(todos.values())} tests not started; the TODOs they ran into:", style="dim"))
        for message, count in todos.items():
            con.print(Text(f"    {teaching(message, status)}  ({count} tests)", style="dim"))
    if status.state == "passed":
        con.print(Text(f"Done! `python -m grader solution {ex.id}` shows the reference to compare.", style="green"))


def test_name(t: dict) -> str:
    return t["nodeid"].split("::", 1)[-1]


def full_message(t: dict, status: Status) -> str:
    """The whole teaching message; where the learner's code raised, for other exceptions."""
    crash = t.get("crash")
    if crash:
        return f"crashed on import: {crash['file']}, line {crash['line']}: {crash['error']}"
    if t["outcome"] == "timeout":
        text = teaching(t["message"], status)
        if t.get("hung") and not text.startswith("not run"):
            text += f" (running {t['hung']['file']}, line {t['hung']['line']})"
        return text
    text = teaching(t["message"], status)
    where = t.get("where")
    if where and not PREFIX.match(t["message"] or ""):
        text += f"\n(raised at {where['file']}, line {where['line']})"
    return text
