"""04 mlp, alternative implementation A (einsum_style): activation chosen once, chunk for swiglu."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_tanh(x):
    """GELU, tanh approximation. Same shape and dtype as x."""
    inner = _SQRT_2_OVER_PI * (x + 0.044715 * x.pow(3))
    return 0.5 * x * (1.0 + torch.tanh(inner))


def relu_squared(x):
    """relu(x)². Same shape and dtype as x."""
    return torch.relu(x).square()


def _swiglu(h):
    gate, up = h.chunk(2, dim=-1)
    return F.silu(gate) * up


class MLP(nn.Module):
    """c_fc -> activation (config.mlp) -> c_proj, with bias=config.bias."""

    def __init__(self, config):
        super().__init__()
        hidden = config.mlp_hidden
        fc_out = 2 * hidden if config.mlp == "swiglu" else hidden
        self.c_fc = nn.Linear(config.n_embd, fc_out, bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.kind = config.mlp
        self._act = {"gelu": gelu_tanh, "relu2": relu_squared, "swiglu": _swiglu}[config.mlp]

    def forward(self, x):
        """x: (B, T, C) -> (B, T, C)."""
        return self.dropout(self.c_proj(self._act(self.c_fc(x))))
