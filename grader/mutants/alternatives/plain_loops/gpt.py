"""06 gpt, alternative implementation B (plain_loops).

The rotary tables are cached once for block_size as non-persistent buffers;
wte is tied to lm_head the nanoGPT way round; initialisation goes by parameter
name; the loss is cross-entropy written out (log_softmax, gather, masked mean);
loading Hugging Face weights copies tensor by tensor into the parameters.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .block import Block
from .config import GPTConfig
from .norms import make_norm
from .rotary import rotary_cos_sin

GPT2_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")  # HF names of the tanh approximation
CONV1D_WEIGHTS = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict()
        self.transformer["wte"] = nn.Embedding(config.vocab_size, config.n_embd)
        if config.pos_emb == "learned":
            self.transformer["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        blocks = []
        for i in range(config.n_layer):
            blocks.append(Block(config, layer_idx=i))
        self.transformer["h"] = nn.ModuleList(blocks)
        self.transformer["ln_f"] = make_norm(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.transformer.wte.weight = self.lm_head.weight  # one Parameter, two names
        if config.pos_emb == "rope":
            cos, sin = rotary_cos_sin(config.block_size, config.head_dim, config.rope_base)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.init_weights()

    def forward(self, idx, targets=None, kv_cache=None):
        """idx: (B, T) int64; targets: (B, T) or None. Returns (logits (B, T, V) float32, loss or None)."""
        cfg = self.config
        T = idx.shape[1]
        p0 = kv_cache.pos if kv_cache is not None else 0
        if p0 + T > cfg.block_size:
            raise ValueError(f"Cannot forward {T} tokens after {p0} cached ones: block_size is only {cfg.block_size}.")
        x = self.transformer.wte(idx)
        if cfg.pos_emb == "learned":
            x = x + self.transformer.wpe.weight[p0:p0 + T]
            rotary = None
        else:
            rotary = (self.rope_cos[p0:p0 + T], self.rope_sin[p0:p0 + T])
        x = F.dropout(x, p=cfg.dropout, training=self.training)
        for i in range(len(self.transformer.h)):
            x = self.transformer.h[i](x, rotary, kv_cache)
        if kv_cache is not None:
            kv_cache.advance(T)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        if cfg.logit_softcap:
            logits = torch.tanh(logits / cfg.logit_softcap) * cfg.logit_softcap
        if targets is None:
            return logits, None
        logp = torch.log_softmax(logits, dim=-1)
        counted = targets != -1
        picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        loss = -(picked * counted).sum() / counted.sum()
        return logits, loss

    def init_weights(self):
        """normal(0, 0.02) for Linear and Embedding weights, zero biases, unit norm weights;
        attn.c_proj and mlp.c_proj (the projections into the residual stream) at 0.02 / sqrt(2 * n_layer)."""
        small = 0.02 / math.sqrt(2 * self.config.n_layer)
        norm_names = (".ln_1.", ".ln_2.", "ln_f.")
        with torch.no_grad():
            for name, p in self.named_parameters():  # a tied Parameter once
                if name.endswith(".bias"):
                    p.zero_()
                elif any(n in name for n in norm_names):
                    p.fill_(1.0)
                elif name.endswith("attn.c_proj.weight") or name.endswith("mlp.c_proj.weight"):
                    p.normal_(0.0, small)
                else:
                    p.normal_(0.0, 0.02)

    def num_params(self, non_embedding=True):
        """Parameters, each shared one counted once; minus wpe when non_embedding (nanoGPT's convention)."""
        seen = set()
        total = 0
        for p in self.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
        if non_embedding and self.config.pos_emb == "learned":
            total -= self.transformer.wpe.weight.numel()
        return total

    def flops_per_token(self):
        """Training FLOPs per token: 6N for the matmuls (N = num_params()) + 12 * n_layer * n_embd * block_size."""
        N = self.num_params()
        L, C, T = self.config.n_layer, self.config.n_embd, self.config.block_size
        return 6 * N + 12 * L * C * T

    @classmethod
    def from_hf(cls, hf_model):
        """A GPT with the weights of a transformers GPT2LMHeadModel or LlamaForCausalLM, float32, same device."""
        kind = getattr(getattr(hf_model, "config", None), "model_type", None)
        loaders = {"gpt2": cls._from_gpt2, "llama": cls._from_llama}
        if kind not in loaders:
            raise ValueError(f"Cannot load a {type(hf_model).__name__} (model_type {kind!r}): "
                             f"GPT.from_hf supports gpt2 and llama models only.")
        return loaders[kind](hf_model)

    @classmethod
    def _from_gpt2(cls, hf_model):
        """GPT2LMHeadModel -> GPT: map the config, copy the weights (Conv1D weights transposed)."""
        c = hf_model.config
        problems = []
        if c.activation_function not in GPT2_TANH_GELUS:
            problems.append(f"activation_function={c.activation_function!r} (only the tanh GELU is supported)")
        if not getattr(c, "scale_attn_weights", True):
            problems.append("scale_attn_weights=False (unscaled attention)")
        if getattr(c, "scale_attn_by_inverse_layer_idx", False):
            problems.append("scale_attn_by_inverse_layer_idx=True")
        if getattr(c, "add_cross_attention", False):
            problems.append("add_cross_attention=True")
        if problems:
            raise ValueError("GPT cannot reproduce this GPT-2: " + "; ".join(problems) + ".")
        config = GPTConfig.gpt2(
            "124M", vocab_size=c.vocab_size, block_size=c.n_positions, n_layer=c.n_layer, n_head=c.n_head,
            n_embd=c.n_embd, mlp_hidden=c.n_inner, norm_eps=c.layer_norm_epsilon,
            tie_embeddings=c.tie_word_embeddings, dropout=0.0,
        )
        theirs = hf_model.state_dict()
        device = next(iter(theirs.values())).device
        model = cls(config).to(device)
        with torch.no_grad():
            for name, tensor in model.state_dict(keep_vars=True).items():
                w = theirs[name]
                if any(name.endswith(s) for s in CONV1D_WEIGHTS):
                    w = w.t()
                tensor.copy_(w)
        return model

    @classmethod
    def _from_llama(cls, hf_model):
        """LlamaForCausalLM -> GPT: map the config, concatenate q/k/v into c_attn and gate/up into c_fc."""
        c = hf_model.config
        if c.hidden_act != "silu":
            raise ValueError(f"GPT cannot reproduce hidden_act={c.hidden_act!r}: its swiglu uses silu.")
        rope = getattr(c, "rope_parameters", None) or getattr(c, "rope_scaling", None) or {}
        if rope.get("rope_type", rope.get("type", "default")) != "default":
            raise ValueError(f"GPT cannot reproduce rope scaling {rope!r}: only plain rope (rope_type 'default').")
        if rope.get("partial_rotary_factor", 1.0) != 1.0:
            raise ValueError("GPT cannot reproduce partial_rotary_factor < 1: it rotates every channel.")
        base = rope.get("rope_theta", getattr(c, "rope_theta", 10000.0))
        if getattr(c, "head_dim", None) not in (None, c.hidden_size // c.num_attention_heads):
            raise ValueError(f"GPT cannot reproduce head_dim={c.head_dim} != hidden_size // num_attention_heads.")
        if getattr(c, "mlp_bias", False) != c.attention_bias:
            raise ValueError(f"GPT cannot reproduce mlp_bias={c.mlp_bias} with attention_bias={c.attention_bias}: "
                             f"one bias setting covers every Linear.")
        config = GPTConfig(
            vocab_size=c.vocab_size, block_size=c.max_position_embeddings, n_layer=c.num_hidden_layers,
            n_head=c.num_attention_heads, n_kv_head=c.num_key_value_heads, n_embd=c.hidden_size,
            norm="rmsnorm", norm_eps=c.rms_norm_eps, pos_emb="rope", rope_base=base, mlp="swiglu",
            mlp_hidden=c.intermediate_size, bias=c.attention_bias, qk_norm=False,
            tie_embeddings=c.tie_word_embeddings, logit_softcap=None, dropout=0.0,
        )
        theirs = hf_model.state_dict()
        device = next(iter(theirs.values())).device
        model = cls(config).to(device)
        mine = model.state_dict(keep_vars=True)
        names = ["weight"] + (["bias"] if config.bias else [])
        with torch.no_grad():
            mine["transformer.wte.weight"].copy_(theirs["model.embed_tokens.weight"])
            mine["transformer.ln_f.weight"].copy_(theirs["model.norm.weight"])
            if not config.tie_embeddings:
                mine["lm_head.weight"].copy_(theirs["lm_head.weight"])
            for i in range(config.n_layer):
                a, b = f"model.layers.{i}.", f"transformer.h.{i}."
                mine[b + "ln_1.weight"].copy_(theirs[a + "input_layernorm.weight"])
                mine[b + "ln_2.weight"].copy_(theirs[a + "post_attention_layernorm.weight"])
                for n in names:
                    q, k, v = (theirs[a + f"self_attn.{p}_proj.{n}"] for p in "qkv")
                    mine[b + f"attn.c_attn.{n}"].copy_(torch.cat([q, k, v], 0))
                    mine[b + f"attn.c_proj.{n}"].copy_(theirs[a + f"self_attn.o_proj.{n}"])
                    gate, up = theirs[a + f"mlp.gate_proj.{n}"], theirs[a + f"mlp.up_proj.{n}"]
                    mine[b + f"mlp.c_fc.{n}"].copy_(torch.cat([gate, up], 0))
                    mine[b + f"mlp.c_proj.{n}"].copy_(theirs[a + f"mlp.down_proj.{n}"])
        return model

    @classmethod
    def from_pretrained(cls, name_or_path):
        """Load a GPT-2 or Llama checkpoint with transformers (a local directory works offline)."""
        from transformers import AutoModelForCausalLM  # slow to import: only here

        return cls.from_hf(AutoModelForCausalLM.from_pretrained(name_or_path))
