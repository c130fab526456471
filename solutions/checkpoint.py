"""13 checkpoint: save a training run, and resume it exactly where it stopped.

A checkpoint is one file holding everything that decides what training does next:

    model       model.state_dict()                   the weights
    optimizer   optimizer.state_dict()               AdamW's moments m, v and step counts (Muon's buffers)
    step        the number of optimizer steps done   where the schedule is: lr_at(step, ...)
    config      dataclasses.asdict(config)           which model the weights belong to
    rng         {"torch": torch.get_rng_state(),     the random numbers dropout draws next
                 "cuda": torch.cuda.get_rng_state_all() when CUDA is available, else None}
    extra       anything else the run needs, as plain values: the batch generator's
                generator.get_state(), the run's settings, the losses so far

To resume, build the model and the optimizer as for a new run (building them draws
random numbers: do it first), then load_checkpoint: the next step sees the same
weights, moments, learning rate, dropout masks and batches as the run that never
stopped, and its result is equal bit for bit.

Writing atomically: never write over the checkpoint you have. torch.save into a
temporary file in the same folder, then os.replace(tmp, path): the rename is atomic,
so a crash at any moment leaves either the old checkpoint or the new one, never half
a file. (The same folder: a rename only works within one file system.)

Loading: torch.load(path, map_location=..., weights_only=True) rebuilds only tensors
and plain Python values; it never runs code from the file (a pickle can). So the
config is stored as a dict, not as a GPTConfig object. A model compiled with
torch.compile saves its keys as "_orig_mod.transformer..." and a DDP-wrapped one as
"module.transformer..." (or both, "module._orig_mod."): strip those prefixes so that
any checkpoint loads into a plain model.
"""

import dataclasses
import os
from pathlib import Path

import torch

WRAPPER_PREFIXES = ("_orig_mod.", "module.")  # torch.compile's, DDP's


def save_checkpoint(path, model, optimizer, step, config, extra=None):
    """Write {model, optimizer, step, config (a dict), rng {torch, cuda}, extra} to path, atomically.

    A crash while writing leaves the previous file at path as it was; after an exception the
    temporary file is removed and the exception propagates.
    """
    ### BEGIN SOLUTION
    ### TODO: the dict: model.state_dict(), optimizer.state_dict(), step, dataclasses.asdict(config),
    ### TODO: rng = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() or None without CUDA}, extra
    ### TODO: torch.save it to a temporary file in path's folder, then os.replace(tmp, path);
    ### TODO: on any exception delete the temporary file and re-raise
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "config": dataclasses.asdict(config),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        },
        "extra": extra,
    }
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it the checkpoint
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    ### END SOLUTION


def load_checkpoint(path, model=None, optimizer=None, map_location="cpu"):
    """Load path (weights_only); restore the model, the optimizer and torch's RNG; return the dict.

    With a model, every config field but dropout must equal the model's config, else ValueError
    naming the first field (in GPTConfig's order) that differs.
    """
    ### BEGIN SOLUTION
    ### TODO: checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    ### TODO: with a model: compare every field of model.config but dropout with checkpoint["config"]
    ### TODO: (ValueError naming the first that differs); strip "_orig_mod." and "module." from the front of
    ### TODO: each key (as often as they appear) and model.load_state_dict; optimizer.load_state_dict if given
    ### TODO: torch.set_rng_state (a CPU tensor), torch.cuda.set_rng_state_all if saved and available; return it
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if model is not None:
        saved = checkpoint["config"]
        for field in dataclasses.fields(model.config):
            if field.name == "dropout":  # not part of the weights: a run may resume with another
                continue
            ours = getattr(model.config, field.name)
            theirs = saved.get(field.name)
            if theirs != ours:
                raise ValueError(
                    f"The checkpoint {path} was saved with {field.name}={theirs!r}, but the model has "
                    f"{field.name}={ours!r}: build the model from the checkpoint's config (only dropout may differ)."
                )
        state = {}
        for key, value in checkpoint["model"].items():
            while key.startswith(WRAPPER_PREFIXES):
                key = key.split(".", 1)[1]
            state[key] = value
        checkpoint["model"] = state
        model.load_state_dict(state)
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    rng = checkpoint["rng"]
    torch.set_rng_state(rng["torch"].cpu())
    if rng.get("cuda") is not None and torch.cuda.is_available():
        states = [state.cpu() for state in rng["cuda"]][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
    return checkpoint
    ### END SOLUTION
