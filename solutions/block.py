"""05 block: one transformer block, pre-norm with residual connections.

    x = x + attn(ln_1(x))
    x = x + mlp(ln_2(x))

Each sub-layer reads a normalised copy of the residual stream and *adds* its
output back. The stream itself is never normalised inside the block (that is
post-norm, the original 2017 transformer, which trains worse when deep); the
final norm comes once, after the last block (transformer.ln_f in GPT).
"""

import torch.nn as nn

from .attention import CausalSelfAttention
from .mlp import MLP
from .norms import make_norm


class Block(nn.Module):
    """ln_1, attn, ln_2, mlp. ln_* are make_norm(config): LayerNorm or RMSNorm."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        ### BEGIN SOLUTION
        ### TODO: ln_1 = make_norm(config), attn = CausalSelfAttention(config, layer_idx), ln_2, mlp = MLP(config)
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = make_norm(config)
        self.mlp = MLP(config)
        ### END SOLUTION

    def forward(self, x, rotary=None, kv_cache=None):
        """x: (B, T, C) -> (B, T, C); rotary and kv_cache go to attn."""
        ### BEGIN SOLUTION
        ### TODO: x + attn(ln_1(x), rotary, kv_cache), then + mlp(ln_2(x))
        x = x + self.attn(self.ln_1(x), rotary=rotary, kv_cache=kv_cache)
        x = x + self.mlp(self.ln_2(x))
        return x
        ### END SOLUTION
