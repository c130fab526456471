"""14 speed, alternative implementation B (plain_loops).

flash_attention uses is_causal when Tq == Tk and otherwise a boolean mask built by comparing absolute
positions; padded_vocab counts up in steps of `multiple`; the padded model holds its GPT as self.model,
slices the logits with index_select, and writes the cross-entropy out (log_softmax, gather, mean over
the counted targets); autocast is an if/elif chain; compiled prints its reason to stdout and tries a (1, 4)
batch (clipped to the block size).
"""

import contextlib
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from .gpt import GPT


def flash_attention(q, k, v):
    """q: (B, H, Tq, D); k, v: (B, H, Tk, D), Tq <= Tk. Returns (B, H, Tq, D), equal to causal_attention's."""
    n_q, n_k = q.size(2), k.size(2)
    if n_q == n_k:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    query_pos = torch.arange(n_k - n_q, n_k, device=q.device)
    key_pos = torch.arange(n_k, device=q.device)
    may_look = key_pos[None, :] <= query_pos[:, None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=may_look)


def padded_vocab(vocab_size, multiple=64):
    """vocab_size rounded up to a multiple of `multiple` (a multiple already stays)."""
    size = 0
    while size < vocab_size:
        size += multiple
    return size


class PaddedGPT(nn.Module):
    """Holds a GPT with padded rows in wte and lm_head; from outside, an unpadded GPT."""

    def __init__(self, config, multiple=64):
        super().__init__()
        self.config = config
        inner = copy.copy(config)
        inner.vocab_size = padded_vocab(config.vocab_size, multiple)
        self.model = GPT(inner)

    def forward(self, idx, targets=None, kv_cache=None):
        full, _ = self.model(idx, None, kv_cache)
        keep = torch.arange(self.config.vocab_size, device=full.device)
        logits = full.index_select(-1, keep)
        loss = None
        if targets is not None:
            flat = targets.reshape(-1)
            counted = flat != -1
            logp = F.log_softmax(logits.reshape(-1, logits.size(-1)), dim=-1)
            picked = logp.gather(1, flat.clamp(min=0)[:, None])[:, 0]
            loss = -(picked * counted).sum() / counted.sum()
        return logits, loss


def padded_gpt(config, multiple=64):
    """A PaddedGPT: your GPT with a vocabulary padded to a multiple of `multiple`, behaving as an unpadded one."""
    return PaddedGPT(config, multiple=multiple)


def autocast(device):
    """The bfloat16 autocast context for a CUDA or CPU device (a string or torch.device), a null context elsewhere."""
    kind = str(device).split(":")[0]
    if kind == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    elif kind == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    else:
        return contextlib.nullcontext()


def compiled(model):
    """torch.compile(model) if one trial forward of it succeeds; else model itself, after printing why (one line)."""
    device = None
    for p in model.parameters():
        device = p.device
        break
    length = min(4, model.config.block_size)
    try:
        result = torch.compile(model)
        with torch.no_grad():
            result(torch.zeros((1, length), dtype=torch.long, device=device))
    except Exception as error:  # noqa: BLE001
        print("compiled(): keeping the plain model,", type(error).__name__, "-", repr(str(error))[:200])
        return model
    return result
