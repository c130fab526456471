"""Mistakes learners make in 03 attention."""

from . import Mutant

SCORES = "scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))"
MASK = "visible = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril(diagonal=Tk - Tq)"
SPLIT = (
    "        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)\n"
    "        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, Hkv, T, D)\n"
    "        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)\n"
)
ROPE = "q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)"
QK_NORM = "q, k = rms_norm(q, eps=self.norm_eps), rms_norm(k, eps=self.norm_eps)"

MUTANTS = [
    Mutant(
        "03-no-sqrt-d-scale", "attention",
        "The scores q kᵀ are not divided by sqrt(D).",
        ((SCORES, "scores = q @ k.transpose(-2, -1)"),),
        ("not scaled", "sqrt(D)"),
    ),
    Mutant(
        "03-scale-one-over-d", "attention",
        "The scores are divided by D instead of sqrt(D).",
        ((SCORES, "scores = (q @ k.transpose(-2, -1)) / q.size(-1)"),),
        ("divided by D",),
    ),
    Mutant(
        "03-mask-upper-triangle", "attention",
        "The mask keeps the upper triangle (triu): each query sees itself and the future.",
        ((MASK, MASK.replace(".tril(", ".triu(")),),
        ("future",),
        # with one query at the last position there is no future to see: test_causal_attention_is_causal[1-4]
        # names the other half of this mistake, a query that does not see the past
        also=(("does not see the key at the earlier position",),),
    ),
    Mutant(
        "03-mask-no-offset", "attention",
        "The mask is tril() with diagonal 0, ignoring that with Tq < Tk the queries are the last positions.",
        ((MASK, MASK.replace("diagonal=Tk - Tq", "diagonal=0")),),
        ("Tk - Tq",),
    ),
    Mutant(
        "03-mask-fill-zero", "attention",
        "Masked scores are set to 0 instead of -inf.",
        (('scores = scores.masked_fill(~visible, float("-inf"))', "scores = scores.masked_fill(~visible, 0.0)"),),
        ("-inf",),
    ),
    Mutant(
        "03-softmax-over-queries", "attention",
        "The softmax runs over dim -2 (the queries) instead of the keys.",
        (("weights = F.softmax(scores, dim=-1)", "weights = F.softmax(scores, dim=-2)"),),
        ("softmax", "queries"),
    ),
    Mutant(
        "03-no-tq-check", "attention",
        "causal_attention does not raise ValueError when Tq > Tk.",
        (("    if Tq > Tk:\n        raise ValueError(", "    if False:\n        raise ValueError("),),
        ("ValueError",),
    ),
    Mutant(
        "03-uses-sdpa", "attention",
        "causal_attention calls F.scaled_dot_product_attention.",
        (("    return weights @ v\n",
          "    return F.scaled_dot_product_attention(q, k, v, attn_mask=visible)\n"),),
        ("scaled_dot_product_attention", "yourself"),
    ),
    Mutant(
        "03-repeat-kv-tiled", "attention",
        "repeat_kv tiles the kv heads with .repeat (0, 1, 0, 1) instead of repeating each one in place (0, 0, 1, 1).",
        (("return torch.repeat_interleave(x, n_rep, dim=1)", "return x.repeat(1, n_rep, 1, 1)"),),
        ("tiled",),
    ),
    Mutant(
        "03-merge-without-transpose", "attention",
        "The heads are merged by viewing (B, H, T, D) directly as (B, T, C).",
        (("y = y.transpose(1, 2).contiguous().view(B, T, C)", "y = y.contiguous().view(B, T, C)"),),
        ("merged without transposing",),
    ),
    Mutant(
        "03-split-without-transpose", "attention",
        "The heads are split by reshaping (B, T, C) directly to (B, H, T, D), without a transpose.",
        ((SPLIT, SPLIT.replace("view(B, T, self.n_head, self.head_dim).transpose(1, 2)",
                               "reshape(B, self.n_head, T, self.head_dim)")
          .replace("view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)",
                   "reshape(B, self.n_kv_head, T, self.head_dim)")),),
        ("split without a transpose",),
    ),
    Mutant(
        "03-qkv-order", "attention",
        "c_attn's output is split as k, q, v.",
        (("q, k, v = self.c_attn(x).split(", "k, q, v = self.c_attn(x).split("),),
        ("order", "q first"),
    ),
    Mutant(
        "03-rope-not-on-k", "attention",
        "Rope rotates q only.",
        ((ROPE, "q = apply_rotary(q, cos, sin)"),),
        ("not to k",),
    ),
    Mutant(
        "03-rope-on-v", "attention",
        "Rope rotates v as well as q and k.",
        ((ROPE, "q, k, v = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), apply_rotary(v, cos, sin)"),),
        ("applied to v",),
    ),
    Mutant(
        "03-qk-norm-all-channels", "attention",
        "qk_norm normalises q and k over all n_head * head_dim channels, before the heads are split.",
        ((QK_NORM, "pass"),
         ("        q = q.view(B, T, self.n_head",
          "        if self.qk_norm:\n"
          "            q, k = rms_norm(q, eps=self.norm_eps), rms_norm(k, eps=self.norm_eps)\n"
          "        q = q.view(B, T, self.n_head")),
        ("per head",),
    ),
    Mutant(
        "03-qk-norm-default-eps", "attention",
        "qk_norm uses rms_norm's default eps instead of config.norm_eps.",
        ((QK_NORM, "q, k = rms_norm(q), rms_norm(k)"),),
        ("norm_eps",),
    ),
    Mutant(
        "03-no-c-proj", "attention",
        "The attention output is returned without c_proj.",
        (("return self.resid_dropout(self.c_proj(y))", "return self.resid_dropout(y)"),),
        ("c_proj",),
    ),
    Mutant(
        "03-bias-always", "attention",
        "c_attn always has a bias, whatever config.bias says.",
        (("self.c_attn = nn.Linear(config.n_embd, qkv_dim, bias=config.bias)",
          "self.c_attn = nn.Linear(config.n_embd, qkv_dim, bias=True)"),),
        ("c_attn.bias",),
    ),
    Mutant(
        "03-kv-as-many-heads-as-q", "attention",
        "c_attn is sized as for multi-head attention (3 * n_embd) even with fewer kv heads.",
        (("qkv_dim = (config.n_head + 2 * config.n_kv_head) * config.head_dim", "qkv_dim = 3 * config.n_embd"),),
        ("c_attn.weight",),
    ),
    Mutant(
        "03-mask-hides-itself", "attention",
        "The mask also hides each query's own position (tril one diagonal too low, as triu(diagonal=0) masks).",
        ((MASK, MASK.replace("diagonal=Tk - Tq", "diagonal=Tk - Tq - 1")),),
        ("own position",),
    ),
    Mutant(
        "03-no-mask", "attention",
        "The causal mask is forgotten: every query sees every key.",
        (('    scores = scores.masked_fill(~visible, float("-inf"))\n', ""),),
        ("no causal mask",),
        also=(("sees the future",),),
    ),
    Mutant(
        "03-dropout-in-eval", "attention",
        "The attention dropout acts in eval mode too: dropout_p=self.dropout whatever self.training is.",
        (("dropout_p=self.dropout if self.training else 0.0", "dropout_p=self.dropout"),),
        ("dropout acts in eval mode",),
    ),
]
