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
    # TODO: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x³)))
    raise NotImplementedError("04 mlp: gelu_tanh — 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x³)))")


def relu_squared(x):
    """relu(x)². Same shape and dtype as x."""
    # TODO: relu(x) squared
    raise NotImplementedError("04 mlp: relu_squared — relu(x) squared")


class MLP(nn.Module):
    """c_fc -> activation (config.mlp) -> c_proj, with bias=config.bias."""

    def __init__(self, config):
        super().__init__()
        # TODO: c_fc = Linear(n_embd, hidden) (2 * hidden for swiglu) and c_proj = Linear(hidden, n_embd)
        #       with hidden = config.mlp_hidden and bias = config.bias; remember config.mlp for forward
        raise NotImplementedError("04 mlp: MLP.__init__ — c_fc = Linear(n_embd, hidden) (2 * hidden for swiglu) and c_proj = Linear(hidden, n_embd)")

    def forward(self, x):
        """x: (B, T, C) -> (B, T, C)."""
        # TODO: h = c_fc(x); gelu_tanh, relu_squared, or silu(gate) * up with (gate, up) = the halves of h
        #       return c_proj(h)
        raise NotImplementedError("04 mlp: MLP.forward — h = c_fc(x); gelu_tanh, relu_squared, or silu(gate) * up with (gate, up) = the halves of h")
