"""One exercise in full (`check`, `watch`): its state, every failure's whole message, the TODOs
still open; and the hints."""

import textwrap

from rich.console import Console
from rich.text import Text

from ..progress import Status
from ..registry import Exercise
from . import PREFIX, STYLES, _unicode, teaching


def exercise(status: Status, con: Console, verbose: bool = False, limit: int | None = None) -> None:
    """One exercise in full: its state, every failure's whole message, the TODOs still open.

    A cause that several tests name is printed in full once, then the others by name; tests not run
    because earlier code hung are counted in one line. limit: at most this many failures in full (watch),
    the rest counted, with the command that shows them all."""
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
    crashes: dict[str, int] = {}  # one block per crash on import, not one per test it stopped
    not_run: dict[str, int] = {}  # one line per hang, not one per test it kept from running
    causes: set[str] = set()  # the causes printed in full already
    shown = hidden = 0
    for t in failures:
        if t.get("crash"):
            message = full_message(t, status)
            crashes[message] = crashes.get(message, 0) + 1
            continue
        if t["outcome"] == "timeout" and (t.get("message") or "").startswith("not run"):
            not_run[t["message"]] = not_run.get(t["message"], 0) + 1
            continue
        cause = t.get("cause")
        if cause and cause in causes:
            con.print(Text(f"{bad} {test_name(t)}: the same mistake as above", style="red"))
            continue
        if limit is not None and shown >= limit:
            hidden += 1
            continue
        shown += 1
        if cause:
            causes.add(cause)
        con.print()
        con.print(Text(f"{bad} {test_name(t)}", style="red"))
        con.print(Text(textwrap.indent(full_message(t, status), "    ")))
    for message, count in not_run.items():
        con.print(Text(f"{bad} {count} more test{'s' if count != 1 else ''} {message}", style="red"))
    if hidden:
        con.print()
        con.print(Text(f"{bad} {hidden} more failing test{'s' if hidden != 1 else ''}: `python -m grader check "
                       f"{ex.id}` shows every message.", style="red"))
    for message, count in crashes.items():
        con.print()
        said = status.state == "crashed" and message == status.message  # the state line above says it
        con.print(Text(f"{bad} {count} test{'s' if count != 1 else ''} could not run" + (" (above)." if said else ":"),
                       style="red"))
        if not said:
            con.print(Text(textwrap.indent(message, "    ")))
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


def show_hints(ex: Exercise, count: int, previously: int, con, again: str | None = None,
               remembered: bool = True) -> None:
    """The first `count` hints (those past `previously` new); again: how to ask for the next one
    (default: the hint command; watch says "press h"); remembered: whether the count is kept."""
    con.print(Text(f"Hints for {ex.label} — {ex.title}", style="bold"))
    for i, hint in enumerate(ex.hints[:count], start=1):
        new = i > previously
        con.print(Text(f"{i}/{len(ex.hints)}. ", style="bold" if new else "dim"),
                  Text(hint, style="" if new else "dim"))
    if not remembered:
        con.print(Text(f"({len(ex.hints) - count} more; the count of hints shown cannot be remembered now: "
                       f"`python -m grader hint {ex.id} --all` shows them all.)", style="dim"))
    elif count < len(ex.hints):
        again = again or f"`python -m grader hint {ex.id}` again"
        con.print(Text(f"{again[0].upper()}{again[1:]} for the next one ({len(ex.hints) - count} left)"
                       + (", or --all." if "grader hint" in again else "."), style="dim"))
    elif previously >= len(ex.hints):
        con.print(Text(f"That is every hint. Still stuck? `python -m grader swap {ex.id}` lets the reference stand "
                       f"in while you go on; `python -m grader solution {ex.id} --give-up` shows it.", style="dim"))
    else:
        con.print(Text("That was the last hint.", style="dim"))
