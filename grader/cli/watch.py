"""python -m grader watch: re-run the current exercise's tests whenever you save a file in exercises/.

Like `rustlings watch`: it starts at the first exercise that is neither passed nor
swapped, redraws that exercise's result after every save, and takes single keys:

    h  one more hint        n  the next exercise left to do      l  the whole list
    r  run again            q  quit (Ctrl-C too)

Only a save wakes it (grader/cli/changes.py): a change of the content of exercises/*.py
or swaps.txt, never a read; what a key prints stays on screen until the next save. Each
run is a fresh fork of this warm process (grader/plugin/isolated.py): torch and pytest are
imported once, each run imports your files as saved, and a crash, hang or sys.exit in a
run is reported without stopping the watch. Dependencies' results are kept while their
files do not change (grader/cli/verdicts.py). Without a terminal there are no keys: it
says so, and Ctrl-C stops it.
"""

import time

from rich.text import Text

from .. import state, swaps
from ..plugin.isolated import warm_up
from ..plugin.runner import DEFAULT_TIMEOUT
from ..progress import fully_swapped
from ..project import KataError, Project
from ..registry import EXERCISES, Exercise
from ..screens import overview
from ..screens.exercise import exercise as exercise_screen, show_hints
from .changes import POLL_SECONDS, Changes
from .keys import Keys
from .verdicts import Verdicts

KEYS = "[h]int  [n]ext  [l]ist  [r]un again  [q]uit"
TICK = 0.02  # seconds between looks at the keys and the files (a select() or a queue wait: nothing spins)
RUN_TICK = 0.01  # between looks at a running child: its verdict shows within this of its end
FAILURES_SHOWN = 3  # failures in full on watch's screen (a cause several tests name counts once); check shows all


class Watch:
    def __init__(self, project: Project, con, impl="exercises", timeout=None, poll=False, start: Exercise = None,
                 keys=None, tick=None, threads: int = 1):
        """keys: a queue.Queue of key strings to use instead of the terminal (tests);
        tick: called with the Watch once per loop turn (tests drive it with this)."""
        self.project, self.con, self.impl = project, con, impl
        self.start, self.tick = start, tick
        self.keys = Keys(con, keys)  # the terminal's keys (grader/cli/keys.py), or the tests' queue
        self.changes = Changes(project, poll=poll)
        self.verdicts = Verdicts(project, self.changes, impl, timeout or DEFAULT_TIMEOUT, threads)
        self.current: Exercise | None = None
        self.status = None
        self.runs = 0  # test runs started (a run of nothing, every verdict kept, is not counted)
        self.last_seconds = 0.0
        self.crashed = False  # the last run ended without a report
        self.stopped = False

    # --- running --------------------------------------------------------------------------

    def swapped(self) -> list[Exercise]:
        try:
            return swaps.read(self.project.swap_file) if self.impl == "exercises" else []
        except swaps.SwapFileError as error:
            self.say(f"{error} (treating nothing as swapped until it is fixed)", "red")
            return []

    def gave_up(self) -> dict:
        return state.read(self.project)[0].gave_up if self.impl == "exercises" else {}

    def progress(self, exercises, overview=False, rerun=None):
        """Run what these exercises' states need (in a fork); their progress, or None if it was stopped."""
        while True:
            swapped = self.swapped()
            running = self.verdicts.start(exercises, swapped, overview=overview, rerun=rerun)
            if running is None:
                break
            self.runs += 1
            if not overview:
                self.say(f"running the tests of {', '.join(ex.label for ex in exercises)} ... (q stops)", "dim")
            try:
                newer = False
                while not running.done():
                    key = self.keys.read(RUN_TICK, during_run=True)
                    if key == "q":
                        running.kill()
                        self.stopped = True
                        return None
                    if key:
                        self.keys.later.append(key)  # handled once the run is done
                    if self.changes.saved():  # saved again: this run's verdict would be stale
                        running.kill()
                        newer = True
                        break
            except BaseException:  # Ctrl-C during a run: the child and its report file go too
                running.kill()
                raise
            if not newer:
                break
            self.say("saved again: running the new version", "dim")
        progress, crash = self.verdicts.finish(running, self.gave_up())
        self.crashed = bool(crash)
        if crash:
            if self.con.is_terminal:
                self.con.clear()
            saved = ", ".join(self.changes.last_saved) or "the files"
            self.say(f"{crash[0].upper()}{crash[1:]}. Look at what your last save ({saved}) does when it is "
                     f"imported or run, and save again; the watch goes on.", "bold red")
            return None
        self.last_seconds = running.seconds if running is not None else 0.0
        return progress

    def first_left(self, after: Exercise | None = None) -> Exercise | None:
        """The first exercise (after `after`) that is neither passed nor swapped."""
        progress = self.progress(list(EXERCISES), overview=True)
        upcoming = progress.next_after(after) if progress is not None else None
        return upcoming.exercise if upcoming is not None else None

    def show(self) -> None:
        if self.con.is_terminal:
            self.con.clear()
        if self.current is None:
            self.say("Every exercise passes (or is swapped). Well done!", "green")
        elif self.status is not None:
            exercise_screen(self.status, self.con, limit=FAILURES_SHOWN)
            if self.status.state == "passed":
                self.say(f"{self.current.label} passes! Press n for the next exercise.", "bold green")
            else:  # the state again at the bottom, where the eye is after a long message
                self.say(f"{self.current.label}: {self.status.label}", "bold")
            self.say(f"({self.status.passed}/{self.status.total} tests pass, {self.last_seconds:.2f} s, "
                     f"{time.strftime('%H:%M:%S')})", "dim")
        self.con.print()
        self.say(f"watching exercises/ — {KEYS}" if self.keys.interactive else
                 "watching exercises/ — no terminal, so no keys: Ctrl-C to stop", "dim")

    def rerun(self, force=False) -> None:
        if self.current is None and self.crashed:  # the first look at the exercises crashed: look again
            self.current = self.start or self.first_left()
            if self.crashed:
                return
        if self.current is not None:
            status = self.progress([self.current], rerun=self.current if force else None)
            if status is None:
                return
            self.status = status.of(self.current)
        self.show()

    def go_next(self) -> None:
        upcoming = self.first_left(after=self.current)
        if upcoming is None:
            if not self.stopped:
                self.say("No exercise after this one is left to do; keep going here or press l for the list.",
                         "yellow")
            return
        self.current = upcoming
        self.rerun()

    def show_list(self) -> None:
        self.say("running every exercise ...", "dim")
        progress = self.progress(list(EXERCISES), overview=True)
        if progress is None:
            return
        if self.con.is_terminal:
            self.con.clear()
        overview.home(progress, self.con)
        self.con.print()
        self.say(f"watching exercises/ — {KEYS}", "dim")

    def hint(self) -> None:
        ex = self.current
        if ex is None:
            return
        try:
            shown, count, problem = state.reveal_hints(self.project, ex)
        except KataError as error:  # the state file cannot be written: the watch goes on
            self.say(str(error), "yellow")
            return
        self.con.print()
        show_hints(ex, count, previously=shown, con=self.con, again="press h again", remembered=not problem)
        if problem:
            self.say(f"{problem} Hints are not remembered until it is fixed.", "yellow")

    # --- the loop ---------------------------------------------------------------------------

    def say(self, text: str, style: str = "") -> None:
        self.con.print(Text(text, style=style))

    def begin(self) -> None:
        if not self.keys.interactive:
            self.say("No terminal: keys are off (Ctrl-C stops watching).", "yellow")
        if not self.changes.start():
            why = f"No file watcher available ({self.changes.error}); c" if self.changes.error else "C"
            self.say(f"{why}hecking exercises/ every {POLL_SECONDS:g} s for saved files.", "yellow" if
                     self.changes.error else "dim")
        self.say("loading torch and the tests ...", "dim")
        swapped = self.swapped()
        warm_up([self.project.test_file(ex) for ex in EXERCISES if not fully_swapped(ex, swapped)])
        self.current = self.start or self.first_left()
        if self.stopped or self.crashed:
            return
        if self.current is not None:
            self.rerun()
        else:
            self.show()

    def run(self) -> int:
        try:
            with self.keys:
                self.loop()
        except KeyboardInterrupt:
            pass
        finally:
            self.changes.stop()
        self.say("Stopped watching.", "dim")
        return 0

    def loop(self) -> None:
        self.begin()
        while not self.stopped:
            if self.tick is not None:
                self.tick(self)
                if self.stopped:
                    return
            key = self.keys.read(TICK if not self.changes.poll else POLL_SECONDS, self.changes.wake_fd)
            if key == "q":
                return
            if key == "h":
                self.hint()
            elif key == "n":
                self.go_next()
            elif key == "l":
                self.show_list()
            elif key == "r":
                self.rerun(force=True)
            if self.changes.saved():
                self.rerun()
