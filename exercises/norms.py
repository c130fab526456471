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
    # TODO: in float32 (float64 stays float64): mean and biased variance over the last dim; (x - mean) / sqrt(var + eps)
    #       times weight, plus bias, when given; return in x's dtype
    raise NotImplementedError("01 norms: layer_norm — in float32 (float64 stays float64): mean and biased variance over the last dim; (x - mean) / sqrt(var + eps)")


def rms_norm(x, weight=None, eps=1e-6):
    """x: (..., C); weight: (C,) or None. Returns x's shape and dtype."""
    # TODO: in float32 (float64 stays float64): x / sqrt(mean(x²) + eps) over the last dim
    #       times weight when given; return in x's dtype
    raise NotImplementedError("01 norms: rms_norm — in float32 (float64 stays float64): x / sqrt(mean(x²) + eps) over the last dim")


class LayerNorm(nn.Module):
    """LayerNorm with a learnable weight (ones) and, if bias, a learnable bias (zeros)."""

    def __init__(self, ndim, bias=True, eps=1e-5):
        super().__init__()
        # TODO: self.eps = eps; self.weight = Parameter of ones (ndim,); self.bias = zeros, or None when not bias
        raise NotImplementedError("01 norms: LayerNorm.__init__ — self.eps = eps; self.weight = Parameter of ones (ndim,); self.bias = zeros, or None when not bias")

    def forward(self, x):
        # TODO: layer_norm(x, ...) with this module's weight, bias and eps
        raise NotImplementedError("01 norms: LayerNorm.forward — layer_norm(x, ...) with this module's weight, bias and eps")


class RMSNorm(nn.Module):
    """RMSNorm with a learnable weight (ones)."""

    def __init__(self, ndim, eps=1e-6):
        super().__init__()
        # TODO: self.eps = eps; self.weight = Parameter of ones (ndim,)
        raise NotImplementedError("01 norms: RMSNorm.__init__ — self.eps = eps; self.weight = Parameter of ones (ndim,)")

    def forward(self, x):
        # TODO: rms_norm(x, ...) with this module's weight and eps
        raise NotImplementedError("01 norms: RMSNorm.forward — rms_norm(x, ...) with this module's weight and eps")


def make_norm(config):
    """The norm a config asks for, over n_embd channels (given: used by Block and GPT)."""
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd, eps=config.norm_eps)
    return LayerNorm(config.n_embd, bias=config.bias, eps=config.norm_eps)
