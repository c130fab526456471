"""What `watch` reacts to: a save, and only a save.

A save is a change of the *content* of exercises/*.py or swaps.txt: a file written,
created, moved in (editors often write a temporary file and rename it) or deleted
(`unswap` of the last swap deletes swaps.txt). Reading a
file — pytest importing it, an editor opening it, `git status` — is not a save, and
neither is a touch that leaves the bytes as they were.

watchdog reports every event of the two folders (exercises/, and the project root for
swaps.txt); the ones that can be writes mark the files dirty (and wake the watch at once,
through a pipe its select() waits on), and once they have been
quiet for QUIET_SECONDS (editors write in several steps) the files' contents are hashed
and compared with the contents of the last run. Without watchdog (or with --poll) the
folder's mtimes and sizes are compared every POLL_SECONDS, then the contents the same way.

    changes = Changes(project, poll=False)
    changes.start()            # False (and poll mode) if no file watcher could start
    if changes.saved(): ...    # True once per save (or burst of saves)
    changes.stop()
"""

import hashlib
import os
import queue
import time

POLL_SECONDS = 1.0
QUIET_SECONDS = 0.02  # a save of several writes (truncate, write, rename) comes within this much time
WRITES = ("modified", "created", "moved", "closed", "deleted")  # watchdog's event types that can change content
# ("closed" is a close after writing; a close after reading is "closed_no_write")


class Changes:
    def __init__(self, project, poll: bool = False):
        self.project, self.poll = project, poll
        self.events: queue.Queue = queue.Queue()
        self.wake_fd = None  # readable as soon as an event comes: the watch's select() wakes on it (watchdog mode)
        self._wake_w = None
        self.observer = None
        self.error = None  # why the file watcher could not start, if it could not
        self.last_saved: list[str] = []  # the files the last save changed
        self.contents = self.digest()
        self.stamps = self.stamps_now()

    # --- what is watched ---------------------------------------------------------------------

    def watched(self, path: str) -> bool:
        """exercises/<name>.py or the project's swaps.txt."""
        from pathlib import Path

        path = Path(path)
        if path.name == "swaps.txt":
            return path.parent == self.project.root
        return path.suffix == ".py" and path.parent == self.project.exercises

    def files(self):
        yield from sorted(self.project.exercises.glob("*.py"))
        yield self.project.swap_file

    def digest(self) -> dict:
        """Each watched file's content hash (None where it is missing or unreadable)."""
        found = {}
        for path in self.files():
            try:
                found[path.name] = hashlib.sha1(path.read_bytes()).hexdigest()
            except OSError:
                found[path.name] = None
        return found

    def stamps_now(self) -> dict:
        found = {}
        for path in self.files():
            try:
                info = path.stat()
                found[path.name] = (info.st_mtime_ns, info.st_size)
            except OSError:
                found[path.name] = None
        return found

    # --- watching ------------------------------------------------------------------------------

    def start(self) -> bool:
        """Start watchdog's observer; False (and poll mode from then on) if it cannot start."""
        if self.poll:
            return False
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer

            changes = self

            class Handler(FileSystemEventHandler):
                def on_any_event(self, event):
                    if event.is_directory or event.event_type not in WRITES:
                        return  # opened, closed_no_write (reads), attrib (a touch)
                    paths = [getattr(event, "src_path", ""), getattr(event, "dest_path", "")]
                    if any(p and changes.watched(p) for p in paths):
                        changes.events.put(time.monotonic())
                        try:
                            os.write(changes._wake_w, b"!")
                        except (BlockingIOError, OSError, TypeError):
                            pass  # full (a wake is pending anyway) or closed

            self.wake_fd, self._wake_w = os.pipe()
            os.set_blocking(self.wake_fd, False)
            os.set_blocking(self._wake_w, False)
            self.observer = Observer()
            handler = Handler()
            self.observer.schedule(handler, str(self.project.exercises), recursive=False)
            self.observer.schedule(handler, str(self.project.root), recursive=False)
            self.observer.start()
            return True
        except Exception as error:  # no watchdog, or the system's watcher refused (inotify limits, ...)
            self.observer, self.poll = None, True
            self.error = f"{type(error).__name__}: {error}"
            return False

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=2)
            self.observer = None
        for fd in (self.wake_fd, self._wake_w):
            if fd is not None:
                os.close(fd)
        self.wake_fd = self._wake_w = None

    def drain_wake(self) -> None:
        """Empty the wake pipe (its bytes only say that events came; the queue holds them)."""
        try:
            while self.wake_fd is not None and os.read(self.wake_fd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def saved(self) -> bool:
        """True once the watched files' contents differ from the last time this returned True."""
        if self.poll:
            now = self.stamps_now()
            if now == self.stamps:
                return False
            self.stamps = now
        else:
            self.drain_wake()
            if self.events.empty():
                return False
            self.settle()
        contents = self.digest()
        if contents == self.contents:
            return False  # written but not changed (a touch, an editor saving an unchanged buffer)
        self.last_saved = [("" if name == "swaps.txt" else "exercises/") + name for name in sorted(contents)
                           if contents[name] != self.contents.get(name)]
        self.contents = contents
        return True

    def settle(self) -> None:
        """Wait until no write has come for QUIET_SECONDS (the last step of a save)."""
        while True:
            try:
                while True:
                    self.events.get(timeout=QUIET_SECONDS)
            except queue.Empty:
                return
