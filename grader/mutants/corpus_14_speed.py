"""Mistakes learners make in 14 speed."""

from . import Mutant

IS_CAUSAL = ("    if Tq == Tk:\n"
             "        return F.scaled_dot_product_attention(q, k, v, is_causal=True)\n")
MASKED = "return F.scaled_dot_product_attention(q, k, v, attn_mask=visible)"
OFFSET = "tril(diagonal=Tk - Tq)"
ROUND_UP = "return (vocab_size + multiple - 1) // multiple * multiple"
INNER = "padded = dataclasses.replace(config, vocab_size=padded_vocab(config.vocab_size, multiple))"
SLICE = "        logits = logits[..., : self.config.vocab_size]\n"
AUTOCAST_TYPES = 'if device_type in ("cuda", "cpu"):'
TRIAL = ("        with torch.no_grad():\n"
         "            fast(torch.zeros(1, 1, dtype=torch.long, device=device))\n")

MUTANTS = [
    Mutant(
        "14-is-causal-with-cache", "speed",
        "flash_attention always passes is_causal=True, which aligns the mask top-left when Tq < Tk (the classic bug: "
        "a cached decoding step sees only key 0).",
        ((IS_CAUSAL, "    return F.scaled_dot_product_attention(q, k, v, is_causal=True)\n"),),
        ("top-left",),
    ),
    Mutant(
        "14-mask-without-offset", "speed",
        "The explicit mask for Tq < Tk is tril() with diagonal 0, as if the queries were the first positions.",
        ((OFFSET, "tril()"),),
        ("top-left",),
    ),
    Mutant(
        "14-no-causal-mask", "speed",
        "flash_attention passes neither is_causal nor a mask: every query sees every key.",
        ((IS_CAUSAL, "    if Tq == Tk:\n        return F.scaled_dot_product_attention(q, k, v)\n"),
         (MASKED, "return F.scaled_dot_product_attention(q, k, v)")),
        ("no causal mask",),
    ),
    Mutant(
        "14-mask-inverted", "speed",
        "The boolean mask passed to SDPA is True where a query may NOT look (masked_fill's convention).",
        ((MASKED, MASKED.replace("attn_mask=visible", "attn_mask=~visible")),),
        ("inverted",),
    ),
    Mutant(
        "14-mask-float-zero-one", "speed",
        "The mask is passed as 0/1 floats, which SDPA adds to the scores instead of masking.",
        ((MASKED, MASKED.replace("attn_mask=visible", "attn_mask=visible.float()")),),
        ("0/1 float mask",),
    ),
    Mutant(
        "14-flash-handwritten", "speed",
        "flash_attention computes softmax(q kᵀ / sqrt(D)) v by hand instead of calling SDPA.",
        ((IS_CAUSAL, ""),
         (MASKED, "scores = q @ k.transpose(-2, -1) / q.size(-1) ** 0.5\n"
                  "    return scores.masked_fill(~visible, float(\"-inf\")).softmax(dim=-1) @ v")),
        ("does not call F.scaled_dot_product_attention",),
    ),
    Mutant(
        "14-padded-vocab-rounds-down", "speed",
        "padded_vocab rounds down to a multiple.",
        ((ROUND_UP, "return vocab_size // multiple * multiple"),),
        ("rounds down",),
    ),
    Mutant(
        "14-padded-vocab-extra-multiple", "speed",
        "padded_vocab is (vocab_size // multiple + 1) * multiple: an exact multiple gets one more.",
        ((ROUND_UP, "return (vocab_size // multiple + 1) * multiple"),),
        ("one multiple too many",),
    ),
    Mutant(
        "14-padded-gpt-ignores-multiple", "speed",
        "PaddedGPT pads to padded_vocab's default multiple, ignoring its own multiple argument.",
        ((INNER, INNER.replace("config.vocab_size, multiple)", "config.vocab_size)")),),
        ("ignores its multiple",),
    ),
    Mutant(
        "14-padded-gpt-not-padded", "speed",
        "PaddedGPT builds the GPT from the real config, so nothing is padded.",
        (("self.gpt = GPT(padded)", "self.gpt = GPT(config)"),),
        ("not padded",),
    ),
    Mutant(
        "14-logits-not-sliced", "speed",
        "PaddedGPT returns all padded_vocab logit columns (and the loss over them).",
        ((SLICE, ""),),
        ("not sliced",),
        also=(("loss", "padded vocabulary"),),
    ),
    Mutant(
        "14-loss-over-padded-vocab", "speed",
        "PaddedGPT slices the logits but returns the inner GPT's loss, taken over the padded vocabulary.",
        (("logits, _ = self.gpt(idx, kv_cache=kv_cache)", "logits, loss = self.gpt(idx, targets, kv_cache=kv_cache)"),
         ("        loss = None\n        if targets is not None:\n", "        if False:\n")),
        ("loss", "padded vocabulary"),
    ),
    Mutant(
        "14-config-is-padded", "speed",
        "PaddedGPT keeps the padded config as .config (so it also slices to the padded size: nothing).",
        (("        self.config = config\n        " + INNER + "\n",
          "        " + INNER + "\n        self.config = padded\n"),),
        (".config is the padded config",),
        also=(("not sliced",), ("loss", "padded vocabulary")),
    ),
    Mutant(
        "14-autocast-float16", "speed",
        "autocast uses float16 instead of bfloat16.",
        (("return torch.autocast(device_type=device_type, dtype=torch.bfloat16)",
          "return torch.autocast(device_type=device_type, dtype=torch.float16)"),),
        ("uses float16",),
    ),
    Mutant(
        "14-autocast-on-every-device", "speed",
        "autocast returns torch.autocast for every device, MPS included.",
        ((AUTOCAST_TYPES, "if True:"),),
        ("only cuda and cpu",),
    ),
    Mutant(
        "14-autocast-cuda-only", "speed",
        "autocast gives the CPU a null context (autocast only on CUDA).",
        ((AUTOCAST_TYPES, 'if device_type == "cuda":'),),
        ("null context on cpu",),
    ),
    Mutant(
        "14-autocast-compares-strings", "speed",
        "autocast compares str(device) with 'cuda', so 'cuda:0' gets a null context.",
        (("device_type = torch.device(device).type", "device_type = str(device)"),),
        ("torch.device(device).type",),
    ),
    Mutant(
        "14-compiled-no-trial-forward", "speed",
        "compiled() returns torch.compile(model) without a trial forward, so a compiler that fails at the first "
        "call is never noticed.",
        ((TRIAL, ""),),
        ("no trial forward",),
    ),
    Mutant(
        "14-compiled-ignores-failed-trial", "speed",
        "compiled() prints the trial forward's error but returns the compiled model anyway.",
        (("        return model\n    return fast", "    return fast"),),
        ("although its trial forward failed",),
    ),
    Mutant(
        "14-compiled-never-compiles", "speed",
        "compiled() returns the model itself even when compiling works.",
        (("    return fast\n", "    return model\n"),),
        ("returns the model itself",),
    ),
    Mutant(
        "14-compiled-compile-outside-try", "speed",
        "compiled() calls torch.compile outside the try, so an error from torch.compile itself escapes.",
        (("    try:\n        fast = torch.compile(model)\n", "    fast = torch.compile(model)\n    try:\n"),),
        ("torch.compile's own exception",),
    ),
    Mutant(
        "14-compiled-silent-fallback", "speed",
        "compiled() falls back to the model without saying why.",
        (('        print(f"torch.compile is not available here, training without it ({reason})", file=sys.stderr)\n',
          ""),),
        ("silently",),
    ),
]

MUTANTS.append(Mutant(
    "14-kv-cache-not-passed-on", "speed",
    "PaddedGPT.forward does not pass kv_cache on to the GPT inside.",
    (("logits, _ = self.gpt(idx, kv_cache=kv_cache)", "logits, _ = self.gpt(idx)"),),
    ("kv_cache is not passed on",),
))
