"""09 generate: sampling the next token, and generating text one token at a time.

The model gives logits (B, V) for the next token. Turning them into a choice:

    temperature 0:  the most likely token (greedy, deterministic)
    temperature T:  softmax(logits / T); T < 1 sharpens, T > 1 flattens
    top-k:          keep the k largest logits, set the rest to -inf
                    (top_k None, 0 or >= V keeps every token)
    top-p (nucleus): sort by probability; keep the smallest set of most likely
                    tokens whose probabilities add up to at least p (the token
                    that crosses p stays in), drop the rest (top_p None or >= 1
                    keeps every token); the probabilities are those left after
                    the temperature and top-k

then draw one token from what is left, with the generator given (so that a
seeded generator repeats its draws). generate() feeds the prompt, samples a
token, appends it, and repeats, cropping the context to the last block_size
tokens the model can see.

With use_cache=True (exercise 10) the model keeps the keys and values of the
tokens it has seen in a KVCache: the prompt goes through once, then each step
feeds only the newest token, and the output is the same, many times faster.
"""

import torch
import torch.nn.functional as F

from .kv_cache import KVCache


def sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """logits: (B, V). Returns (B, 1) int64 token ids. Never modifies logits."""
    # TODO: temperature 0 -> argmax; else logits / temperature, then top-k, then top-p, as -inf
    #       draw from softmax with torch.multinomial(probs, 1, generator=generator)
    raise NotImplementedError("09 generate: sample_next_token — temperature 0 -> argmax; else logits / temperature, then top-k, then top-p, as -inf")


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None, use_cache=False):
    """idx: (B, T) int64 prompt. Returns (B, T + max_new_tokens), in eval mode, restoring the model's mode.

    use_cache (exercise 10): keep the keys and values in a KVCache instead of recomputing the whole
    context at every step; the tokens are the same."""
    if use_cache:
        # TODO: the loop below with a KVCache, feeding the model only the tokens it has not cached yet
        #       (eval mode, no_grad, the mode restored); one KVCache(n_layer, B, block_size, n_kv_head, head_dim)
        #       in the dtype and on the device of the model's parameters; the prompt (its last block_size
        #       tokens) first, then the newest token at each step; when the cache is full (pos == block_size),
        #       reset it and feed the last block_size tokens
        raise NotImplementedError("10 kv_cache: generate — the loop below with a KVCache, feeding the model only the tokens it has not cached yet")
    # TODO: eval mode, no_grad; repeat: crop idx to the last block_size tokens, logits of the last position,
    #       sample_next_token, append; restore the model's mode
    raise NotImplementedError("09 generate: generate — eval mode, no_grad; repeat: crop idx to the last block_size tokens, logits of the last position")
