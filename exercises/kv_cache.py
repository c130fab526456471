"""10 kv_cache: keep the keys and values of past tokens, so that generating a token costs one token's work.

Without a cache, generate() runs the whole context through the model for every
new token, although every earlier position's keys and values are the same as at
the step before (the model is causal: a position never sees later ones). The
cache keeps them: per layer, preallocated buffers

    cache.k[layer], cache.v[layer]      (batch_size, n_kv_head, max_len, head_dim)

of which positions 0 .. pos - 1 are filled (pos: how many positions are cached).
A forward of T new tokens with the cache then:

    GPT.forward       token i of idx sits at position pos + i: wpe and the rotary
                      tables are offset by pos; pos + T > block_size is a ValueError
    attention         q, k, v of the T new tokens; rope (and qk-norm) on q and k;
                      k_all, v_all = cache.update(layer, k, v): the new keys and values
                      written at pos .. pos + T - 1, returned with all earlier ones
                      (B, n_kv_head, pos + T, D); the T queries attend to all of them
                      (causal_attention with Tq = T <= Tk = pos + T puts them last)
    GPT.forward       cache.advance(T), once, after the last block

Generation: prefill the prompt once (one forward of all its tokens), then feed
one token per step. The cache holds at most block_size positions; once the
sequence is longer, each step resets it and re-prefills the last block_size
tokens, which is exactly what cropping the context computes without a cache.

The code of this exercise lives in four files: this class, and the places in
attention.py (CausalSelfAttention.forward), gpt.py (GPT.forward) and generate.py
(generate with use_cache=True) whose TODOs are labelled "10 kv_cache".
`python -m grader swap 10` puts the reference's KVCache in for this file only;
those places in your attention.py, gpt.py and generate.py stay yours.
"""

import torch


class KVCache:
    """Preallocated keys and values for n_layer layers; pos positions are filled."""

    def __init__(self, n_layer, batch_size, max_len, n_kv_head, head_dim, dtype=torch.float32, device=None):
        # TODO: self.k and self.v: one zero buffer (batch_size, n_kv_head, max_len, head_dim) per layer,
        #       in dtype on device, allocated here once; self.pos = 0 (remember max_len for update)
        raise NotImplementedError("10 kv_cache: KVCache.__init__ — self.k and self.v: one zero buffer (batch_size, n_kv_head, max_len, head_dim) per layer")

    def update(self, layer_idx, k, v):
        """k, v: (B, n_kv_head, T, head_dim), the new positions pos .. pos + T - 1 of layer layer_idx.

        Writes them into the buffers (in place, in the cache's dtype) and returns (k_all, v_all):
        views of positions 0 .. pos + T - 1. Does not move pos. ValueError if pos + T > max_len."""
        # TODO: ValueError naming pos, T and max_len if pos + T > max_len, before writing anything
        #       write k and v into positions pos .. pos + T - 1 of this layer's buffers (a slice assignment)
        #       return the views of positions 0 .. pos + T - 1; leave pos alone (advance moves it)
        raise NotImplementedError("10 kv_cache: KVCache.update — ValueError naming pos, T and max_len if pos + T > max_len, before writing anything")

    def advance(self, T):
        """T more positions are cached (every layer has written them): pos += T."""
        # TODO: pos += T
        raise NotImplementedError("10 kv_cache: KVCache.advance — pos += T")

    def reset(self):
        """Empty the cache for a new sequence: pos = 0 (the old values past pos are never read)."""
        # TODO: pos = 0
        raise NotImplementedError("10 kv_cache: KVCache.reset — pos = 0")
