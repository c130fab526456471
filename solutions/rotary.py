"""02 rotary: rotary position embeddings (RoPE), in Hugging Face Llama's layout.

Instead of adding a position vector to the input, RoPE rotates q and k. Split
the head_dim channels into two halves x1, x2 (channel i pairs with channel
i + head_dim/2) and rotate each pair by the angle  pos * theta_i, where

    theta_i = base^(-2i / head_dim),   i = 0 .. head_dim/2 - 1

    rotary_cos_sin: angles (T, head_dim/2), repeated twice along the last dim -> cos, sin (T, head_dim)
    rotate_half(x) = cat(-x2, x1)
    apply_rotary(x) = x * cos + rotate_half(x) * sin

A rotation keeps the length of every vector, and the dot product of a query
at position m with a key at position n depends only on m - n: attention sees
relative positions.
"""

import torch


def rotary_cos_sin(seq_len, head_dim, base=10000.0, device=None):
    """cos and sin tables, each (seq_len, head_dim) float32, for positions 0 .. seq_len - 1."""
    ### BEGIN SOLUTION
    ### TODO: theta_i = base^(-2i/head_dim) for i < head_dim/2; angles = outer(positions, theta) (T, head_dim/2)
    ### TODO: repeat the angles twice along the last dim (T, head_dim); return their cos and sin
    exponents = torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim
    inv_freq = 1.0 / (base**exponents)  # (head_dim/2,)
    positions = torch.arange(seq_len, device=device, dtype=torch.float32)
    angles = torch.outer(positions, inv_freq)  # (T, head_dim/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, head_dim)
    return angles.cos(), angles.sin()
    ### END SOLUTION


def rotate_half(x):
    """(..., D) -> (..., D): the halves x1 = x[..., :D/2], x2 = x[..., D/2:] become cat(-x2, x1)."""
    ### BEGIN SOLUTION
    ### TODO: split the last dim into halves x1, x2; return cat(-x2, x1)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)
    ### END SOLUTION


def apply_rotary(x, cos, sin):
    """x: (B, H, T, head_dim); cos, sin: (T, head_dim). Returns x rotated, same shape and dtype."""
    ### BEGIN SOLUTION
    ### TODO: x * cos + rotate_half(x) * sin, computed in x's dtype
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + rotate_half(x) * sin
    ### END SOLUTION
