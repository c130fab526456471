"""Mistakes learners make in 05 block."""

from . import Mutant

ATTN = "x = x + self.attn(self.ln_1(x), rotary=rotary, kv_cache=kv_cache)"
MLP = "x = x + self.mlp(self.ln_2(x))"

MUTANTS = [
    Mutant(
        "05-post-norm", "block",
        "post-norm, as in the 2017 transformer: the norm after the residual add.",
        ((ATTN, "x = self.ln_1(x + self.attn(x, rotary=rotary, kv_cache=kv_cache))"),
         (MLP, "x = self.ln_2(x + self.mlp(x))")),
        ("post-norm",),
    ),
    Mutant(
        "05-no-attn-residual", "block",
        "the attention output replaces x instead of being added to it.",
        ((ATTN, "x = self.attn(self.ln_1(x), rotary=rotary, kv_cache=kv_cache)"),),
        ("attention residual is missing",),
    ),
    Mutant(
        "05-no-mlp-residual", "block",
        "the MLP output replaces x instead of being added to it.",
        ((MLP, "x = self.mlp(self.ln_2(x))"),),
        ("mlp residual is missing",),
    ),
    Mutant(
        "05-norms-swapped", "block",
        "ln_2 before the attention and ln_1 before the MLP.",
        ((ATTN, "x = x + self.attn(self.ln_2(x), rotary=rotary, kv_cache=kv_cache)"),
         (MLP, "x = x + self.mlp(self.ln_1(x))")),
        ("swapped",),
    ),
    Mutant(
        "05-mlp-first", "block",
        "the MLP sub-layer runs before the attention sub-layer.",
        ((ATTN + "\n        " + MLP, MLP + "\n        " + ATTN),),
        ("mlp runs before the attention",),
    ),
    Mutant(
        "05-final-norm-inside", "block",
        "the block normalises its output, as if ln_f lived in every block.",
        (("        return x\n", "        return self.ln_2(x)\n"),),
        ("final norm",),
    ),
    Mutant(
        "05-own-ln-f", "block",
        "the block builds and applies its own final norm ln_f.",
        (("self.mlp = MLP(config)", "self.mlp = MLP(config)\n        self.ln_f = make_norm(config)"),
         ("        return x\n", "        return self.ln_f(x)\n")),
        ("ln_f",),
    ),
    Mutant(
        "05-parallel", "block",
        "the MLP reads the block's input rather than the stream after the attention residual.",
        ((ATTN + "\n        " + MLP,
          "a = self.attn(self.ln_1(x), rotary=rotary, kv_cache=kv_cache)\n"
          "        x = x + a + self.mlp(self.ln_2(x))"),),
        ("parallel",),
    ),
    Mutant(
        "05-residual-of-normalised", "block",
        "the residual is taken from the normalised x.",
        ((ATTN + "\n        " + MLP,
          "x = self.ln_1(x)\n        x = x + self.attn(x, rotary=rotary, kv_cache=kv_cache)\n"
          "        x = self.ln_2(x)\n        x = x + self.mlp(x)"),),
        ("normalised x",),
    ),
    Mutant(
        "05-no-rotary", "block",
        "rotary is not passed on to attention.",
        ((ATTN, "x = x + self.attn(self.ln_1(x), kv_cache=kv_cache)"),),
        ("rotary",),
    ),
    Mutant(
        "05-no-kv-cache", "block",
        "kv_cache is not passed on to attention.",
        ((ATTN, "x = x + self.attn(self.ln_1(x), rotary=rotary)"),),
        ("kv_cache",),
    ),
    Mutant(
        "05-in-place-residual", "block",
        "the residual is added in place with +=, into the caller's tensor.",
        ((ATTN, "x += self.attn(self.ln_1(x), rotary=rotary, kv_cache=kv_cache)"),),
        ("in place",),
    ),
    Mutant(
        "05-always-layernorm", "block",
        "ln_1 and ln_2 are always LayerNorms, whatever config.norm says.",
        (("from .norms import make_norm", "from .norms import LayerNorm"),
         ("self.ln_1 = make_norm(config)", "self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)"),
         ("self.ln_2 = make_norm(config)", "self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)")),
        ("make_norm",),
    ),
    Mutant(
        "05-one-norm-twice", "block",
        "ln_1 is used before both sub-layers; ln_2 is built but never used.",
        ((MLP, "x = x + self.mlp(self.ln_1(x))"),),
        ("ln_1 is used before the mlp",),
    ),
    Mutant(
        "05-norms-ignore-eps", "block",
        "ln_1 and ln_2 are built by hand without config.norm_eps, so they keep their class's default eps.",
        (("from .norms import make_norm", "from .norms import LayerNorm, RMSNorm"),
         ("self.ln_1 = make_norm(config)",
          "self.ln_1 = RMSNorm(config.n_embd) if config.norm == \"rmsnorm\" else LayerNorm(config.n_embd, bias=config.bias)"),
         ("self.ln_2 = make_norm(config)",
          "self.ln_2 = RMSNorm(config.n_embd) if config.norm == \"rmsnorm\" else LayerNorm(config.n_embd, bias=config.bias)")),
        ("ignore config.norm_eps",),
    ),
    # A mistake in an exercise the block is made of: the block's tests must name that exercise, not Block.
    Mutant(
        "05-upstream-unbiased-variance", "norms",
        "01's layer_norm uses the unbiased variance; Block itself is right.",
        (("var = (x - mean).pow(2).mean(dim=-1, keepdim=True)", "var = x.var(dim=-1, keepdim=True)"),),
        ("your layernorm", "01 norms"),
        tests=("05",),
    ),
    Mutant(
        "05-upstream-apply-minus", "rotary",
        "02's apply_rotary turns the wrong way; Block itself is right.",
        (("return x * cos + rotate_half(x) * sin", "return x * cos - rotate_half(x) * sin"),),
        ("your apply_rotary", "02 rotary"),
        tests=("05",),
    ),
    Mutant(
        "05-upstream-no-sqrt-d-scale", "attention",
        "03's attention does not scale the scores; Block itself is right.",
        (("scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))", "scores = q @ k.transpose(-2, -1)"),),
        ("your causalselfattention", "03 attention"),
        tests=("05",),
    ),
    Mutant(
        "05-upstream-erf-gelu", "mlp",
        "04's gelu_tanh is the erf GELU; Block itself is right.",
        (("return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))",
          "return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))"),),
        ("your gelu_tanh", "04 mlp"),
        tests=("05",),
    ),
]
