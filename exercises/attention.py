"""03 attention: causal self-attention, multi-head, grouped-query and multi-query.

Each query looks at the keys at its own position and before, and takes the
softmax-weighted mean of their values:

    attention(q, k, v) = softmax(q kᵀ / sqrt(D) + mask) v

q: (B, H, Tq, D) and k, v: (B, H, Tk, D), with Tq <= Tk. The queries are the
*last* Tq positions: query i sits at position Tk - Tq + i and may see keys
0 .. Tk - Tq + i. The mask puts -inf on every later key, so softmax gives it
weight 0. Without the 1/sqrt(D) scale the scores grow with D and the softmax
saturates.

Grouped-query attention keeps fewer key/value heads (n_kv_head) than query
heads (n_head): kv head j serves the n_rep = n_head / n_kv_head consecutive
query heads j*n_rep .. (j+1)*n_rep - 1. n_kv_head = 1 is multi-query.

The module: c_attn projects x (B, T, C) to q, k, v in one matmul, in that
order along the last dim; heads are split out to (B, H, T, D), attended, put
back side by side to (B, T, C), and projected by c_proj.

With a KV cache (exercise 10), the new keys and values join those of the earlier
positions after rope, and the T new queries attend to all of them.

Off limits here: F.scaled_dot_product_attention (it comes back in exercise 14).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .norms import rms_norm
from .rotary import apply_rotary


def causal_attention(q, k, v, dropout_p=0.0):
    """q: (B, H, Tq, D); k, v: (B, H, Tk, D), Tq <= Tk. Returns (B, H, Tq, D).

    dropout_p drops attention weights while training (0 everywhere in the tests).
    """
    # TODO: scores = q @ kᵀ / sqrt(D): (B, H, Tq, Tk); raise ValueError if Tq > Tk
    #       query i (position Tk - Tq + i) sees keys 0 .. Tk - Tq + i: set the others to -inf
    #       softmax over the keys (the last dim), dropout_p, then @ v: (B, H, Tq, D)
    raise NotImplementedError("03 attention: causal_attention — scores = q @ kᵀ / sqrt(D): (B, H, Tq, Tk); raise ValueError if Tq > Tk")


def repeat_kv(x, n_rep):
    """(B, Hkv, T, D) -> (B, Hkv * n_rep, T, D): kv head j becomes heads j*n_rep .. (j+1)*n_rep - 1."""
    # TODO: repeat each kv head n_rep times, the copies side by side (head j -> j*n_rep .. (j+1)*n_rep - 1)
    raise NotImplementedError("03 attention: repeat_kv — repeat each kv head n_rep times, the copies side by side (head j -> j*n_rep .. (j+1)*n_rep - 1)")


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with n_kv_head key/value heads (GQA/MQA when fewer)."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.layer_idx = layer_idx
        # TODO: c_attn = Linear(n_embd, (n_head + 2 * n_kv_head) * head_dim) and c_proj = Linear(n_embd, n_embd)
        #       both with bias=config.bias; keep what forward needs (heads, head_dim, qk_norm, eps, dropout)
        raise NotImplementedError("03 attention: CausalSelfAttention.__init__ — c_attn = Linear(n_embd, (n_head + 2 * n_kv_head) * head_dim) and c_proj = Linear(n_embd, n_embd)")

    def forward(self, x, rotary=None, kv_cache=None):
        """x: (B, T, C); rotary: (cos, sin) for x's positions, or None. Returns (B, T, C).

        kv_cache (exercise 10): a KVCache holding this layer's earlier keys and values, or None."""
        # TODO: B, T, C = x.shape; split c_attn(x) into q, k, v (in that order) and their heads: q (B, n_head, T, D),
        #       k and v (B, n_kv_head, T, D); rotary (if given) on q and k, then rms_norm (no weight) if qk_norm
        raise NotImplementedError("03 attention: CausalSelfAttention.forward — B, T, C = x.shape; split c_attn(x) into q, k, v (in that order) and their heads: q (B, n_head, T, D)")
        if kv_cache is not None:
            # TODO: store the new (rotated) k, v in kv_cache for this layer (self.layer_idx) and go on with what
            #       it returns: k and v of every cached position, (B, n_kv_head, pos + T, D), for the T queries
            raise NotImplementedError("10 kv_cache: CausalSelfAttention.forward — store the new (rotated) k, v in kv_cache for this layer (self.layer_idx) and go on with what")
        # TODO: repeat_kv, causal_attention, heads back side by side (B, T, C), c_proj
        raise NotImplementedError("03 attention: CausalSelfAttention.forward — repeat_kv, causal_attention, heads back side by side (B, T, C), c_proj")
