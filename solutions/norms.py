"""01 norms: LayerNorm (GPT-2) and RMSNorm (Llama, nanochat).

Both normalise each vector of C channels on its own (the last dim of x):

    layer_norm(x) = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias
    rms_norm(x)   =  x / sqrt(mean(x²) + eps) * weight

var is the *biased* variance, mean((x - mean(x))²): divide by C, not C - 1.
LayerNorm centres and scales; RMSNorm only scales, which is cheaper and works
as well in practice.

Precision: compute in float32 (or float64 if x is float64) and return x's
dtype. A float16 x with |x| > 256 has squares above float16's maximum 65504,
so squaring it in float16 gives inf.

Off limits here: F.layer_norm, F.rms_norm, nn.LayerNorm, nn.RMSNorm.
"""

import torch
import torch.nn as nn


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """x: (..., C); weight, bias: (C,) or None. Returns x's shape and dtype."""
    ### BEGIN SOLUTION
    ### TODO: in float32 (float64 stays float64): mean and biased variance over the last dim; (x - mean) / sqrt(var + eps)
    ### TODO: times weight, plus bias, when given; return in x's dtype
    dtype = x.dtype
    x = x.to(torch.promote_types(dtype, torch.float32))
    mean = x.mean(dim=-1, keepdim=True)
    var = (x - mean).pow(2).mean(dim=-1, keepdim=True)
    y = (x - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y.to(dtype)
    ### END SOLUTION


def rms_norm(x, weight=None, eps=1e-6):
    """x: (..., C); weight: (C,) or None. Returns x's shape and dtype."""
    ### BEGIN SOLUTION
    ### TODO: in float32 (float64 stays float64): x / sqrt(mean(x²) + eps) over the last dim
    ### TODO: times weight when given; return in x's dtype
    dtype = x.dtype
    x = x.to(torch.promote_types(dtype, torch.float32))
    y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    if weight is not None:
        y = y * weight
    return y.to(dtype)
    ### END SOLUTION


class LayerNorm(nn.Module):
    """LayerNorm with a learnable weight (ones) and, if bias, a learnable bias (zeros)."""

    def __init__(self, ndim, bias=True, eps=1e-5):
        super().__init__()
        ### BEGIN SOLUTION
        ### TODO: self.eps = eps; self.weight = Parameter of ones (ndim,); self.bias = zeros, or None when not bias
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        ### TODO: layer_norm(x, ...) with this module's weight, bias and eps
        return layer_norm(x, self.weight, self.bias, self.eps)
        ### END SOLUTION


class RMSNorm(nn.Module):
    """RMSNorm with a learnable weight (ones)."""

    def __init__(self, ndim, eps=1e-6):
        super().__init__()
        ### BEGIN SOLUTION
        ### TODO: self.eps = eps; self.weight = Parameter of ones (ndim,)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        ### TODO: rms_norm(x, ...) with this module's weight and eps
        return rms_norm(x, self.weight, self.eps)
        ### END SOLUTION


def make_norm(config):
    """The norm a config asks for, over n_embd channels (given: used by Block and GPT)."""
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd, eps=config.norm_eps)
    return LayerNorm(config.n_embd, bias=config.bias, eps=config.norm_eps)
