"""01 norms, alternative implementation A (einsum_style): var(unbiased=False), rsqrt, affine in float32."""

import torch
import torch.nn as nn


def _compute_dtype(x):
    # at least float32; float64 stays float64
    return torch.promote_types(x.dtype, torch.float32)


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """x: (..., C); weight, bias: (C,) or None. Returns x's shape and dtype."""
    dt = _compute_dtype(x)
    xf = x.to(dt)
    mu = xf.mean(dim=-1, keepdim=True)
    var = xf.var(dim=-1, unbiased=False, keepdim=True)
    y = (xf - mu) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight.to(dt)
    if bias is not None:
        y = y + bias.to(dt)
    return y.to(x.dtype)


def rms_norm(x, weight=None, eps=1e-6):
    """x: (..., C); weight: (C,) or None. Returns x's shape and dtype."""
    dt = _compute_dtype(x)
    xf = x.to(dt)
    ms = torch.einsum("...c,...c->...", xf, xf).unsqueeze(-1) / xf.shape[-1]
    y = xf * torch.rsqrt(ms + eps)
    if weight is not None:
        y = y * weight.to(dt)
    return y.to(x.dtype)


class LayerNorm(nn.Module):
    """LayerNorm with a learnable weight (ones) and, if bias, a learnable bias (zeros)."""

    def __init__(self, ndim, bias=True, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        if bias:
            self.bias = nn.Parameter(torch.zeros(ndim))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return layer_norm(x, self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    """RMSNorm with a learnable weight (ones)."""

    def __init__(self, ndim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


def make_norm(config):
    """The norm a config asks for, over n_embd channels (given: used by Block and GPT)."""
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd, eps=config.norm_eps)
    return LayerNorm(config.n_embd, bias=config.bias, eps=config.norm_eps)
