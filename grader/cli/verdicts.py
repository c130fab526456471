"""watch's memory of verdicts: each exercise's tests, kept until a file they depend on changes.

An exercise's state depends on its own tests and on its dependencies' ("blocked by"). While
the learner works on 06, 01-05's files do not change, so their results are kept, keyed by
the content of every learner file they run (their own and their dependencies', swaps
applied) and of swaps.txt; a save of gpt.py reruns 06's tests only. Every state still
comes from grader/progress.py's compute(), as in every other command.
"""

from .. import passed
from ..plugin.isolated import IsolatedRun
from ..progress import Progress, compute, fully_swapped
from ..registry import EXERCISES, Exercise, dependencies


class Verdicts:
    def __init__(self, project, changes, impl: str, timeout: float, threads: int):
        self.project, self.changes, self.impl = project, changes, impl
        self.options = dict(impl=impl, timeout=timeout, threads=threads)
        self.kept: dict[str, tuple] = {}  # exercise id -> (content key, its tests, its module check, run whole?)
        self.whole: set[str] = set()  # the exercises the current run runs whole (no untouched-file shortcut)

    def key(self, ex: Exercise, swapped, contents: dict) -> tuple:
        """The contents an exercise's verdict depends on: its files and its dependencies', and the swaps."""
        names = [f"{d.name}.py" for d in [ex, *dependencies(ex, swapped)] if d.has_module]
        return tuple(contents.get(n) for n in sorted(names)) + (contents.get("swaps.txt"),)

    def start(self, exercises: list[Exercise], swapped, overview=False, rerun: Exercise | None = None):
        """An IsolatedRun of what these exercises' states need that is not kept (None: nothing to run).

        overview: every exercise, untouched files reported without running (the `l` key, the start).
        rerun: run this exercise's tests even if its files did not change (the `r` key).
        """
        contents = self.changes.digest()
        self.pending = (exercises, swapped, contents)
        wanted = []
        for ex in exercises:
            for d in [*dependencies(ex, swapped), ex]:
                if d not in wanted and not fully_swapped(d, swapped):
                    wanted.append(d)
        focus = set() if overview else set(exercises)  # run whole: every TODO they reach is listed

        def stale(d):
            key, _, _, whole = self.kept.get(d.id, (None, None, None, False))
            return d is rerun or key != self.key(d, swapped, contents) or (d in focus and not whole)

        run = [d for d in wanted if stale(d)]
        if not run:
            return None
        self.before = passed.keys(self.project, run, swapped)  # .kata/passed.json: the files as they ran
        self.whole = {d.id for d in run if overview is False and d in focus}
        skip = True if overview else [d for d in run if d not in focus]
        return IsolatedRun(self.project, [ex for ex in EXERCISES if ex in run], skip_untouched=skip, **self.options)

    def finish(self, running, gave_up) -> tuple[Progress | None, str | None]:
        """The progress of the exercises asked for, from the run's report and what is kept."""
        exercises, swapped, contents = self.pending
        report, crash = running.result() if running is not None else ({"tests": [], "modules": {}}, None)
        ran = {ex.id for ex in running.exercises} if running is not None else set()
        if crash:
            return None, crash
        for ex in EXERCISES:
            tests = [t for t in report["tests"] if t.get("exercise") == ex.id]
            if ex.id in ran:
                self.kept[ex.id] = (self.key(ex, swapped, contents), tests, report.get("modules", {}).get(ex.name),
                                    ex.id in self.whole)
        wanted = {d.id for ex in exercises for d in [*dependencies(ex, swapped), ex]}
        merged = dict(impl=self.impl, seconds=running.seconds if running is not None else 0.0, tests=[], modules={})
        for ex in EXERCISES:
            if ex.id in wanted and ex.id in self.kept:
                _, tests, module, _ = self.kept[ex.id]
                merged["tests"].extend(tests)
                if module is not None:
                    merged["modules"][ex.name] = module
        order = [ex for ex in EXERCISES if ex.id in wanted]
        progress = compute(self.project, merged, swapped, gave_up, order)
        passed.record(self.project, progress, swapped, self.before if running is not None else {})
        return progress, None
