"""05 block, alternative implementation A (einsum_style)."""

import torch.nn as nn

from .attention import CausalSelfAttention
from .mlp import MLP
from .norms import make_norm


class Block(nn.Module):
    """ln_1, attn, ln_2, mlp. ln_* are make_norm(config): LayerNorm or RMSNorm."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = make_norm(config)
        self.mlp = MLP(config)

    def forward(self, x, rotary=None, kv_cache=None):
        """x: (B, T, C) -> (B, T, C); rotary and kv_cache go to attn."""
        attn_out = self.attn(self.ln_1(x), rotary=rotary, kv_cache=kv_cache)
        x = x + attn_out
        mlp_out = self.mlp(self.ln_2(x))
        return x + mlp_out
