"""10 kv_cache, alternative implementation A (einsum_style).

One stacked tensor for the keys of all layers and one for the values, (n_layer, B, H, max_len, D):
cache.k[layer] is a view into it. update copies with narrow(...).copy_() and returns narrowed views;
the position counter is a plain int.
"""

import torch


class KVCache:
    """Preallocated keys and values for n_layer layers; pos positions are filled."""

    def __init__(self, n_layer, batch_size, max_len, n_kv_head, head_dim, dtype=torch.float32, device=None):
        self.k = torch.zeros(n_layer, batch_size, n_kv_head, max_len, head_dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)
        self.pos = 0

    def update(self, layer_idx, k, v):
        """Write k, v (B, H, T, D) at positions pos .. pos + T - 1; return views of positions 0 .. pos + T - 1."""
        T, capacity = k.shape[2], self.k.shape[3]
        if self.pos + T > capacity:
            raise ValueError(f"KVCache overflow: pos {self.pos} + T {T} = {self.pos + T} exceeds max_len {capacity}.")
        self.k[layer_idx].narrow(2, self.pos, T).copy_(k)
        self.v[layer_idx].narrow(2, self.pos, T).copy_(v)
        return self.k[layer_idx].narrow(2, 0, self.pos + T), self.v[layer_idx].narrow(2, 0, self.pos + T)

    def advance(self, T):
        self.pos = self.pos + int(T)

    def reset(self):
        self.pos = 0
