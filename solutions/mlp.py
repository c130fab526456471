"""04 mlp: the position-wise feed-forward network and its activations.

    MLP(x) = c_proj(act(c_fc(x)))       c_fc: C -> hidden, c_proj: hidden -> C

The activations:

    gelu_tanh(x)    = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x³)))   GPT-2's GELU
    relu_squared(x) = relu(x)²                                         nanochat, modded-nanoGPT
    swiglu:           c_fc gives 2*hidden channels, split as (gate, up); act = silu(gate) * up   (Llama)

gelu_tanh is the tanh approximation of x * Phi(x); PyTorch's default GELU is
the exact erf form, which differs by up to about 5e-4 (near |x| = 2.7). GPT-2
was trained with the approximation, so reproducing its logits needs it.

Off limits here: F.gelu and nn.GELU.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def gelu_tanh(x):
    """GELU, tanh approximation. Same shape and dtype as x."""
    ### BEGIN SOLUTION
    ### TODO: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x³)))
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    ### END SOLUTION


def relu_squared(x):
    """relu(x)². Same shape and dtype as x."""
    ### BEGIN SOLUTION
    ### TODO: relu(x) squared
    return F.relu(x).square()
    ### END SOLUTION


class MLP(nn.Module):
    """c_fc -> activation (config.mlp) -> c_proj, with bias=config.bias."""

    def __init__(self, config):
        super().__init__()
        ### BEGIN SOLUTION
        ### TODO: c_fc = Linear(n_embd, hidden) (2 * hidden for swiglu) and c_proj = Linear(hidden, n_embd)
        ### TODO: with hidden = config.mlp_hidden and bias = config.bias; remember config.mlp for forward
        self.kind = config.mlp
        fc_out = 2 * config.mlp_hidden if config.mlp == "swiglu" else config.mlp_hidden
        self.c_fc = nn.Linear(config.n_embd, fc_out, bias=config.bias)
        self.c_proj = nn.Linear(config.mlp_hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)
        ### END SOLUTION

    def forward(self, x):
        """x: (B, T, C) -> (B, T, C)."""
        ### BEGIN SOLUTION
        ### TODO: h = c_fc(x); gelu_tanh, relu_squared, or silu(gate) * up with (gate, up) = the halves of h
        ### TODO: return c_proj(h)
        h = self.c_fc(x)
        if self.kind == "swiglu":
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        elif self.kind == "relu2":
            h = relu_squared(h)
        else:
            h = gelu_tanh(h)
        return self.dropout(self.c_proj(h))
        ### END SOLUTION
