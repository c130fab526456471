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
    ### BEGIN SOLUTION
    ### TODO: scores = q @ kᵀ / sqrt(D): (B, H, Tq, Tk); raise ValueError if Tq > Tk
    ### TODO: query i (position Tk - Tq + i) sees keys 0 .. Tk - Tq + i: set the others to -inf
    ### TODO: softmax over the keys (the last dim), dropout_p, then @ v: (B, H, Tq, D)
    Tq, Tk = q.size(-2), k.size(-2)
    if Tq > Tk:
        raise ValueError(f"causal_attention needs at least as many keys as queries, got Tq={Tq} > Tk={Tk}.")
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    visible = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril(diagonal=Tk - Tq)
    scores = scores.masked_fill(~visible, float("-inf"))
    weights = F.softmax(scores, dim=-1)
    weights = F.dropout(weights, p=dropout_p, training=dropout_p > 0)
    return weights @ v
    ### END SOLUTION


def repeat_kv(x, n_rep):
    """(B, Hkv, T, D) -> (B, Hkv * n_rep, T, D): kv head j becomes heads j*n_rep .. (j+1)*n_rep - 1."""
    ### BEGIN SOLUTION
    ### TODO: repeat each kv head n_rep times, the copies side by side (head j -> j*n_rep .. (j+1)*n_rep - 1)
    if n_rep == 1:  # multi-head: nothing to repeat (and with a KV cache, no copy of every cached position)
        return x
    return torch.repeat_interleave(x, n_rep, dim=1)
    ### END SOLUTION


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with n_kv_head key/value heads (GQA/MQA when fewer)."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.layer_idx = layer_idx
        ### BEGIN SOLUTION
        ### TODO: c_attn = Linear(n_embd, (n_head + 2 * n_kv_head) * head_dim) and c_proj = Linear(n_embd, n_embd)
        ### TODO: both with bias=config.bias; keep what forward needs (heads, head_dim, qk_norm, eps, dropout)
        self.n_head = config.n_head
        self.n_kv_head = config.n_kv_head
        self.head_dim = config.head_dim
        self.qk_norm = config.qk_norm
        self.norm_eps = config.norm_eps
        self.dropout = config.dropout
        qkv_dim = (config.n_head + 2 * config.n_kv_head) * config.head_dim
        self.c_attn = nn.Linear(config.n_embd, qkv_dim, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        ### END SOLUTION

    def forward(self, x, rotary=None, kv_cache=None):
        """x: (B, T, C); rotary: (cos, sin) for x's positions, or None. Returns (B, T, C).

        kv_cache (exercise 10): a KVCache holding this layer's earlier keys and values, or None."""
        ### BEGIN SOLUTION
        ### TODO: B, T, C = x.shape; split c_attn(x) into q, k, v (in that order) and their heads: q (B, n_head, T, D),
        ### TODO: k and v (B, n_kv_head, T, D); rotary (if given) on q and k, then rms_norm (no weight) if qk_norm
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(
            [self.n_head * self.head_dim, self.n_kv_head * self.head_dim, self.n_kv_head * self.head_dim], dim=-1
        )
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, Hkv, T, D)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if rotary is not None:
            cos, sin = rotary
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if self.qk_norm:
            q, k = rms_norm(q, eps=self.norm_eps), rms_norm(k, eps=self.norm_eps)
        ### END SOLUTION
        if kv_cache is not None:
            ### BEGIN SOLUTION 10
            ### TODO: store the new (rotated) k, v in kv_cache for this layer (self.layer_idx) and go on with what
            ### TODO: it returns: k and v of every cached position, (B, n_kv_head, pos + T, D), for the T queries
            k, v = kv_cache.update(self.layer_idx, k, v)
            ### END SOLUTION
        ### BEGIN SOLUTION
        ### TODO: repeat_kv, causal_attention, heads back side by side (B, T, C), c_proj
        n_rep = self.n_head // self.n_kv_head
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        y = causal_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))
        ### END SOLUTION
