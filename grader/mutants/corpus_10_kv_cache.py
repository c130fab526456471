"""Mistakes learners make in 10 kv_cache: in KVCache (kv_cache.py) and in the cache paths of
attention.py, gpt.py and generate.py. Every mutant is judged by 10's tests (tests=("10",))."""

from . import Mutant

T10 = ("10",)
ROPE = ("            cos, sin = rotary_cos_sin(pos + T, self.config.head_dim, self.config.rope_base, device=idx.device)\n"
        "            rotary = (cos[pos:], sin[pos:])\n")
WPE = "x = x + self.transformer.wpe(torch.arange(pos, pos + T, device=idx.device))"
ADVANCE = "            kv_cache.advance(T)\n"
BLOCKS = "            x = block(x, rotary=rotary, kv_cache=kv_cache)\n"
UPDATE_LINE = "            k, v = kv_cache.update(self.layer_idx, k, v)\n"
ROTATE = "        if rotary is not None:\n            cos, sin = rotary\n"
CHECK = ("        if end > self.max_len:\n"
         "            raise ValueError(f\"The cache holds {self.pos} positions and {k.size(2)} more do not fit: \"\n"
         "                             f\"{self.pos} + {k.size(2)} = {end} > max_len = {self.max_len}.\")\n")
RETURN = "        return self.k[layer_idx][:, :, :end], self.v[layer_idx][:, :, :end]\n"
NEW_CACHE = ("        cache = KVCache(config.n_layer, idx.size(0), config.block_size, config.n_kv_head, config.head_dim,\n"
             "                        dtype=param.dtype, device=param.device)\n")
STEP = "                    elif cache.pos < config.block_size:  # one new token\n" \
       "                        logits, _ = model(idx[:, -1:], kv_cache=cache)\n"

MUTANTS = [
    Mutant(
        "10-rope-not-offset", "gpt",
        "with a cache, the rotary tables are built for positions 0 .. T-1 instead of pos .. pos+T-1.",
        ((ROPE, "            rotary = rotary_cos_sin(T, self.config.head_dim, self.config.rope_base, "
                "device=idx.device)\n"),),
        ("rope is not offset",), T10,
    ),
    Mutant(
        "10-learned-positions-not-offset", "gpt",
        "with a cache, wpe gets positions 0 .. T-1 for every chunk instead of pos .. pos+T-1.",
        ((WPE, "x = x + self.transformer.wpe(torch.arange(T, device=idx.device))"),),
        ("position embeddings are not offset",), T10,
    ),
    Mutant(
        "10-advance-per-layer", "gpt",
        "the GPT advances the cache after every block instead of once after the last.",
        ((ADVANCE, "            pass\n"),
         (BLOCKS, BLOCKS + "            if kv_cache is not None:\n                kv_cache.advance(T)\n")),
        ("every layer",), T10,
    ),
    Mutant(
        "10-advance-in-attention", "attention",
        "attention advances the cache after its update, so pos moves in every layer (and once more in the GPT).",
        ((UPDATE_LINE, UPDATE_LINE + "            kv_cache.advance(x.size(1))\n"),),
        ("every layer",), T10,
    ),
    Mutant(
        "10-cache-before-rope", "attention",
        "the new keys are written to the cache before rope (and qk-norm), so the cache holds unrotated keys.",
        ((UPDATE_LINE, "            pass\n"),
         (ROTATE, "        if kv_cache is not None:\n" + UPDATE_LINE + ROTATE)),
        ("cached before rope",), T10,
    ),
    Mutant(
        "10-mask-for-equal-lengths", "attention",
        "the causal mask is the plain lower triangle, aligned top-left, which is right only when Tq == Tk.",
        (("tril(diagonal=Tk - Tq)", "tril()"),),
        ("as if tq == tk",), T10,
    ),
    Mutant(
        "10-update-result-ignored", "attention",
        "the cache is updated but attention goes on with the new tokens' keys and values only.",
        ((UPDATE_LINE, "            kv_cache.update(self.layer_idx, k, v)\n"),),
        ("only the new tokens",), T10,
    ),
    Mutant(
        "10-no-block-size-check", "gpt",
        "GPT.forward with a cache never checks pos + T against block_size.",
        (("            if pos + T > self.config.block_size:\n", "            if False:\n"),),
        ("does not check pos + t",), T10,
    ),
    Mutant(
        "10-no-reset-before-reprefill", "generate",
        "past block_size, generate re-prefills the last block_size tokens without resetting the cache.",
        (("                        cache.reset()\n", ""),),
        ("not reset",), T10,
    ),
    Mutant(
        "10-reset-keeps-pos", "kv_cache",
        "reset() zeroes the buffers but leaves pos where it was.",
        (("        ### TODO: pos = 0\n        self.pos = 0\n",
          "        ### TODO: pos = 0\n        for buffer in self.k + self.v:\n            buffer.zero_()\n"),),
        ("not reset",), T10,
    ),
    Mutant(
        "10-cache-with-n-head", "generate",
        "generate builds the cache with n_head key/value heads instead of n_kv_head.",
        ((NEW_CACHE, NEW_CACHE.replace("config.n_kv_head", "config.n_head")),),
        ("n_kv_head", "key/value heads"), T10,
    ),
    Mutant(
        "10-cache-reused-between-calls", "generate",
        "generate keeps its cache on the model and reuses it, unreset, in the next call (the previous batch's "
        "keys and values).",
        ((NEW_CACHE, "        cache = getattr(model, \"_generate_cache\", None)\n"
                     "        if cache is None:\n"
                     "            cache = KVCache(config.n_layer, idx.size(0), config.block_size, config.n_kv_head,\n"
                     "                            config.head_dim, dtype=param.dtype, device=param.device)\n"
                     "            model._generate_cache = cache\n"),),
        ("previous call",), T10,
    ),
    Mutant(
        "10-cache-in-float32", "generate",
        "generate builds the cache in the default float32 whatever the model's dtype.",
        ((NEW_CACHE, NEW_CACHE.replace("dtype=param.dtype, ", "")),),
        ("parameters' dtype",), T10,
    ),
    Mutant(
        "10-refeeds-the-context", "generate",
        "after the prefill, generate keeps feeding the whole context instead of the newest token.",
        ((STEP, STEP.replace("idx[:, -1:]", "idx[:, -config.block_size :]")),),
        ("newest token",), T10,
    ),
    Mutant(
        "10-cached-generate-with-gradients", "generate",
        "the cached loop runs without torch.no_grad().",
        (("\n            with torch.no_grad():", "\n            if True:"),),
        ("gradients",), T10,
    ),
    Mutant(
        "10-update-returns-whole-buffer", "kv_cache",
        "update returns the whole buffers, stale positions past pos + T included.",
        ((RETURN, "        return self.k[layer_idx], self.v[layer_idx]\n"),),
        ("whole buffer",), T10,
    ),
    Mutant(
        "10-update-moves-pos", "kv_cache",
        "update moves pos itself (and the GPT advances it too).",
        ((RETURN, "        self.pos = end\n" + RETURN),),
        ("update moves pos",), T10, (("every layer",),),
    ),
    Mutant(
        "10-layers-share-one-buffer", "kv_cache",
        "the buffers are made with [torch.zeros(...)] * n_layer: one tensor for every layer.",
        (("        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]\n"
          "        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]\n",
          "        self.k = [torch.zeros(shape, dtype=dtype, device=device)] * n_layer\n"
          "        self.v = [torch.zeros(shape, dtype=dtype, device=device)] * n_layer\n"),),
        ("share one buffer",), T10,
    ),
    Mutant(
        "10-update-concatenates", "kv_cache",
        "update concatenates the new keys onto the cached ones, a new tensor every step.",
        (("        self.k[layer_idx][:, :, self.pos:end] = k\n        self.v[layer_idx][:, :, self.pos:end] = v\n"
          + RETURN,
          "        self.k[layer_idx] = torch.cat((self.k[layer_idx][:, :, :self.pos], k.to(self.k[layer_idx].dtype)), "
          "dim=2)\n"
          "        self.v[layer_idx] = torch.cat((self.v[layer_idx][:, :, :self.pos], v.to(self.v[layer_idx].dtype)), "
          "dim=2)\n"
          "        return self.k[layer_idx], self.v[layer_idx]\n"),),
        ("reallocates",), T10,
    ),
    Mutant(
        "10-no-max-len-check", "kv_cache",
        "update writes without checking that pos + T fits in max_len.",
        ((CHECK, ""),),
        ("does not raise valueerror",), T10,
    ),
]
