"""09 generate, alternative implementation A (einsum_style): top-k via sort, top-p via cumulative
sums and searchsorted, and inverse-CDF sampling with one uniform draw per row."""

import torch

from .kv_cache import KVCache


def sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """logits: (B, V). Returns (B, 1) int64 token ids. Never modifies logits."""
    if temperature == 0:
        return torch.argmax(logits, dim=-1, keepdim=True)
    V = logits.shape[-1]
    scaled = logits / temperature  # a new tensor
    if top_k is not None and 0 < top_k < V:
        sorted_desc = torch.sort(scaled, dim=-1, descending=True).values
        kth = sorted_desc[..., top_k - 1:top_k]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled.double(), dim=-1)
    if top_p is not None and top_p < 1:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        cum = torch.cumsum(sorted_probs, dim=-1)
        target = torch.full((cum.shape[0], 1), float(top_p), dtype=cum.dtype, device=cum.device)
        n_keep = (torch.searchsorted(cum, target) + 1).clamp(max=V)  # the token that crosses p stays
        ranks = torch.arange(V, device=probs.device).expand_as(sorted_probs)
        sorted_probs = torch.where(ranks < n_keep, sorted_probs, torch.zeros_like(sorted_probs))
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    cdf = torch.cumsum(probs, dim=-1)
    u = torch.rand((probs.shape[0], 1), generator=generator, device=probs.device, dtype=probs.dtype)
    u = u * cdf[..., -1:]
    choice = torch.searchsorted(cdf, u, right=True).clamp(max=V - 1)
    return choice.to(torch.int64)


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None, use_cache=False):
    """idx: (B, T) int64 prompt. Returns (B, T + max_new_tokens), in eval mode, restoring the model's mode."""
    if use_cache:
        return _generate_cached(model, idx, max_new_tokens, temperature, top_k, top_p, generator)
    was_training = model.training
    model.eval()
    block_size = model.config.block_size
    try:
        with torch.no_grad():
            for _ in range(max_new_tokens):
                context = idx if idx.shape[1] <= block_size else idx[:, -block_size:]
                logits, _ = model(context)
                nxt = sample_next_token(logits[:, -1, :], temperature, top_k, top_p, generator)
                idx = torch.cat((idx, nxt), dim=1)
    finally:
        model.train(was_training)
    return idx


def _generate_cached(model, idx, max_new_tokens, temperature, top_k, top_p, generator):
    """generate with a KVCache: `pending` holds the tokens the cache has not seen yet."""
    cfg = model.config
    p = next(model.parameters())
    cache = KVCache(cfg.n_layer, idx.shape[0], cfg.block_size, cfg.n_kv_head, cfg.head_dim, dtype=p.dtype,
                    device=p.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            pending = idx[:, -cfg.block_size:]
            for _ in range(max_new_tokens):
                if cache.pos + pending.shape[1] > cfg.block_size:  # no room: start again from the last window
                    cache.reset()
                    pending = idx[:, -cfg.block_size:]
                logits, _ = model(pending, kv_cache=cache)
                nxt = sample_next_token(logits[:, -1, :], temperature, top_k, top_p, generator)
                idx = torch.cat((idx, nxt), dim=1)
                pending = nxt
    finally:
        model.train(was_training)
    return idx
