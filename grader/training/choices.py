"""Whose parts of the second half a training run uses, and the header lines that say so.

12's configure_muon, 13's save_checkpoint / load_checkpoint and 14's flash_attention are the learner's
once that exercise passes (grader/passed.py, through parts.second_half); until then the reference's or
the given code. Each function below sets its part on the run (grader/training/run.py) and adds the
line of the run's header that says whose, and why.

    note_swaps(run); choose_optimizer(run, resumed); choose_checkpoints(run); choose_attention(run)
"""

import dataclasses
import importlib

from grader.training.parts import second_half, why_not_yours


def note_swaps(run):
    """The swaps in force (a learner's run): the reference stands in for those modules, with its own parts."""
    from grader import swaps

    run.swapped = swaps.read() if run.impl == "exercises" else []
    if run.swapped:
        run.notes.append(f"swapped: {', '.join(ex.label for ex in run.swapped)} (the reference stands in, with its "
                         f"own parts: your files behind a swapped one are not used)")


def choose_optimizer(run, resumed: bool):
    """--optimizer muon: exercise 12's configure_muon (yours once 12 passes); AdamW: 07's, always yours.
    A preset that trains with Muon (cpu-modern, gpu-modern) does so once the learner's 12 passes; until then a
    new run without --optimizer trains with AdamW, and the header says so."""
    run.muon = None
    if run.settings.optimizer == "muon":
        run.muon, whose = second_half(run.impl, "12")
        if (run.impl == "exercises" and not resumed and "optimizer" not in run.setting_flags
                and not run.muon.__name__.startswith("exercises")):
            run.settings = dataclasses.replace(run.settings, optimizer="adamw")
            run.muon = None
            run.notes.append("optimizer: AdamW (07 configure_optimizers); this preset trains with Muon once "
                             "exercise 12 passes (--optimizer muon: the reference's now)")
            return
    if run.settings.optimizer != "muon":
        run.notes.append("optimizer: AdamW (07 configure_optimizers)")
        return
    run.notes.append(f"optimizer: Muon for the blocks' matrices (lr {run.settings.muon_lr:g}) + AdamW for the "
                     f"rest (lr {run.settings.lr:g}), no weight decay (configure_muon's default): {whose} "
                     f"configure_muon")


def choose_checkpoints(run):
    """Exercise 13's save_checkpoint / load_checkpoint once 13 passes (or the reference's, with --impl
    solutions); the given code of grader/training/checkpoint.py until then. Both write one layout."""
    from grader.training import checkpoint

    module, whose = second_half(run.impl, "13")
    if run.impl == "exercises" and not module.__name__.startswith("exercises"):
        why = why_not_yours(whose)
        run.checkpoints = checkpoint
        run.notes.append(f"checkpoints: the given code (your 13's once it passes: {why})")
    else:
        run.checkpoints = module
        run.notes.append(f"checkpoints: {whose} save_checkpoint and load_checkpoint")


def choose_attention(run):
    """Attention through exercise 14's flash_attention (SDPA) once 14 passes (with --impl solutions: the
    reference's), else the handwritten causal_attention of 03 (grader/training/speedups.py's Router)."""
    run.flash = None
    speed, whose = second_half(run.impl, "14")
    if run.impl == "exercises" and not speed.__name__.startswith("exercises"):
        why = why_not_yours(whose)
        whose_03 = "the reference's (03 is swapped)" if any(ex.id == "03" for ex in run.swapped) else "your 03's"
        run.notes.append(f"attention: handwritten, {whose_03} causal_attention (SDPA once exercise 14 passes: {why})")
        return
    run.flash = (importlib.import_module(f"{run.impl}.attention"), speed.flash_attention, whose)
