"""watch's keys: single key presses from the terminal (in cbreak mode while watching), or from a
queue that tests fill. A wait for a key also ends at once when a file event comes (the wake
pipe of grader/cli/changes.py), so a save is answered without waiting for the next tick.

    with Keys(con) as keys:
        key = keys.read(seconds, wake_fd)            # "h", "q", ... or None when nothing came
        key = keys.read(seconds, during_run=True)    # while tests run: keys only, kept for later
"""

import os
import queue
import select
import sys
import time


class Keys:
    def __init__(self, con, source: queue.Queue | None = None):
        self.con, self.source = con, source
        self.later: list[str] = []  # keys pressed during a run, handled once it is done
        self._terminal = None  # the terminal's settings before cbreak, restored on exit

    @property
    def interactive(self) -> bool:
        return self.source is not None or (sys.stdin.isatty() and self.con.is_terminal)

    def __enter__(self):
        if self.source is None and self.interactive:
            import termios
            import tty

            self._terminal = termios.tcgetattr(sys.stdin.fileno())
            tty.setcbreak(sys.stdin.fileno())
        return self

    def __exit__(self, *exc):
        if self._terminal is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._terminal)
            self._terminal = None

    def read(self, seconds: float, wake_fd: int | None = None, during_run: bool = False) -> str | None:
        """The next key, waiting at most `seconds` (less when wake_fd becomes readable); None if none came."""
        if self.later and not during_run:
            return self.later.pop(0)
        if self.source is not None:
            try:
                return self.source.get(timeout=seconds)
            except queue.Empty:
                return None
        wake = [wake_fd] if wake_fd is not None and not during_run else []  # during a run only keys matter
        if not self.interactive:
            if wake:
                select.select(wake, [], [], seconds)
            else:
                time.sleep(seconds)
            return None
        ready, _, _ = select.select([sys.stdin, *wake], [], [], seconds)
        if sys.stdin not in ready:
            return None
        data = os.read(sys.stdin.fileno(), 1)
        return data.decode(errors="ignore").lower() if data else None
