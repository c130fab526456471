"""Machine-readable grading output: JSON, Gradescope's results.json, JUnit XML.

    as_json(progress)        the grader's own report: score, next step, every exercise and test
    gradescope(progress)     https://gradescope-autograders.readthedocs.io/en/latest/specs/ (results.json)
    junit(progress)          one <testsuite> per exercise, for CI systems

In Gradescope's output every test of an exercise carries an equal share of the
exercise's points, earned only when the whole exercise passes, so the shares sum
to the exercise's points exactly then and to 0 otherwise. An exercise whose tests
did not run (swapped, missing, no tests) is one entry worth its points, scoring 0.
"""

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ..progress import Progress, Status
from . import next_command, teaching

GRADESCOPE_DIR = Path("/autograder/results")
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text) -> str:
    """text without the characters XML 1.0 cannot hold."""
    return NOT_XML.sub("?", str(text))


def _test_entry(t: dict, status: Status) -> dict:
    entry = dict(name=t["nodeid"].split("::", 1)[-1], outcome=t["outcome"], duration=t.get("duration", 0.0))
    if t["outcome"] != "passed":
        entry["message"] = teaching(t.get("message", ""), status)
    for key in ("cause", "crash", "hung", "where", "timeout"):
        if t.get(key) is not None:
            entry[key] = t[key]
    return entry


def as_json(progress: Progress) -> dict:
    upcoming = progress.next
    return dict(
        impl=progress.impl,
        score=progress.score,
        max_score=progress.max_score,
        percent=round(progress.percent, 1),
        seconds=progress.seconds,
        next=None if upcoming is None else dict(
            id=upcoming.exercise.id, name=upcoming.exercise.name, command=next_command(upcoming)),
        exercises=[
            dict(
                id=s.exercise.id, name=s.exercise.name, title=s.exercise.title, state=s.state, label=s.label,
                blocked_by=s.blocked_by.id if s.blocked_by else None, gave_up=s.gave_up,
                passed=s.passed, total=s.total, points=s.points, max_points=s.max_points,
                message=teaching(s.message, s), cause=s.cause,
                tests=[_test_entry(t, s) for t in s.tests],
            )
            for s in progress.statuses
        ],
    )


def _shares(points: int, n: int) -> list[float]:
    """n shares of points, rounded to 4 decimals, summing to points."""
    share = round(points / n, 4)
    shares = [share] * (n - 1)
    return shares + [round(points - sum(shares), 4)]


def gradescope(progress: Progress) -> dict:
    tests = []
    for s in progress.statuses:
        ex = s.exercise
        if not s.tests:
            tests.append(dict(name=f"{ex.label}: {ex.title}", score=0.0, max_score=float(ex.points),
                              output=f"{s.label}: {teaching(s.message, s)}".rstrip(": "),
                              visibility="visible", status="failed"))
            continue
        earned = s.points > 0
        for t, share in zip(s.tests, _shares(ex.points, len(s.tests))):
            if t["outcome"] == "passed":
                output = "passed" if earned else f"passed; the exercise is {s.label}, so it scores nothing yet"
            else:
                output = f"{t['outcome'].replace('_', ' ')}: {teaching(t.get('message', ''), s)}"
            tests.append(dict(
                name=f"{ex.label}: {t['nodeid'].split('::', 1)[-1]}",
                score=share if earned else 0.0, max_score=share, output=output,
                visibility="visible", status="passed" if t["outcome"] == "passed" else "failed",
            ))
    lines = [f"{s.exercise.label}: {s.label} ({s.points}/{s.max_points} points)" for s in progress.statuses]
    return dict(
        score=float(progress.score),
        max_score=float(progress.max_score),
        output="\n".join(lines + [f"Total: {progress.score}/{progress.max_score} ({progress.percent:.0f} %)"]),
        visibility="visible",
        stdout_visibility="visible",
        tests=tests,
    )


def gradescope_path(output: str | None) -> Path:
    """Where results.json goes: the path given, Gradescope's results folder when it exists, else ./results.json."""
    if output:
        return Path(output)
    return GRADESCOPE_DIR / "results.json" if GRADESCOPE_DIR.is_dir() else Path("results.json")


def junit(progress: Progress) -> str:
    suites = ET.Element("testsuites", name="gpt-kata")
    totals = dict(tests=0, failures=0, errors=0, skipped=0)
    for s in progress.statuses:
        ex = s.exercise
        suite = ET.SubElement(suites, "testsuite", name=f"{ex.label}")
        props = ET.SubElement(suite, "properties")
        for key, value in (("title", ex.title), ("state", s.label), ("points", s.points),
                           ("max_points", s.max_points)):
            ET.SubElement(props, "property", name=key, value=str(value))
        counts = dict(tests=0, failures=0, errors=0, skipped=0)
        cases = s.tests or [None]
        for t in cases:
            counts["tests"] += 1
            if t is None:
                case = ET.SubElement(suite, "testcase", classname=ex.test_file, name=ex.label, time="0")
                ET.SubElement(case, "skipped", message=_xml(f"{s.label}: {teaching(s.message, s)}".rstrip(": ")))
                counts["skipped"] += 1
                continue
            case = ET.SubElement(suite, "testcase", classname=t["nodeid"].split("::")[0],
                                 name=t["nodeid"].split("::", 1)[-1], time=f"{t.get('duration', 0.0):.3f}")
            message = teaching(t.get("message", ""), s)
            if t["outcome"] == "failed" or t["outcome"] == "timeout":
                element = ET.SubElement(case, "failure", message=_xml(message), type=t["outcome"])
                element.text = _xml(t.get("details", "") or message)
                counts["failures"] += 1
            elif t["outcome"] == "error":
                element = ET.SubElement(case, "error", message=_xml(message))
                element.text = _xml(t.get("details", "") or message)
                counts["errors"] += 1
            elif t["outcome"] in ("not_started", "skipped"):
                ET.SubElement(case, "skipped", message=_xml(("not started: " if t["outcome"] == "not_started"
                                                             else "") + message))
                counts["skipped"] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        suites.set(key, str(value))
    suites.set("time", f"{progress.seconds:.3f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def dumps(data: dict) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"
