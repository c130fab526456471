"""03 attention, alternative implementation B (plain_loops).

One head at a time: scores with matmul, a boolean mask from comparing
positions, masked_fill, a softmax written out (exp of scores minus their max,
in float32), then the weighted sum. repeat_kv with repeat_interleave. In the
module, q and k are rms-normalised (qk_norm) *before* rope: the two commute.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .norms import rms_norm
from .rotary import apply_rotary


def _softmax_last(scores):
    """softmax over the last dim, by hand, in at least float32."""
    s = scores.to(torch.promote_types(scores.dtype, torch.float32))
    s = s - s.max(dim=-1, keepdim=True).values
    e = torch.exp(s)
    return (e / e.sum(dim=-1, keepdim=True)).to(scores.dtype)


def causal_attention(q, k, v, dropout_p=0.0):
    """q: (B, H, Tq, D); k, v: (B, H, Tk, D), Tq <= Tk. Returns (B, H, Tq, D).

    dropout_p drops attention weights while training (0 everywhere in the tests).
    """
    B, H, Tq, D = q.shape
    Tk = k.shape[2]
    if Tq > Tk:
        raise ValueError(f"causal_attention got Tq={Tq} queries for Tk={Tk} keys; Tq must be <= Tk.")
    query_pos = torch.arange(Tq, device=q.device) + (Tk - Tq)
    key_pos = torch.arange(Tk, device=q.device)
    hidden = key_pos[None, :] > query_pos[:, None]  # (Tq, Tk): True where the key is in the future
    outputs = []
    for h in range(H):
        scores = q[:, h] @ k[:, h].transpose(-2, -1) / math.sqrt(D)  # (B, Tq, Tk)
        scores = scores.masked_fill(hidden, float("-inf"))
        weights = _softmax_last(scores)
        if dropout_p > 0.0:
            weights = F.dropout(weights, p=dropout_p, training=True)
        outputs.append(weights @ v[:, h])  # (B, Tq, D)
    return torch.stack(outputs, dim=1)


def repeat_kv(x, n_rep):
    """(B, Hkv, T, D) -> (B, Hkv * n_rep, T, D): kv head j becomes heads j*n_rep .. (j+1)*n_rep - 1."""
    return torch.repeat_interleave(x, n_rep, dim=1)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with n_kv_head key/value heads (GQA/MQA when fewer)."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.layer_idx = layer_idx
        self.config = config
        self.c_attn = nn.Linear(config.n_embd, (config.n_head + 2 * config.n_kv_head) * config.head_dim,
                                bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)

    def forward(self, x, rotary=None, kv_cache=None):
        """x: (B, T, C); rotary: (cos, sin) for x's positions, or None. Returns (B, T, C)."""
        cfg = self.config
        B, T, C = x.shape
        H, Hkv, D = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        qkv = self.c_attn(x)
        q = qkv[..., : H * D]
        k = qkv[..., H * D: (H + Hkv) * D]
        v = qkv[..., (H + Hkv) * D:]
        q = q.reshape(B, T, H, D).permute(0, 2, 1, 3)
        k = k.reshape(B, T, Hkv, D).permute(0, 2, 1, 3)
        v = v.reshape(B, T, Hkv, D).permute(0, 2, 1, 3)
        if cfg.qk_norm:  # before rope: a parameter-free rms_norm commutes with a rotation
            q = rms_norm(q, eps=cfg.norm_eps)
            k = rms_norm(k, eps=cfg.norm_eps)
        if rotary is not None:
            cos, sin = rotary
            q = apply_rotary(q, cos, sin)
            k = apply_rotary(k, cos, sin)
        if kv_cache is not None:
            keys, values = kv_cache.update(self.layer_idx, k, v)
            k, v = keys, values
        k = repeat_kv(k, H // Hkv)
        v = repeat_kv(v, H // Hkv)
        p = cfg.dropout if self.training else 0.0
        y = causal_attention(q, k, v, dropout_p=p)  # (B, H, T, D)
        y = y.permute(0, 2, 1, 3).reshape(B, T, C)
        y = self.c_proj(y)
        return F.dropout(y, p=cfg.dropout, training=self.training)
