"""13 checkpoint, alternative implementation A (einsum_style): the file is serialised into memory
first and written through a mkstemp descriptor, Path.replace swaps it in, prefixes go with one
regular expression, and the config is compared as two dicts."""

import dataclasses
import io
import os
import re
import tempfile
from pathlib import Path

import torch

_WRAPPERS = re.compile(r"^(?:_orig_mod\.|module\.)+")


def save_checkpoint(path, model, optimizer, step, config, extra=None):
    """Write {model, optimizer, step, config (a dict), rng {torch, cuda}, extra} to path, atomically."""
    cuda = None
    if torch.cuda.is_available():
        cuda = [torch.cuda.get_rng_state(i) for i in range(torch.cuda.device_count())]
    payload = dict(
        model=model.state_dict(), optimizer=optimizer.state_dict(), step=step,
        config=dataclasses.asdict(config), rng=dict(torch=torch.random.get_rng_state(), cuda=cuda), extra=extra,
    )
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".partial", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(target)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def load_checkpoint(path, model=None, optimizer=None, map_location="cpu"):
    """Load path (weights_only); restore the model, the optimizer and torch's RNG; return the dict."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if model is not None:
        mine = dataclasses.asdict(model.config)
        theirs = ckpt["config"]
        differing = [k for k in mine if k != "dropout" and theirs.get(k, object()) != mine[k]]
        if differing:
            k = differing[0]
            raise ValueError(f"config field {k} differs: checkpoint {theirs.get(k)!r}, model {mine[k]!r}")
        ckpt["model"] = {_WRAPPERS.sub("", k): v for k, v in ckpt["model"].items()}
        model.load_state_dict(ckpt["model"], strict=True)
    if optimizer is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    torch.random.set_rng_state(ckpt["rng"]["torch"].to("cpu"))
    if ckpt["rng"]["cuda"] and torch.cuda.is_available():
        for i, state in enumerate(ckpt["rng"]["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state.to("cpu"), i)
    return ckpt
