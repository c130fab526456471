"""04 mlp, alternative implementation B (plain_loops): formulas written out, if/elif in forward."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def gelu_tanh(x):
    """GELU, tanh approximation. Same shape and dtype as x."""
    c = math.sqrt(2.0 / math.pi)
    return x * 0.5 * (1.0 + torch.tanh(c * (x + 0.044715 * x * x * x)))


def relu_squared(x):
    """relu(x)². Same shape and dtype as x."""
    r = torch.clamp(x, min=0)
    return r * r


class MLP(nn.Module):
    """c_fc -> activation (config.mlp) -> c_proj, with bias=config.bias."""

    def __init__(self, config):
        super().__init__()
        self.mlp = config.mlp
        self.hidden = config.mlp_hidden
        self.p_drop = config.dropout
        if config.mlp == "swiglu":
            self.c_fc = nn.Linear(config.n_embd, 2 * config.mlp_hidden, bias=config.bias)
        else:
            self.c_fc = nn.Linear(config.n_embd, config.mlp_hidden, bias=config.bias)
        self.c_proj = nn.Linear(config.mlp_hidden, config.n_embd, bias=config.bias)

    def forward(self, x):
        """x: (B, T, C) -> (B, T, C)."""
        h = self.c_fc(x)
        if self.mlp == "gelu":
            h = gelu_tanh(h)
        elif self.mlp == "relu2":
            h = relu_squared(h)
        elif self.mlp == "swiglu":
            gate = h[..., : self.hidden]
            up = h[..., self.hidden:]
            h = gate * torch.sigmoid(gate) * up
        else:
            raise ValueError(f"unknown mlp {self.mlp!r}")
        out = self.c_proj(h)
        return F.dropout(out, p=self.p_drop, training=self.training)
