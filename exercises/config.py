"""The model configuration. Given, not an exercise: read it, then build what it describes.

One dataclass says everything about the shape of a GPT. The defaults are GPT-2
small (124M). Two presets:

    GPTConfig.gpt2("124M")   # exactly Hugging Face GPT-2 (124M, 350M, 774M, 1558M)
    GPTConfig.modern(depth)  # nanochat-like: rmsnorm, rope, qk-norm, relu², untied, softcap

Fields left as None are resolved in __post_init__ (n_kv_head -> n_head,
mlp_hidden -> 4 * n_embd), so code that reads a config always sees integers.
"""

from dataclasses import dataclass

NORMS = ("layernorm", "rmsnorm")
POS_EMBS = ("learned", "rope")
MLPS = ("gelu", "relu2", "swiglu")

GPT2_SIZES = {  # size -> (n_layer, n_head, n_embd), as Hugging Face's gpt2, gpt2-medium, -large, -xl
    "124M": (12, 12, 768),
    "350M": (24, 16, 1024),
    "774M": (36, 20, 1280),
    "1558M": (48, 25, 1600),
}


@dataclass
class GPTConfig:
    vocab_size: int = 50257
    block_size: int = 1024  # longest sequence
    n_layer: int = 12
    n_head: int = 12
    n_kv_head: int | None = None  # None -> n_head (multi-head); 1 -> multi-query; else grouped-query
    n_embd: int = 768
    norm: str = "layernorm"  # "layernorm" | "rmsnorm"
    norm_eps: float = 1e-5
    pos_emb: str = "learned"  # "learned" (GPT-2) | "rope"
    rope_base: float = 10000.0
    mlp: str = "gelu"  # "gelu" (tanh approximation, GPT-2) | "relu2" | "swiglu"
    mlp_hidden: int | None = None  # None -> 4 * n_embd
    bias: bool = True  # biases in Linear and LayerNorm (GPT-2: True)
    qk_norm: bool = False  # rms-normalise q and k per head before attention
    tie_embeddings: bool = True  # lm_head.weight is transformer.wte.weight
    logit_softcap: float | None = None  # logits = c * tanh(logits / c)
    dropout: float = 0.0

    def __post_init__(self):
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.mlp_hidden is None:
            self.mlp_hidden = 4 * self.n_embd
        self._validate()

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def _validate(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "n_embd", "mlp_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}.")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, not {self.norm!r}.")
        if self.pos_emb not in POS_EMBS:
            raise ValueError(f"pos_emb must be one of {', '.join(POS_EMBS)}, not {self.pos_emb!r}.")
        if self.mlp not in MLPS:
            raise ValueError(f"mlp must be one of {', '.join(MLPS)}, not {self.mlp!r}.")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                f"change one so that every head gets the same number of channels."
            )
        if self.n_head % self.n_kv_head:
            raise ValueError(
                f"n_head ({self.n_head}) must be divisible by n_kv_head ({self.n_kv_head}): "
                f"each key/value head serves the same number of query heads."
            )
        if self.pos_emb == "rope" and self.head_dim % 2:
            raise ValueError(
                f"rope rotates channels in pairs, so head_dim (n_embd // n_head = {self.head_dim}) must be even."
            )
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps must be positive, not {self.norm_eps!r}.")
        if not self.rope_base > 1:
            raise ValueError(f"rope_base must be greater than 1, not {self.rope_base!r}.")
        if self.logit_softcap is not None and not self.logit_softcap > 0:
            raise ValueError(f"logit_softcap must be positive or None, not {self.logit_softcap!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout!r}.")

    @classmethod
    def gpt2(cls, size: str = "124M", **overrides) -> "GPTConfig":
        """Exactly Hugging Face GPT-2 of the given size (124M, 350M, 774M or 1558M)."""
        if size not in GPT2_SIZES:
            raise ValueError(f"GPT-2 comes in sizes {', '.join(GPT2_SIZES)}, not {size!r}.")
        n_layer, n_head, n_embd = GPT2_SIZES[size]
        fields = dict(
            vocab_size=50257, block_size=1024, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
            norm="layernorm", norm_eps=1e-5, pos_emb="learned", mlp="gelu",
            bias=True, qk_norm=False, tie_embeddings=True, logit_softcap=None,
        )
        fields.update(overrides)
        return cls(**fields)

    @classmethod
    def modern(cls, depth: int, **overrides) -> "GPTConfig":
        """A nanochat-like model: n_layer = depth, n_embd = 64 * depth, head_dim 64.

        Overrides are applied first and the derived fields follow them:
        modern(4, n_embd=512) has n_head = 512 // 64 = 8 and n_kv_head = 8.
        """
        fields = dict(
            norm="rmsnorm", norm_eps=1e-6, pos_emb="rope", qk_norm=True, mlp="relu2",
            bias=False, tie_embeddings=False, logit_softcap=15.0,
        )
        fields.update(overrides)
        fields.setdefault("n_layer", depth)
        fields.setdefault("n_embd", 64 * depth)
        fields.setdefault("n_head", max(1, fields["n_embd"] // 64))
        fields.setdefault("n_kv_head", fields["n_head"])
        return cls(**fields)
