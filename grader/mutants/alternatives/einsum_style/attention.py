"""03 attention, alternative implementation A (einsum_style).

einsum for the scores and the weighted sum, an additive float mask built with
torch.triu and -inf, repeat_kv via expand + reshape, and a module that does
its head handling with einsum directly on the projection weights (grouped
query heads attend their kv head without materialising the repeats).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .norms import rms_norm
from .rotary import apply_rotary


def _additive_causal_mask(tq, tk, dtype, device):
    """(Tq, Tk) with 0 where query i (position tk - tq + i) may look and -inf elsewhere."""
    full = torch.full((tq, tk), float("-inf"), dtype=dtype, device=device)
    return torch.triu(full, diagonal=tk - tq + 1)


def causal_attention(q, k, v, dropout_p=0.0):
    """q: (B, H, Tq, D); k, v: (B, H, Tk, D), Tq <= Tk. Returns (B, H, Tq, D).

    dropout_p drops attention weights while training (0 everywhere in the tests).
    """
    tq, tk, d = q.shape[-2], k.shape[-2], q.shape[-1]
    if tq > tk:
        raise ValueError(f"causal_attention: {tq} queries but only {tk} keys; the queries must be the last Tq of the keys.")
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) * (1.0 / math.sqrt(d))
    scores = scores + _additive_causal_mask(tq, tk, scores.dtype, scores.device)
    weights = torch.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p, training=True)
    return torch.einsum("bhqk,bhkd->bhqd", weights, v)


def repeat_kv(x, n_rep):
    """(B, Hkv, T, D) -> (B, Hkv * n_rep, T, D): kv head j becomes heads j*n_rep .. (j+1)*n_rep - 1."""
    if n_rep == 1:
        return x
    b, hkv, t, d = x.shape
    return x[:, :, None, :, :].expand(b, hkv, n_rep, t, d).reshape(b, hkv * n_rep, t, d)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with n_kv_head key/value heads (GQA/MQA when fewer)."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_head = config.n_head
        self.n_kv_head = config.n_kv_head
        self.head_dim = config.head_dim
        self.qk_norm = config.qk_norm
        self.eps = config.norm_eps
        self.dropout = config.dropout
        qkv_out = (config.n_head + 2 * config.n_kv_head) * config.head_dim
        self.c_attn = nn.Linear(config.n_embd, qkv_out, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def _heads(self, x, start, n):
        """Project x (B, T, C) with rows start .. start + n*D of c_attn straight into heads (B, n, T, D)."""
        d = self.head_dim
        w = self.c_attn.weight[start:start + n * d].view(n, d, -1)
        out = torch.einsum("btc,hdc->bhtd", x, w)
        if self.c_attn.bias is not None:
            out = out + self.c_attn.bias[start:start + n * d].view(1, n, 1, d)
        return out

    def forward(self, x, rotary=None, kv_cache=None):
        """x: (B, T, C); rotary: (cos, sin) for x's positions, or None. Returns (B, T, C)."""
        B, T, C = x.shape
        H, G, D = self.n_head, self.n_kv_head, self.head_dim
        q = self._heads(x, 0, H)
        k = self._heads(x, H * D, G)
        v = self._heads(x, (H + G) * D, G)
        if rotary is not None:
            cos, sin = rotary
            q = apply_rotary(q, cos, sin)
            k = apply_rotary(k, cos, sin)
        if self.qk_norm:
            q = rms_norm(q, None, self.eps)
            k = rms_norm(k, None, self.eps)
        if kv_cache is not None:  # every cached position, this forward's included
            k, v = kv_cache.update(self.layer_idx, k, v)
        # grouped: query head g*R + r attends kv head g
        R = H // G
        qg = q.reshape(B, G, R, T, D)
        scores = torch.einsum("bgrqd,bgkd->bgrqk", qg, k) / math.sqrt(D)
        scores = scores + _additive_causal_mask(T, k.shape[2], scores.dtype, scores.device)
        att = scores.softmax(dim=-1)
        if self.training and self.dropout > 0.0:
            att = F.dropout(att, p=self.dropout, training=True)
        y = torch.einsum("bgrqk,bgkd->bgrqd", att, v).reshape(B, H, T, D)
        # heads side by side then c_proj, in one einsum over (head, channel-in-head)
        w = self.c_proj.weight.view(C, H, D)
        out = torch.einsum("bhtd,ohd->bto", y, w)
        if self.c_proj.bias is not None:
            out = out + self.c_proj.bias
        return self.resid_dropout(out)
