"""GPT Kata's grader: progress report, swaps, hints, training. See `python -m grader --help`.

In a Jupyter notebook (rich draws the same screens in the cell's output):

    import grader
    grader.report()            # python -m grader
    grader.check("03")         # python -m grader check 03
    grader.hint("03")          # python -m grader hint 03
    grader.trace()             # python -m grader trace (prompt=, preset=, backward=True, n_layer=4, ...)
"""


def report(impl=None):
    """Every exercise's state, points and the next step (`python -m grader`)."""
    from .inside import notebook

    return notebook.report(impl)


def check(exercise, impl=None, verbose=False):
    """One exercise with every failure's whole message (`python -m grader check NN`)."""
    from .inside import notebook

    return notebook.check(exercise, impl, verbose)


def hint(exercise, all=False):  # noqa: A002
    """One more hint for an exercise (`python -m grader hint NN`)."""
    from .inside import notebook

    return notebook.hint(exercise, all)


def trace(prompt=None, preset="tiny", backward=False, impl=None, **model_flags):
    """One forward pass of your GPT as a call tree (`python -m grader trace`)."""
    from .inside import notebook

    return notebook.trace(prompt, preset, backward, impl, **model_flags)
