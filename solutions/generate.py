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
    ### BEGIN SOLUTION
    ### TODO: temperature 0 -> argmax; else logits / temperature, then top-k, then top-p, as -inf
    ### TODO: draw from softmax with torch.multinomial(probs, 1, generator=generator)
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    vocab_size = logits.size(-1)
    if top_k is not None and 0 < top_k < vocab_size:
        kth_largest = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = F.softmax(logits, dim=-1).sort(dim=-1, descending=True)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        drop_sorted = mass_before >= top_p  # p is already reached without this token
        drop_sorted[:, 0] = False  # the most likely token always stays
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)
    ### END SOLUTION


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None, use_cache=False):
    """idx: (B, T) int64 prompt. Returns (B, T + max_new_tokens), in eval mode, restoring the model's mode.

    use_cache (exercise 10): keep the keys and values in a KVCache instead of recomputing the whole
    context at every step; the tokens are the same."""
    if use_cache:
        ### BEGIN SOLUTION 10
        ### TODO: the loop below with a KVCache, feeding the model only the tokens it has not cached yet
        ### TODO: (eval mode, no_grad, the mode restored); one KVCache(n_layer, B, block_size, n_kv_head, head_dim)
        ### TODO: in the dtype and on the device of the model's parameters; the prompt (its last block_size
        ### TODO: tokens) first, then the newest token at each step; when the cache is full (pos == block_size),
        ### TODO: reset it and feed the last block_size tokens
        config, param = model.config, next(model.parameters())
        cache = KVCache(config.n_layer, idx.size(0), config.block_size, config.n_kv_head, config.head_dim,
                        dtype=param.dtype, device=param.device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for _ in range(max_new_tokens):
                    if cache.pos == 0:  # the prompt: prefill
                        logits, _ = model(idx[:, -config.block_size :], kv_cache=cache)
                    elif cache.pos < config.block_size:  # one new token
                        logits, _ = model(idx[:, -1:], kv_cache=cache)
                    else:  # full: start again from the last block_size tokens, as cropping does
                        cache.reset()
                        logits, _ = model(idx[:, -config.block_size :], kv_cache=cache)
                    next_token = sample_next_token(logits[:, -1, :], temperature, top_k, top_p, generator)
                    idx = torch.cat((idx, next_token), dim=1)
        finally:
            model.train(was_training)
        return idx
        ### END SOLUTION
    ### BEGIN SOLUTION
    ### TODO: eval mode, no_grad; repeat: crop idx to the last block_size tokens, logits of the last position,
    ### TODO: sample_next_token, append; restore the model's mode
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for _ in range(max_new_tokens):
                context = idx[:, -model.config.block_size :]
                logits, _ = model(context)
                next_token = sample_next_token(logits[:, -1, :], temperature, top_k, top_p, generator)
                idx = torch.cat((idx, next_token), dim=1)
    finally:
        model.train(was_training)
    return idx
    ### END SOLUTION
