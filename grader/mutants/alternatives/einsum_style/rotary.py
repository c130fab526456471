"""02 rotary, alternative implementation A (einsum_style): einsum outer product, stack+flatten rotate_half."""

import torch


def rotary_cos_sin(seq_len, head_dim, base=10000.0, device=None):
    """cos and sin tables, each (seq_len, head_dim) float32, for positions 0 .. seq_len - 1."""
    exponents = torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim
    inv_freq = torch.pow(torch.tensor(float(base), device=device, dtype=torch.float32), -exponents)
    positions = torch.arange(seq_len, device=device, dtype=torch.float32)
    angles = torch.einsum("t,f->tf", positions, inv_freq)  # (T, head_dim/2)
    angles = angles.repeat(1, 2)  # (T, head_dim): [a_0 .. a_{d/2-1}, a_0 .. a_{d/2-1}]
    return angles.cos(), angles.sin()


def rotate_half(x):
    """(..., D) -> (..., D): the halves x1 = x[..., :D/2], x2 = x[..., D/2:] become cat(-x2, x1)."""
    half = x.shape[-1] // 2
    x1 = x.narrow(-1, 0, half)
    x2 = x.narrow(-1, half, half)
    return torch.stack((-x2, x1), dim=-2).flatten(-2)


def apply_rotary(x, cos, sin):
    """x: (B, H, T, head_dim); cos, sin: (T, head_dim). Returns x rotated, same shape and dtype."""
    c = cos.to(x.dtype)
    s = sin.to(x.dtype)
    return x * c + rotate_half(x) * s
