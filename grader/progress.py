"""From the tests' outcomes to each exercise's state, the score and the next step.

States (in the order they are decided):

    swapped             the reference stands in (swaps.txt); its tests are not run; 0 points.
                        99, which has no module, is swapped when every module it runs is, and
                        scores nothing while any of them is ("passed (with 09 swapped)")
    missing             exercises/<module>.py is gone (`python -m grader reset NN` puts a fresh one back)
    no tests            the exercise's test file does not exist
    crashed             its own file fails to import (syntax error, error at import time)
    timed out           a test ran past the time limit
    uses the reference  its module re-exports solutions/ (see grader/shortcut.py); 0 points
    passed              every test passed
    not started         every test ran into an untouched TODO
    in progress         some passed, the rest not started, none failed
    failing             anything else
    blocked             failing, not started, in progress (or timed out elsewhere than in its own file)
                        while a dependency (registry, transitively, but not through a swapped
                        exercise: the reference brings its own) is neither passed nor swapped:
                        "blocked by NN", NN being the dependency its failures point at, else the
                        first direct dependency not done (swapping it unblocks all behind it)

Every screen and format (overview, list, check, watch, JSON, Gradescope, JUnit) takes an
exercise's state from compute(), and every command runs the tests it needs for that: the
exercise's own, and its dependencies' (whose untouched files are reported without running).

Points: an exercise's points when it passes (and the learner did not give up on it
with `solution NN --give-up`); swapped exercises earn nothing but stay in the total,
so the percentage is points earned out of every exercise's points.
"""

from dataclasses import dataclass, field

from .project import Project
from .registry import EXERCISES, BY_NAME, Exercise, dependencies

BLOCKABLE = ("failing", "not started", "in progress")
BAD_OUTCOMES = ("failed", "error", "timeout")
LEFT_ALONE = ("passed", "swapped", "no tests")  # states that are not "what to do next"


def parts_swapped(ex: Exercise, swapped) -> list[Exercise]:
    """For an exercise without a module of its own (99), the swapped exercises whose modules it runs."""
    if ex.has_module:
        return []
    return [d for d in dependencies(ex, swapped) if d.has_module and d in swapped]


def fully_swapped(ex: Exercise, swapped) -> bool:
    """Swapped itself, or (99) every module it runs is swapped: its tests would only test the reference."""
    if ex.has_module:
        return ex in swapped
    parts = [d for d in dependencies(ex, swapped) if d.has_module]
    return bool(parts) and all(d in swapped for d in parts)


@dataclass
class Status:
    exercise: Exercise
    state: str
    tests: list[dict] = field(default_factory=list)
    message: str = ""  # the first failure's teaching message (or the crash, the timeout, the shortcut)
    blocked_by: Exercise | None = None
    gave_up: str | None = None  # when, if the learner gave up on it
    timeout: float | None = None
    with_swaps: list[Exercise] = field(default_factory=list)  # (99) the swapped parts it ran with

    @property
    def cause(self) -> str | None:
        """The mistake the first failure names, when its test established it (tests/harness.py)."""
        if self.state not in ("failing", "blocked"):
            return None
        first = next((t for t in self.tests if t["outcome"] in BAD_OUTCOMES), None)
        return first.get("cause") if first and first.get("message") == self.message else None

    @property
    def passed(self) -> int:
        return sum(t["outcome"] == "passed" for t in self.tests)

    @property
    def total(self) -> int:
        return len(self.tests)

    @property
    def max_points(self) -> int:
        return self.exercise.points

    @property
    def points(self) -> int:
        return self.exercise.points if self.state == "passed" and not self.gave_up and not self.with_swaps else 0

    @property
    def label(self) -> str:
        """The state as the table shows it."""
        if self.state == "blocked":
            dep = self.blocked_by.id
            return f"blocked by {dep} — finish it or `swap {dep}`"
        if self.state == "timed out":
            return f"timed out after {self.timeout:g} s" if self.timeout else "timed out"
        if self.state == "crashed":
            return "crashed on import"
        if self.state == "passed" and self.gave_up:
            return "passed (gave up)"
        if self.state == "passed" and self.with_swaps:
            return f"passed (with {', '.join(d.id for d in self.with_swaps)} swapped)"
        return self.state


@dataclass
class Progress:
    statuses: list[Status]
    impl: str
    seconds: float = 0.0

    @property
    def score(self) -> int:
        return sum(s.points for s in self.statuses)

    @property
    def max_score(self) -> int:
        return sum(s.max_points for s in self.statuses)

    @property
    def percent(self) -> float:
        return 100.0 * self.score / self.max_score if self.max_score else 0.0

    @property
    def next(self) -> Status | None:
        """The first exercise in course order that is neither passed nor swapped (and has tests to run)."""
        return self.next_after(None)

    def next_after(self, after: Exercise | None) -> Status | None:
        """The first exercise after `after` (None: from the start) that is neither passed nor swapped."""
        for status in self.statuses:
            if (after is None or status.exercise.id > after.id) and status.state not in LEFT_ALONE:
                return status
        return None

    def of(self, ex: Exercise) -> Status:
        return next(s for s in self.statuses if s.exercise is ex)


def _file_exercise(site) -> Exercise | None:
    """The exercise whose module is the file of a {file, line} site."""
    if not site:
        return None
    name = site["file"].rsplit("/", 1)[-1].removesuffix(".py")
    return BY_NAME.get(name)


def own_state(ex: Exercise, tests: list[dict], module_check: dict, project: Project) -> tuple[str, str, float | None]:
    """(state, message, timeout) from this exercise's own tests, before dependencies are considered."""
    if ex.has_module and not project.exercise_file(ex).is_file():
        return ("missing", f"{ex.exercise_file} is missing; `python -m grader reset {ex.id}` puts a fresh one back.",
                None)
    if not tests:
        return "no tests", f"{ex.test_file} does not exist yet.", None
    for t in tests:
        crash = t.get("crash")
        if crash and _file_exercise(crash) is ex:
            return "crashed", f"crashed on import: {crash['file']}, line {crash['line']}: {crash['error']}", None
    for t in tests:
        if t["outcome"] == "timeout":
            site = t.get("hung")
            where = f" in {site['file']}, line {site['line']}" if site else ""
            seconds = t.get("timeout")
            after = f" after {seconds:g} s" if seconds else ""
            return "timed out", f"timed out{after}{where} ({t['nodeid'].split('::')[-1]})", seconds
    shortcut = (module_check or {}).get("uses_reference")
    if shortcut:
        return ("uses the reference",
                f"{ex.exercise_file} uses the reference ({shortcut}); write your own to score.", None)
    outcomes = [t["outcome"] for t in tests]
    bad = [t for t in tests if t["outcome"] in BAD_OUTCOMES]
    passed, not_started = outcomes.count("passed"), outcomes.count("not_started")
    if not bad and passed and not not_started:
        return "passed", "", None
    if not bad and not_started and not passed:
        return "not started", next(t["message"] for t in tests if t["outcome"] == "not_started"), None
    if not bad and passed and not_started:
        return "in progress", next(t["message"] for t in tests if t["outcome"] == "not_started"), None
    if not bad:
        return "no tests", "every test was skipped.", None
    first = bad[0]
    crash = first.get("crash")
    if crash:
        message = f"crashed on import: {crash['file']}, line {crash['line']}: {crash['error']}"
    else:
        message = first["message"]
    return "failing", message, None


def compute(project: Project, report: dict, swapped: list[Exercise], gave_up: dict[str, str],
            exercises=EXERCISES) -> Progress:
    """Each exercise's Status from a kata report (see grader/plugin/)."""
    impl = report.get("impl", "exercises")
    by_exercise: dict[str, list[dict]] = {}
    for t in report.get("tests", []):
        by_exercise.setdefault(t.get("exercise"), []).append(t)
    modules = report.get("modules", {})
    statuses: dict[str, Status] = {}
    for ex in EXERCISES:  # course order: dependencies come first
        if ex not in exercises:
            continue
        if fully_swapped(ex, swapped):
            what = "the reference stands in for your file" if ex.has_module else "every part it runs is swapped"
            statuses[ex.id] = Status(ex, "swapped", message=f"{what}; no points.")
            continue
        tests = by_exercise.get(ex.id, [])
        state, message, timeout = own_state(ex, tests, modules.get(ex.name), project)
        status = Status(ex, state, tests, message, gave_up=gave_up.get(ex.id), timeout=timeout,
                        with_swaps=parts_swapped(ex, swapped))
        own_hang = state == "timed out" and any(_file_exercise(t.get("hung")) is ex for t in tests)
        if state in BLOCKABLE or (state == "timed out" and not own_hang):
            status.blocked_by = _blocker(ex, tests, statuses, swapped)
            if status.blocked_by is not None:
                status.state = "blocked"
        statuses[ex.id] = status
    return Progress([statuses[ex.id] for ex in EXERCISES if ex.id in statuses], impl=impl,
                    seconds=report.get("seconds", 0.0))


def _blocker(ex: Exercise, tests: list[dict], statuses: dict[str, Status], swapped) -> Exercise | None:
    """The dependency that keeps ex from passing: the one its failures point at, else the first not done."""
    deps = [d for d in dependencies(ex, swapped) if d not in swapped]
    for t in tests:  # a crash or a hang in a dependency's file
        culprit = _file_exercise(t.get("crash") or t.get("hung"))
        if culprit in deps and (culprit.id not in statuses or statuses[culprit.id].state != "passed"):
            return culprit
    # dependencies whose state is known (a run of a single exercise does not know the others'), the direct ones
    # first: swapping a direct dependency brings the reference's own parts, so it unblocks everything behind it
    undone = [d for d in deps if d.id in statuses and statuses[d.id].state != "passed"]
    direct = [d for d in undone if d.id in ex.depends]
    return (direct or undone or [None])[0]
