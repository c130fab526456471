"""python -m grader watch, driven without a terminal: keys come from a queue, saves from the test itself."""

import io
import queue

import pytest

from grader.project import Project
from grader.screens import console
from grader.cli.watch import Watch


def make_watch(fake, keys, tick, poll=True):
    out = io.StringIO()
    watch = Watch(Project.at(fake.root), console(out), poll=poll, keys=keys, tick=tick)
    return watch, out


@pytest.mark.parametrize("poll", [True, False], ids=["polling", "watchdog"])
def test_watch_reruns_on_save_and_takes_keys(fake, monkeypatch, poll):
    monkeypatch.setattr("grader.cli.watch.POLL_SECONDS", 0.05)
    monkeypatch.setattr("grader.cli.watch.QUIET_SECONDS", 0.05)
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
    monkeypatch.setattr("grader.cli.watch.POLL_SECONDS", 0.05)
    keys = queue.Queue()
    keys.put("l")
    keys.put("q")
    watch, out = make_watch(fake, keys, None)
    assert watch.run() == 0
    assert "next: 01 norms" in out.getvalue() and "0 %" in out.getvalue()


def test_ctrl_c_stops_cleanly(fake):
    def tick(watch):
        raise KeyboardInterrupt

    watch, out = make_watch(fake, queue.Queue(), tick)
    assert watch.run() == 0
    assert out.getvalue().rstrip().endswith("Stopped watching.")


def test_without_a_terminal_or_watcher_it_says_so(fake, monkeypatch, capsys):
    """No keys queue and no terminal: it says keys are off; a broken watchdog falls back to polling."""
    import watchdog.observers

    def broken(*args, **kwargs):
        raise OSError("inotify watch limit reached")

    monkeypatch.setattr(watchdog.observers, "Observer", broken)
    monkeypatch.setattr("grader.cli.watch.POLL_SECONDS", 0.05)
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
    assert "No file watcher available (OSError: inotify watch limit reached)" in text and watch.poll
