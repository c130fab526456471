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
"""

import torch
import torch.nn.functional as F


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


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None):
    """idx: (B, T) int64 prompt. Returns (B, T + max_new_tokens), in eval mode, restoring the model's mode."""
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
