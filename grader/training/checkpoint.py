"""Checkpoints: one file, DIR/ckpt.pt, in the layout of exercise 13 (the contract's), never half a file.

The file is what exercise 13's save_checkpoint writes, so `train` can use the learner's
save_checkpoint / load_checkpoint once 13 passes and this given code until then, and a run
saved by either resumes with either:

    model, optimizer    the state_dicts
    step                optimizer steps done
    config              the GPTConfig as a dict
    rng                 {"torch": this process's RNG state, "cuda": CUDA's or None}
    extra               format ("gpt-kata-checkpoint/2"), settings, tokenizer (tokenizer.state()),
                        metrics, run (preset, impl, data, threads), batches (the batch sampler's
                        generator state), rng_per_rank ({"torch": [...], "device": [...] or None}: every
                        process's states, the CPU's and CUDA's or MPS's, for torchrun; "cuda" before)

write() puts the whole file in a temporary file next to ckpt.pt, flushes it to disk, and
only then renames it over ckpt.pt (os.replace is atomic): a run killed at any moment leaves
either the previous checkpoint or the new one. load() reads it with
torch.load(..., weights_only=True) (plain data only: a checkpoint never runs code) and
returns the grader's view of it: the extra fields at the top (ckpt["settings"], ckpt["run"],
...) and ckpt["rng"] as {"torch": [per process], "cuda": [...] or None, "batches": ...}.
Files of the earlier layout (gpt-kata-checkpoint/1) still load.
"""

import dataclasses
import os
from pathlib import Path

FORMAT = "gpt-kata-checkpoint/2"
OLD_FORMAT = "gpt-kata-checkpoint/1"
FILENAME = "ckpt.pt"
KEYS = ("model", "optimizer", "config", "settings", "step", "tokenizer", "rng", "metrics", "run")  # of load()'s view
EXTRA = ("settings", "tokenizer", "metrics", "run")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, in one sentence."""


def save_checkpoint(path, model, optimizer, step, config, extra=None):
    """The given save_checkpoint (exercise 13's contract), used until the learner's passes."""
    import torch

    payload = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
        "config": dataclasses.asdict(config),
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        "extra": extra,
    }
    write(payload, path)


def write(payload: dict, path) -> Path:
    """Write payload to path atomically (temporary file, fsync, os.replace)."""
    import torch  # here, not at the top: the train command checks its arguments before importing torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load(path) -> dict:
    """The grader's view of the checkpoint at path, on the CPU. CheckpointError for a missing, corrupt or
    foreign file."""
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
    if isinstance(ckpt, dict) and ckpt.get("format") == OLD_FORMAT:
        view = ckpt
    elif isinstance(ckpt, dict) and isinstance(ckpt.get("extra"), dict) and ckpt["extra"].get("format") == FORMAT:
        extra = ckpt["extra"]
        view = {**{k: v for k, v in extra.items() if k in EXTRA}, **{k: ckpt[k] for k in ckpt if k != "extra"}}
        view["rng"] = dict(extra.get("rng_per_rank") or {}, batches=extra.get("batches"))
    else:
        raise CheckpointError(f"{path} is not a GPT Kata checkpoint (it has no {FORMAT!r} marker); delete it or use "
                              f"another --out.")
    missing = [key for key in KEYS if key not in view]
    if missing:
        raise CheckpointError(f"{path} is incomplete (it lacks {', '.join(missing)}); delete it and train again.")
    view["layout"] = 1 if view.get("format") == OLD_FORMAT else 2
    return view
