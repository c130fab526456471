"""GPT Kata in a Jupyter notebook: the grader's screens, rendered by rich in the cell's output.

    import grader
    grader.report()                 # every exercise: state, points, the next step (python -m grader)
    grader.check("03")              # one exercise, every failure's whole message (python -m grader check 03)
    grader.hint("03")               # one more hint (python -m grader hint 03)
    grader.trace(backward=True)     # one forward pass as a call tree (python -m grader trace --backward)

Each runs the command in the notebook's own process and prints what the command prints (rich
draws it as HTML in Jupyter, with colours); the learner's modules are imported afresh on every
call, so an edit saved in exercises/ counts at once. They return None, so a cell shows only the
screen; a usage mistake prints its one sentence.
"""

import sys


def _flags(options: dict) -> list[str]:
    argv = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        else:
            argv += [flag, str(value)]
    return argv


def _run(argv: list[str]) -> None:
    from grader.cli import main

    main(argv)
    sys.stdout.flush()


def report(impl: str | None = None) -> None:
    """Every exercise's state, points and the next step."""
    _run(_flags(dict(impl=impl)))


def check(exercise, impl: str | None = None, verbose: bool = False) -> None:
    """One exercise in full: every failing test's whole message and the TODOs its tests ran into."""
    _run(["check", str(exercise), *_flags(dict(impl=impl, verbose=verbose))])


def hint(exercise, all: bool = False) -> None:  # noqa: A002 - the command's own flag
    """One more hint for the exercise (all of them with all=True)."""
    _run(["hint", str(exercise), *_flags(dict(all=all))])


def trace(prompt: str | None = None, preset: str = "tiny", backward: bool = False, impl: str | None = None,
          **model_flags) -> None:
    """One forward pass of your GPT as a call tree; model_flags as in train (n_layer=4, pos_emb="rope", ...)."""
    from grader.inside.trace import main

    main(_flags(dict(impl=impl, preset=preset, prompt=prompt, backward=backward, **model_flags)))
    sys.stdout.flush()
