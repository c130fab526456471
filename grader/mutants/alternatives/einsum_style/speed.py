"""14 speed, alternative implementation A (einsum_style).

flash_attention always passes an additive float mask (0 where a query may look, -inf elsewhere, as this
set's 03 builds it) to F.scaled_dot_product_attention; padded_vocab with math.ceil; the padded model is a
*subclass* of GPT (so its state-dict keys have no prefix) whose .config is put back to the real config after
GPT.__init__, and whose forward narrows the logits; autocast picks from a table; compiled warns instead of
printing, and tries a (2, block_size) batch.
"""

import contextlib
import dataclasses
import math
import warnings

import torch
import torch.nn.functional as F

from .gpt import GPT


def flash_attention(q, k, v):
    """q: (B, H, Tq, D); k, v: (B, H, Tk, D), Tq <= Tk. Returns (B, H, Tq, D), equal to causal_attention's."""
    tq, tk = q.shape[-2], k.shape[-2]
    mask = torch.full((tq, tk), float("-inf"), dtype=q.dtype, device=q.device).triu(diagonal=tk - tq + 1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def padded_vocab(vocab_size, multiple=64):
    """vocab_size rounded up to a multiple of `multiple` (a multiple already stays)."""
    return int(math.ceil(vocab_size / multiple)) * multiple


class PaddedGPT(GPT):
    """A GPT whose wte and lm_head have padded rows; from outside, an unpadded GPT."""

    def __init__(self, config, multiple=64):
        super().__init__(dataclasses.replace(config, vocab_size=padded_vocab(config.vocab_size, multiple)))
        self.padded_config = self.config
        self.config = config

    def forward(self, idx, targets=None, kv_cache=None):
        logits, _ = super().forward(idx, kv_cache=kv_cache)
        logits = logits.narrow(-1, 0, self.config.vocab_size)
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.flatten(0, -2), targets.flatten(), ignore_index=-1)


def padded_gpt(config, multiple=64):
    """A PaddedGPT: your GPT with a vocabulary padded to a multiple of `multiple`, behaving as an unpadded one."""
    return PaddedGPT(config, multiple)


AUTOCAST_DTYPES = {"cuda": torch.bfloat16, "cpu": torch.bfloat16}


def autocast(device):
    """The bfloat16 autocast context for a CUDA or CPU device (a string or torch.device), a null context elsewhere."""
    kind = device.type if isinstance(device, torch.device) else torch.device(device).type
    dtype = AUTOCAST_DTYPES.get(kind)
    return contextlib.nullcontext() if dtype is None else _autocast(kind, dtype)


@contextlib.contextmanager
def _autocast(kind, dtype):  # a generator context: entered once, as the contract allows
    with torch.amp.autocast(kind, dtype=dtype):
        yield


def compiled(model):
    """torch.compile(model) if one trial forward of it succeeds; else model itself, with a warning (one line)."""
    param = next(model.parameters())
    try:
        candidate = torch.compile(model)
        with torch.no_grad():
            candidate(torch.zeros(2, model.config.block_size, dtype=torch.long, device=param.device))
        return candidate
    except Exception as error:  # noqa: BLE001
        message = str(error).splitlines()[0] if str(error) else ""
        warnings.warn(f"not compiling: {type(error).__name__}: {message}", stacklevel=2)
        return model
