"""13 checkpoint, alternative implementation B (plain_loops): torch.save onto a ".tmp" path
beside the checkpoint and os.replace, prefixes stripped in a loop until none is left, the config
walked key by key in the checkpoint's own order."""

import dataclasses
import os

import torch

PREFIXES = ["module.", "_orig_mod."]


def save_checkpoint(path, model, optimizer, step, config, extra=None):
    """Write {model, optimizer, step, config (a dict), rng {torch, cuda}, extra} to path, atomically."""
    rng = {"torch": torch.get_rng_state(), "cuda": None}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    checkpoint = {}
    checkpoint["model"] = model.state_dict()
    checkpoint["optimizer"] = optimizer.state_dict()
    checkpoint["step"] = step
    checkpoint["config"] = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    checkpoint["rng"] = rng
    checkpoint["extra"] = extra
    tmp = os.fspath(path) + ".tmp"
    ok = False
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)
        ok = True
    finally:
        if not ok and os.path.exists(tmp):
            os.remove(tmp)


def strip_prefixes(key):
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                changed = True
    return key


def load_checkpoint(path, model=None, optimizer=None, map_location="cpu"):
    """Load path (weights_only); restore the model, the optimizer and torch's RNG; return the dict."""
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if model is not None:
        for name, value in checkpoint["config"].items():
            if name == "dropout":
                continue
            if not hasattr(model.config, name) or getattr(model.config, name) != value:
                raise ValueError(f"{name}: the checkpoint has {value!r}, the model "
                                 f"{getattr(model.config, name, None)!r}")
        state = {}
        for key in checkpoint["model"]:
            state[strip_prefixes(key)] = checkpoint["model"][key]
        model.load_state_dict(state)
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    torch.set_rng_state(checkpoint["rng"]["torch"].cpu())
    cuda = checkpoint["rng"]["cuda"]
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda][: torch.cuda.device_count()])
    return checkpoint
