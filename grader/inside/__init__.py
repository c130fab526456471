"""See inside your GPT: the commands that look at the learner's model while it runs.

    tracer.py       forward hooks on every module and wrappers around every exercise function (and
                    softmax): a call tree with shapes, dtypes, statistics and attention maps; the first
                    TODO or error reached. Never edits the learner's files; everything is undone after.
    patches.py      the tracer's wrappers: put in place of the exercise functions, softmax and SDPA, and undone
    calls.py        the call tree's nodes: each argument and output summarised, the attention statistics
    trace.py        `python -m grader trace`: one forward (and backward) pass, printed as a tree
    inspect_run.py  `python -m grader inspect RUN`: attention maps, next-token top-k, parameter counts,
                    the training statistics of `train --stats` as figures
    experiment.py   `python -m grader experiment --vary lr=1e-3,3e-3`: short trainings side by side
    figures.py      the matplotlib figures (Agg, written atomically)
    notebook.py     grader.report(), check(), trace(), hint() for Jupyter

Every command checks its arguments before torch is imported.
"""
