"""python -m grader watch: re-run the current exercise's tests whenever a file in exercises/ is saved.

Like `rustlings watch`: it starts at the first exercise that is neither passed nor
swapped, redraws that exercise's result after every save, and takes single keys:

    h  one more hint        n  the next exercise left to do      l  the whole list
    r  run again            q  quit (Ctrl-C too)

Files are watched with watchdog; without it (or with --poll) the folder is checked
every second. Without a terminal there are no keys: it says so, and Ctrl-C stops it.
The tests run in this process (grader/runner.py), so a run costs the tests, not a
fresh import of torch.
"""

import os
import queue
import select
import sys
import time

from rich.text import Text

from .. import state, swaps
from ..plugin.runner import DEFAULT_TIMEOUT, run_tests
from ..progress import compute, fully_swapped
from ..project import KataError, Project
from ..registry import EXERCISES, Exercise
from ..screens import overview
from ..screens.exercise import exercise as exercise_screen, show_hints

KEYS = "[h]int  [n]ext  [l]ist  [r]un again  [q]uit"
POLL_SECONDS = 1.0
QUIET_SECONDS = 0.3  # editors write a file in several steps: wait for this much quiet before running


class Watch:
    def __init__(self, project: Project, con, impl="exercises", timeout=None, poll=False, start: Exercise = None,
                 keys=None, tick=None):
        """keys: a queue.Queue of key strings to use instead of the terminal (tests);
        tick: called with the Watch once per loop turn (tests drive it with this)."""
        self.project, self.con, self.impl = project, con, impl
        self.timeout = timeout or DEFAULT_TIMEOUT
        self.poll, self.start, self.keys, self.tick = poll, start, keys, tick
        self.current: Exercise | None = None
        self.status = None
        self.runs = 0
        self.events: queue.Queue = queue.Queue()
        self.stopped = False
        self.observer = None
        self.snapshot = {}

    # --- running --------------------------------------------------------------------------

    def swapped(self) -> list[Exercise]:
        try:
            return swaps.read(self.project.swap_file) if self.impl == "exercises" else []
        except swaps.SwapFileError as error:
            self.say(f"{error} (treating nothing as swapped until it is fixed)", "red")
            return []

    def check(self, ex: Exercise):
        self.runs += 1
        swapped = self.swapped()
        if fully_swapped(ex, swapped):
            return compute(self.project, {"impl": self.impl}, swapped, {}, [ex]).of(ex)
        result = run_tests(self.project, [ex], impl=self.impl, timeout=self.timeout)
        return compute(self.project, result, swapped, self.gave_up(), [ex]).of(ex)

    def gave_up(self) -> dict:
        try:
            return state.load(self.project).gave_up
        except KataError:  # a malformed state file: the command said so at start; do not stop watching
            return {}

    def first_left(self, after: Exercise | None = None) -> Exercise | None:
        """Run exercises in course order (after `after`) until one is neither passed nor swapped."""
        swapped = self.swapped()
        candidates = [ex for ex in EXERCISES if not fully_swapped(ex, swapped)]
        if after is not None:
            candidates = [ex for ex in candidates if ex.id > after.id]
        for ex in candidates:
            if not self.project.test_file(ex).is_file():
                continue
            self.say(f"checking {ex.label} ...", "dim")
            status = self.check(ex)
            if status.state != "passed":
                self.status = status
                return ex
        return None

    def show(self) -> None:
        if self.con.is_terminal:
            self.con.clear()
        if self.current is None:
            self.say("Every exercise passes (or is swapped). Well done!", "green")
        else:
            exercise_screen(self.status, self.con)
            if self.status.state == "passed":
                self.say(f"{self.current.label} passes! Press n for the next exercise.", "bold green")
        self.con.print()
        self.say(f"watching exercises/ — {KEYS}" if self.interactive else
                 "watching exercises/ — no terminal, so no keys: Ctrl-C to stop", "dim")

    def rerun(self) -> None:
        if self.current is not None:
            self.status = self.check(self.current)
        self.show()

    def go_next(self) -> None:
        upcoming = self.first_left(after=self.current)
        if upcoming is None:
            self.say("No exercise after this one is left to do; keep going here or press l for the list.", "yellow")
            return
        self.current = upcoming
        self.show()

    def show_list(self) -> None:
        swapped = self.swapped()
        run = [ex for ex in EXERCISES if not fully_swapped(ex, swapped)]
        self.say("running every exercise ...", "dim")
        result = run_tests(self.project, run, impl=self.impl, timeout=self.timeout, skip_untouched=True)
        progress = compute(self.project, result,
                           swapped, self.gave_up())
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
            memory = state.load(self.project)
        except KataError as error:
            self.say(str(error), "red")
            return
        shown = memory.hints.get(ex.id, 0)
        count = min(shown + 1, len(ex.hints))
        self.con.print()
        show_hints(ex, count, previously=shown, con=self.con)
        if count != shown:
            memory.hints[ex.id] = count
            state.save(self.project, memory)

    # --- files and keys ---------------------------------------------------------------------

    def files(self) -> dict:
        found = {}
        for path in self.project.exercises.glob("*.py"):
            try:
                info = path.stat()
            except OSError:
                continue
            found[path.name] = (info.st_mtime_ns, info.st_size)
        return found

    def start_watching(self) -> None:
        self.snapshot = self.files()
        if self.poll:
            self.say(f"checking exercises/ every {POLL_SECONDS:g} s for saved files (--poll)", "dim")
            return
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer

            events = self.events

            class Handler(FileSystemEventHandler):
                def on_any_event(self, event):
                    paths = [getattr(event, "src_path", ""), getattr(event, "dest_path", "")]
                    if any(str(p).endswith(".py") and "__pycache__" not in str(p) for p in paths):
                        events.put(time.monotonic())

            self.observer = Observer()
            self.observer.schedule(Handler(), str(self.project.exercises), recursive=False)
            self.observer.start()
        except Exception as error:  # no watchdog, or the system's watcher refused (inotify limits, ...)
            self.observer = None
            self.poll = True
            self.say(f"No file watcher available ({type(error).__name__}: {error}); checking exercises/ every "
                     f"{POLL_SECONDS:g} s instead.", "yellow")

    def changed(self) -> bool:
        """True once files in exercises/ changed and then stayed quiet for QUIET_SECONDS."""
        if self.poll:
            now = self.files()
            if now == self.snapshot:
                return False
            while True:  # wait for the writes to settle
                time.sleep(QUIET_SECONDS)
                later = self.files()
                if later == now:
                    break
                now = later
            self.snapshot = now
            return True
        if self.events.empty():
            return False
        while True:
            try:
                while True:
                    self.events.get(timeout=QUIET_SECONDS)
            except queue.Empty:
                return True

    @property
    def interactive(self) -> bool:
        return self.keys is not None or (sys.stdin.isatty() and self.con.is_terminal)

    def read_key(self, seconds: float) -> str | None:
        if self.keys is not None:
            try:
                return self.keys.get(timeout=seconds)
            except queue.Empty:
                return None
        if not self.interactive:
            time.sleep(seconds)
            return None
        ready, _, _ = select.select([sys.stdin], [], [], seconds)
        if not ready:
            return None
        data = os.read(sys.stdin.fileno(), 1)
        return data.decode(errors="ignore").lower() if data else None

    # --- the loop ---------------------------------------------------------------------------

    def say(self, text: str, style: str = "") -> None:
        self.con.print(Text(text, style=style))

    def run(self) -> int:
        terminal = None
        try:
            if self.keys is None and self.interactive:
                import termios
                import tty

                terminal = termios.tcgetattr(sys.stdin.fileno())
                tty.setcbreak(sys.stdin.fileno())
            elif self.keys is None:
                self.say("No terminal: keys are off (Ctrl-C stops watching).", "yellow")
            self.start_watching()
            if self.start is not None:
                self.current = self.start
                self.status = self.check(self.start)
            else:
                self.current = self.first_left()
            self.show()
            while not self.stopped:
                if self.tick is not None:
                    self.tick(self)
                    if self.stopped:
                        break
                key = self.read_key(POLL_SECONDS if self.poll else 0.2)
                if key == "q":
                    break
                if key == "h":
                    self.hint()
                elif key == "n":
                    self.go_next()
                elif key == "l":
                    self.show_list()
                elif key == "r":
                    self.rerun()
                if self.changed():
                    self.rerun()
        except KeyboardInterrupt:
            pass
        finally:
            if self.observer is not None:
                self.observer.stop()
                self.observer.join(timeout=2)
            if terminal is not None:
                import termios

                termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, terminal)
        self.say("Stopped watching.", "dim")
        return 0
