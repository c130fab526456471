"""The overview (`python -m grader`, watch's `l`) and the one-line list."""

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..progress import Progress, Status
from . import STYLES, _unicode, next_command, short


def bar(percent: float, width: int, unicode: bool) -> str:
    filled = round(width * percent / 100)
    full, empty = ("█", "░") if unicode else ("#", "-")
    return "[" + full * filled + empty * (width - filled) + "]"


def state_text(status: Status) -> Text:
    return Text(status.label, style=STYLES.get(status.state, ""))


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
    line = Text.assemble((bar(progress.percent, 30, _unicode(con)), "green"), " ", (percent, "bold"))
    said = " · ".join(facts) if _unicode(con) else "; ".join(facts)
    if len(line) + 2 + len(said) <= con.width:
        line.append("  " + said)
        con.print(line)
    else:  # a narrow terminal: the facts on their own line
        con.print(line)
        con.print(said)
    con.print()
    upcoming = progress.next
    if upcoming is None:
        done = all(s.state == "passed" for s in progress.statuses)
        con.print("Every exercise passes. Well done!" if done else
                  "Nothing left to do but the swapped exercises: `python -m grader unswap NN` to write your own.")
        return
    ex = upcoming.exercise
    con.print(Text(f"next: {ex.label}", style="bold"), Text(f"— {ex.title}"))
    run, more = f"  run: {next_command(upcoming)}", f"(or `python -m grader watch`; stuck? `python -m grader hint {ex.id}`)"
    if len(run) + 3 + len(more) <= con.width:
        con.print(f"{run}   {more}")
    else:
        con.print(run)
        con.print(f"       {more}")
    if upcoming.state in ("not started", "in progress") and upcoming.message:
        lead = "  first TODO: "
        for i, line in enumerate(short(upcoming.message, con.width - len(lead), 2, upcoming)):
            con.print(Text((lead if i == 0 else " " * len(lead)) + line), style="dim")


def messages(progress: Progress, con: Console) -> None:
    """For each exercise in trouble, its first failure's teaching message in one or two lines."""
    trouble = [s for s in progress.statuses
               if s.state in ("failing", "crashed", "timed out", "uses the reference", "missing")]
    if not trouble:
        return
    con.print()
    for s in trouble:
        lead = f"{s.exercise.label}:"
        lines = short(s.message, con.width - len(lead) - 2, 2, s, cause=s.cause)
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
