"""Checkpoints: one file, DIR/ckpt.pt, written so that it is never half a file.

save() writes the whole checkpoint to a temporary file next to it, flushes it to
disk, and only then renames it over ckpt.pt (os.replace is atomic): a run killed
at any moment leaves either the previous checkpoint or the new one, never a
broken file.

What is inside (a dict; torch.load(..., weights_only=True) reads it):

    format      "gpt-kata-checkpoint/1"
    model       the model's state_dict          optimizer   the optimizer's state_dict
    config      the GPTConfig as a dict         settings    the training settings as a dict
    step        optimizer steps done            tokenizer   the vocabulary (tokenizer.state())
    rng         torch's RNG state, CUDA's, and the batch sampler's generator
    metrics     losses and timings so far       run         preset, impl, data source
"""

import os
from pathlib import Path

FORMAT = "gpt-kata-checkpoint/1"
FILENAME = "ckpt.pt"
KEYS = ("model", "optimizer", "config", "settings", "step", "tokenizer", "rng", "metrics", "run")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, in one sentence."""


def save(payload: dict, path) -> Path:
    """Write payload to path atomically (temporary file, fsync, os.replace)."""
    import torch  # here, not at the top: the train command checks its arguments before importing torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load(path) -> dict:
    """The checkpoint at path, on the CPU. CheckpointError for a missing, corrupt or foreign file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"There is no checkpoint at {path}: train first (python -m grader train --out {path.parent}).")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, pickle errors, foreign formats
        raise CheckpointError(
            f"{path} cannot be read as a checkpoint ({type(error).__name__}): it is corrupt or not from this "
            f"project; delete it and train again."
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a GPT Kata checkpoint (it has no {FORMAT!r} marker); delete it or use another --out.")
    missing = [key for key in KEYS if key not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is incomplete (it lacks {', '.join(missing)}); delete it and train again.")
    return ckpt
