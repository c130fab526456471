"""01 norms, alternative implementation B (plain_loops): sums divided by C written out,
sqrt and division; RMSNorm applies its weight after casting back, as Hugging Face Llama does."""

import torch
import torch.nn as nn


def _upcast(x):
    if x.dtype == torch.float64:
        return x
    return x.float()


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """x: (..., C); weight, bias: (C,) or None. Returns x's shape and dtype."""
    h = _upcast(x)
    C = h.shape[-1]
    mean = h.sum(dim=-1, keepdim=True) / C
    centred = h - mean
    var = (centred * centred).sum(dim=-1, keepdim=True) / C  # biased: divide by C
    out = centred / torch.sqrt(var + eps)
    if weight is not None:
        out = out * weight.to(out.dtype)
    if bias is not None:
        out = out + bias.to(out.dtype)
    return out.to(x.dtype)


def rms_norm(x, weight=None, eps=1e-6):
    """x: (..., C); weight: (C,) or None. Returns x's shape and dtype."""
    h = _upcast(x)
    mean_sq = (h * h).mean(dim=-1, keepdim=True)
    out = (h / torch.sqrt(mean_sq + eps)).to(x.dtype)
    if weight is not None:
        out = (out * weight.to(x.dtype)).to(x.dtype)
    return out


class LayerNorm(nn.Module):
    """LayerNorm with a learnable weight (ones) and, if bias, a learnable bias (zeros)."""

    def __init__(self, ndim, bias=True, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x):
        return layer_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


class RMSNorm(nn.Module):
    """RMSNorm with a learnable weight (ones)."""

    def __init__(self, ndim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, weight=self.weight, eps=self.eps)


def make_norm(config):
    """The norm a config asks for, over n_embd channels (given: used by Block and GPT)."""
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd, eps=config.norm_eps)
    return LayerNorm(config.n_embd, bias=config.bias, eps=config.norm_eps)
