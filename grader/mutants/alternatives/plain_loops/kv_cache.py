"""10 kv_cache, alternative implementation B (plain_loops).

A list of per-layer buffers made with torch.empty (positions past pos hold garbage and are never
read); update writes the new positions one time step at a time and slices the result.
"""

import torch


class KVCache:
    """Preallocated keys and values for n_layer layers; pos positions are filled."""

    def __init__(self, n_layer, batch_size, max_len, n_kv_head, head_dim, dtype=torch.float32, device=None):
        self.max_len = max_len
        self.k, self.v = [], []
        for _ in range(n_layer):
            self.k.append(torch.empty(batch_size, n_kv_head, max_len, head_dim, dtype=dtype, device=device))
            self.v.append(torch.empty(batch_size, n_kv_head, max_len, head_dim, dtype=dtype, device=device))
        self.pos = 0

    def update(self, layer_idx, k, v):
        """Write k, v (B, H, T, D) at positions pos .. pos + T - 1; return views of positions 0 .. pos + T - 1."""
        T = k.size(2)
        if self.pos + T > self.max_len:
            raise ValueError(f"cannot cache {T} more positions: {self.pos} are cached and max_len is {self.max_len}.")
        keys, values = self.k[layer_idx], self.v[layer_idx]
        for t in range(T):
            keys[:, :, self.pos + t, :] = k[:, :, t, :]
            values[:, :, self.pos + t, :] = v[:, :, t, :]
        return keys[:, :, : self.pos + T, :], values[:, :, : self.pos + T, :]

    def advance(self, T):
        self.pos += T

    def reset(self):
        self.pos = 0
