"""python -m grader watch, driven without a terminal: keys come from a queue, saves from the test itself.

The file watching is real: watchdog's observer on a real temporary folder (or polling, where
the test says so); the runs are real forks running the fake project's tests.
"""

import io
import queue
import threading
import time

import pytest

from grader.cli.watch import Watch
from grader.project import Project
from grader.screens import console


def make_watch(fake, keys, tick, poll=True):
    out = io.StringIO()
    watch = Watch(Project.at(fake.root), console(out), poll=poll, keys=keys, tick=tick)
    return watch, out


@pytest.mark.parametrize("poll", [True, False], ids=["polling", "watchdog"])
def test_watch_reruns_on_save_and_takes_keys(fake, monkeypatch, poll):
    monkeypatch.setattr("grader.cli.watch.POLL_SECONDS", 0.05)
    fake.solve("01")
    keys = queue.Queue()
    script = []

    def tick(watch):
        if watch.current.id == "02" and watch.status.state == "not started" and "saved" not in script:
            script.append("saved")
            fake.write("02", first=True, second=True)  # the learner saves a solution
        elif watch.status.state == "passed" and "next" not in script:
            script.append("next")
            keys.put("n")
        elif watch.current.id == "03" and "hint" not in script:
            script.append("hint")
            keys.put("h")
        elif "hint" in script and "quit" not in script:
            script.append("quit")
            keys.put("q")

    watch, out = make_watch(fake, keys, tick, poll)
    assert watch.run() == 0
    text = out.getvalue()
    assert script == ["saved", "next", "hint", "quit"]
    assert "02 rotary — Rotary position embeddings: not started" in text  # 01 passes: it starts at 02
    assert "02 rotary — Rotary position embeddings: passed" in text and "Press n for the next exercise" in text
    assert "03 attention — Causal self-attention: not started" in text
    assert "Hints for 03 attention" in text and "1/4." in text
    assert "[h]int  [n]ext  [l]ist  [r]un again  [q]uit" in text
    assert text.rstrip().endswith("Stopped watching.")


def test_watch_list_key_shows_the_whole_table(fake, monkeypatch):
    keys = queue.Queue()
    keys.put("l")

    def tick(watch):
        if "next: 01 norms" in out.getvalue():
            keys.put("q")

    watch, out = make_watch(fake, keys, tick)
    assert watch.run() == 0
    assert "next: 01 norms" in out.getvalue() and "0 %" in out.getvalue()


def test_q_during_a_run_stops_it_and_the_watch(fake):
    """A hang in the learner's code never traps the learner: q kills the run."""
    fake.write("01", text="import time\ntime.sleep(60)\n")
    keys = queue.Queue()
    keys.put("q")
    watch, out = make_watch(fake, keys, None)
    started = time.monotonic()
    assert watch.run() == 0
    assert time.monotonic() - started < 30
    assert out.getvalue().rstrip().endswith("Stopped watching.")


def test_ctrl_c_stops_cleanly(fake):
    def tick(watch):
        raise KeyboardInterrupt

    watch, out = make_watch(fake, queue.Queue(), tick)
    assert watch.run() == 0
    assert out.getvalue().rstrip().endswith("Stopped watching.")


def test_without_a_terminal_or_watcher_it_says_so(fake, monkeypatch):
    """No keys queue and no terminal: it says keys are off; a broken watchdog falls back to polling."""
    import watchdog.observers

    def broken(*args, **kwargs):
        raise OSError("inotify watch limit reached")

    monkeypatch.setattr(watchdog.observers, "Observer", broken)
    calls = []

    def tick(watch):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    out = io.StringIO()
    watch = Watch(Project.at(fake.root), console(out), tick=tick)
    assert watch.run() == 0
    text = out.getvalue()
    assert "No terminal: keys are off" in text
    assert "No file watcher available (OSError: inotify watch limit reached)" in text and watch.changes.poll


def test_a_crash_in_a_run_does_not_stop_the_watch(fake):
    """A learner's file that calls os._exit (or segfaults) ends its run, not the watch."""
    fake.write("01", text="import os\nos._exit(3)\n")
    keys, script = queue.Queue(), []

    def tick(watch):
        if not script:
            script.append("fixed")
            fake.solve("01")
        elif watch.current is not None and watch.current.id == "02" and len(script) == 1:
            script.append("quit")
            keys.put("q")

    watch, out = make_watch(fake, keys, tick, poll=False)
    assert watch.run() == 0
    text = out.getvalue()
    assert "The test run exited with status 3 before it could report" in text
    assert "02 rotary — Rotary position embeddings: not started" in text  # 01 passes once fixed: on to 02


def test_each_run_sees_the_file_as_saved(fake):
    """Nothing of one run stays for the next: state a run leaves in the interpreter (here a counter on
    builtins) is gone at the next, and each run imports the file as last saved."""
    template = ("import builtins\nbuiltins.kata_count = getattr(builtins, 'kata_count', 0) + 1\n"
                "def first():\n    return builtins.kata_count\n\ndef second():\n    return -1  # {}\n")
    fake.write("01", text=template.format(0))
    keys, saves = queue.Queue(), []

    def tick(watch):
        if watch.runs == len(saves) + 1 and watch.status is not None:
            if len(saves) == 2:
                keys.put("q")
            else:
                saves.append(len(saves) + 1)
                fake.write("01", text=template.format(len(saves)))

    watch, out = make_watch(fake, keys, tick, poll=False)
    watch.start = fake_exercise("01")
    assert watch.run() == 0
    text = out.getvalue()
    assert watch.runs == 3
    assert text.count("01 norms — LayerNorm and RMSNorm: passed") == 3, text  # first() is 1 in every run


def fake_exercise(ex_id):
    from grader.registry import BY_ID

    return BY_ID[ex_id]


# --- only a save wakes it --------------------------------------------------------------------


def reads(folder, stop):
    """What pytest and editors do in the folder without changing a file: open, read, stat, write bytecode."""
    cache = folder / "__pycache__"
    while not stop.is_set():
        for path in folder.glob("*.py"):
            path.read_bytes()
            path.stat()
            cache.mkdir(exist_ok=True)
            (cache / (path.stem + ".cpython-311.pyc")).write_bytes(b"cache")
        time.sleep(0.01)


def test_an_idle_watch_runs_nothing_while_files_are_read_and_once_per_save(fake):
    """The real watchdog observer on a real folder: 20 s of reads start no run; one save one run;
    a burst of saves one run."""
    fake.solve("01")
    keys, stop = queue.Queue(), threading.Event()
    marks = {}

    def tick(watch):
        now = time.monotonic()
        if "start" not in marks:
            marks["start"], marks["runs"] = now, watch.runs
            threading.Thread(target=reads, args=(fake.root / "exercises", stop), daemon=True).start()
        elif "idle" not in marks and now - marks["start"] >= 20:
            stop.set()
            marks["idle"] = watch.runs - marks["runs"]
            fake.write("02", first=True)  # one save
            marks["saved"], marks["runs"] = now, watch.runs
        elif "one" not in marks and "saved" in marks and now - marks["saved"] >= 1.5:
            marks["one"] = watch.runs - marks["runs"]
            rotary = fake.root / "exercises" / "rotary.py"
            for n in range(5):  # a burst: five quick saves
                rotary.write_text(rotary.read_text() + f"# {n}\n")
                time.sleep(0.005)
            marks["burst"], marks["runs"] = now, watch.runs
        elif "burst_runs" not in marks and "burst" in marks and now - marks["burst"] >= 1.5:
            marks["burst_runs"] = watch.runs - marks["runs"]
            keys.put("q")

    watch, out = make_watch(fake, keys, tick, poll=False)
    try:
        assert watch.run() == 0
    finally:
        stop.set()
    assert marks["idle"] == 0, out.getvalue()
    assert marks["one"] == 1
    assert marks["burst_runs"] == 1


def test_deleting_swaps_txt_wakes_it_once(fake):
    """`unswap` of the last swap deletes swaps.txt: the real watchdog observer sees it as a save."""
    fake.solve("01")
    swap_file = fake.root / "swaps.txt"
    swap_file.write_text("01\n", encoding="utf-8")
    keys, marks = queue.Queue(), {}

    def tick(watch):
        now = time.monotonic()
        if "start" not in marks:
            marks["start"], marks["runs"] = now, watch.runs
            swap_file.unlink()
        elif "ran" not in marks and now - marks["start"] >= 1.5:
            marks["ran"] = watch.runs - marks["runs"]
            keys.put("q")

    watch, out = make_watch(fake, keys, tick, poll=False)
    assert watch.run() == 0
    assert marks["ran"] == 1, out.getvalue()


def test_what_a_key_prints_stays_until_the_next_save(fake, monkeypatch):
    fake.solve("01")
    keys, marks = queue.Queue(), {}

    def tick(watch):
        if "hint" not in marks:
            marks["hint"] = time.monotonic()
            keys.put("h")
        elif time.monotonic() - marks["hint"] > 2:
            keys.put("q")

    watch, out = make_watch(fake, keys, tick, poll=False)
    assert watch.run() == 0
    text = out.getvalue()
    after = text[text.index("Hints for 02 rotary"):]
    assert "02 rotary — Rotary position embeddings: " not in after  # nothing redrew the exercise screen


def test_a_save_during_a_run_that_hangs_restarts_it_with_the_new_file(fake):
    """The run of a file that loops forever is dropped when a fixed version is saved: no waiting for the limit."""
    from conftest import exercise_text

    fake.write("01", text=exercise_text(fake_exercise("01"), True, True).replace(
        "    return 1\n", "    while True:\n        pass\n", 1))
    keys = queue.Queue()

    def save_the_fix():
        time.sleep(2.0)
        fake.solve("01")

    def tick(watch):
        if watch.status is not None and watch.status.state == "passed":
            keys.put("q")

    threading.Thread(target=save_the_fix, daemon=True).start()
    watch, out = make_watch(fake, keys, tick, poll=False)
    watch.start = fake_exercise("01")
    assert watch.run() == 0
    text = out.getvalue()
    assert "saved again: running the new version" in text, text  # dropped, not waited out (the limit is 30 s)
    assert "timed out" not in text and "01 norms — LayerNorm and RMSNorm: passed" in text, text
