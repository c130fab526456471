"""14 speed: the same GPT, faster. Four changes from GPT-2's reproduction, each equal to what it replaces.

1. Flash attention. F.scaled_dot_product_attention (SDPA) computes softmax(q kᵀ / sqrt(D) + mask) v
   in fused kernels that never write the (Tq, Tk) score matrix to memory. It must give what 03's
   causal_attention gives, also when Tq < Tk (a cached decoding step: the queries are the last Tq
   positions, query i at position Tk - Tq + i). Careful: is_causal=True builds its mask from the
   top left, tril(ones(Tq, Tk)), so with Tq < Tk query i would see keys 0 .. i only, and one new
   token (Tq = 1) would see key 0 alone. Use is_causal only when Tq == Tk; otherwise pass the mask
   yourself. SDPA's boolean attn_mask is True where a query MAY look (the opposite of masked_fill's).

2. A vocabulary padded to a multiple of 64. GPUs multiply matrices in tiles; 50257 = 29 · 1733
   is awkward, 50304 = 786 · 64 is not. The padded GPT has vocab_size rounded up, and its forward
   slices the logits back to the real vocabulary, so its loss and its samples are exactly those of
   the unpadded model: the padding ids get no probability and no gradient.

       padded_vocab(50257) = 50304        logits[..., :config.vocab_size]

3. bfloat16 autocast. Inside torch.autocast(device_type, dtype=torch.bfloat16), matmuls run in
   bfloat16 (float32's 8 exponent bits, 8 bits of mantissa: no overflow, no loss scaling) while
   the parameters, the softmax and the loss stay float32.

4. torch.compile. Traces the model once and generates fused kernels for it. The first call is slow
   (it compiles); a machine without a working compiler fails only then, so compiled() makes one
   trial forward and keeps the plain model when that fails. The compiled model shares the model's
   parameters; its state_dict() keys carry the prefix "_orig_mod." (13 strips it on loading).
"""

import contextlib
import dataclasses
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from .gpt import GPT


def flash_attention(q, k, v):
    """q: (B, H, Tq, D); k, v: (B, H, Tk, D), Tq <= Tk. Returns (B, H, Tq, D), equal to causal_attention's."""
    ### BEGIN SOLUTION
    ### TODO: Tq == Tk: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    ### TODO: Tq < Tk: the queries are the last Tq positions; is_causal would align its mask top-left, so pass
    ### TODO: attn_mask = the boolean (Tq, Tk) mask of what each query may see (True = may see), as in 03
    Tq, Tk = q.size(-2), k.size(-2)
    if Tq > Tk:
        raise ValueError(f"flash_attention needs at least as many keys as queries, got Tq={Tq} > Tk={Tk}.")
    if Tq == Tk:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    visible = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril(diagonal=Tk - Tq)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=visible)
    ### END SOLUTION


def padded_vocab(vocab_size, multiple=64):
    """vocab_size rounded up to a multiple of `multiple` (a multiple already stays)."""
    ### BEGIN SOLUTION
    ### TODO: the smallest multiple of `multiple` that is >= vocab_size
    return (vocab_size + multiple - 1) // multiple * multiple
    ### END SOLUTION


class PaddedGPT(nn.Module):
    """A GPT with padded_vocab(config.vocab_size, multiple) rows in wte and lm_head, seen from outside as an
    unpadded GPT: .config is the real config and forward returns logits (B, T, config.vocab_size)."""

    def __init__(self, config, multiple=64):
        super().__init__()
        ### BEGIN SOLUTION
        ### TODO: self.config = config (the real one); self.gpt = your GPT built from a copy of the config whose
        ### TODO: vocab_size is padded_vocab(config.vocab_size, multiple) (dataclasses.replace makes the copy)
        self.config = config
        padded = dataclasses.replace(config, vocab_size=padded_vocab(config.vocab_size, multiple))
        self.gpt = GPT(padded)
        ### END SOLUTION

    def forward(self, idx, targets=None, kv_cache=None):
        """idx: (B, T). Returns (logits (B, T, config.vocab_size), loss or None), as GPT.forward does."""
        ### BEGIN SOLUTION
        ### TODO: logits of the inner GPT (pass kv_cache on), sliced to the real config.vocab_size;
        ### TODO: the loss on the sliced logits: cross_entropy(..., ignore_index=-1), as in 06
        logits, _ = self.gpt(idx, kv_cache=kv_cache)
        logits = logits[..., : self.config.vocab_size]
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss
        ### END SOLUTION


def padded_gpt(config, multiple=64):
    """A PaddedGPT: your GPT with a vocabulary padded to a multiple of `multiple`, behaving as an unpadded one."""
    return PaddedGPT(config, multiple)


def autocast(device):
    """The bfloat16 autocast context for a CUDA or CPU device (a string or torch.device), a null context elsewhere."""
    ### BEGIN SOLUTION
    ### TODO: the device's type: torch.device(device).type ("cuda:1" -> "cuda")
    ### TODO: "cuda" or "cpu": torch.autocast(device_type=..., dtype=torch.bfloat16); else contextlib.nullcontext()
    device_type = torch.device(device).type
    if device_type in ("cuda", "cpu"):
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
    ### END SOLUTION


def compiled(model):
    """torch.compile(model) if one trial forward of it succeeds; else model itself, after printing why (one line)."""
    ### BEGIN SOLUTION
    ### TODO: try: torch.compile(model), then one forward of it without gradients on a (1, 1) batch of token 0
    ### TODO: (on the device of the model's parameters); return the compiled model
    ### TODO: except Exception: print one line saying why to sys.stderr and return model unchanged
    device = next(model.parameters()).device
    try:
        fast = torch.compile(model)
        with torch.no_grad():
            fast(torch.zeros(1, 1, dtype=torch.long, device=device))
    except Exception as error:  # noqa: BLE001 - whatever stops the compiler, the plain model still works
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        print(f"torch.compile is not available here, training without it ({reason})", file=sys.stderr)
        return model
    return fast
    ### END SOLUTION
