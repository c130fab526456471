"""09 generate, alternative implementation B (plain_loops): torch.topk with a scatter for top-k,
top-p as a mask on sorted probabilities (drop a token once the mass before it reaches p),
renormalised probabilities and torch.multinomial; generate fills a preallocated tensor."""

import torch
import torch.nn.functional as F

from .kv_cache import KVCache


def sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """logits: (B, V). Returns (B, 1) int64 token ids. Never modifies logits."""
    if temperature == 0:
        return logits.argmax(dim=-1).unsqueeze(-1).long()
    V = logits.size(-1)
    z = logits.float() / temperature if logits.dtype != torch.float64 else logits / temperature
    if top_k and top_k < V:
        vals, ids = torch.topk(z, top_k, dim=-1)
        kept = torch.full_like(z, float("-inf"))
        z = kept.scatter(-1, ids, vals)
    probs = F.softmax(z, dim=-1)
    if top_p is not None and top_p < 1.0:
        sp, si = torch.sort(probs, dim=-1, descending=True)
        csum = torch.cumsum(sp, dim=-1)
        before = torch.cat([torch.zeros_like(csum[..., :1]), csum[..., :-1]], dim=-1)  # mass of the better tokens
        drop = before >= top_p
        drop[..., 0] = False  # the most likely token always stays
        sp = sp.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, si, sp)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None, use_cache=False):
    """idx: (B, T) int64 prompt. Returns (B, T + max_new_tokens), in eval mode, restoring the model's mode."""
    previous_mode = model.training
    model.train(False)
    B, T = idx.shape
    out = torch.empty((B, T + max_new_tokens), dtype=idx.dtype, device=idx.device)
    out[:, :T] = idx
    cfg = model.config
    bs = cfg.block_size
    cache = None
    if use_cache:
        weight = next(iter(model.parameters()))
        cache = KVCache(cfg.n_layer, B, bs, cfg.n_kv_head, cfg.head_dim, dtype=weight.dtype, device=weight.device)
    base = max(0, T - bs)  # out[:, base] sits at the cache's position 0
    done = base  # out[:, base:done] is in the cache
    with torch.no_grad():
        for t in range(T, T + max_new_tokens):
            if cache is None:
                logits, _ = model(out[:, max(0, t - bs):t])
            else:
                if t - base > bs:  # the window has moved past the cache: fill a new one (as good as reset())
                    cache = KVCache(cfg.n_layer, B, bs, cfg.n_kv_head, cfg.head_dim, dtype=weight.dtype,
                                    device=weight.device)
                    base = done = t - bs
                logits, _ = model(out[:, done:t], kv_cache=cache)
                done = t
            out[:, t] = sample_next_token(logits[:, -1, :], temperature=temperature, top_k=top_k,
                                          top_p=top_p, generator=generator)[:, 0]
    model.train(previous_mode)
    return out
