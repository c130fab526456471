"""06 gpt, alternative implementation A (einsum_style).

Initialisation walks the modules by type; loading Hugging Face models builds
a complete new state dict and loads it strictly.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .block import Block
from .config import GPTConfig
from .norms import LayerNorm, RMSNorm, make_norm
from .rotary import rotary_cos_sin

GPT2_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")  # HF names of the tanh approximation
CONV1D_WEIGHTS = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        parts = dict(wte=nn.Embedding(config.vocab_size, config.n_embd))
        if config.pos_emb == "learned":
            parts["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        parts["drop"] = nn.Dropout(config.dropout)
        parts["h"] = nn.ModuleList([Block(config, layer_idx=i) for i in range(config.n_layer)])
        parts["ln_f"] = make_norm(config)
        self.transformer = nn.ModuleDict(parts)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight
        self.init_weights()

    def forward(self, idx, targets=None, kv_cache=None):
        """idx: (B, T) int64; targets: (B, T) or None. Returns (logits (B, T, V) float32, loss or None)."""
        cfg = self.config
        B, T = idx.shape
        start = 0 if kv_cache is None else kv_cache.pos
        if start + T > cfg.block_size:
            raise ValueError(f"positions {start} .. {start + T - 1} do not fit in block_size {cfg.block_size}.")
        x = self.transformer.wte(idx)
        rotary = None
        if cfg.pos_emb == "learned":
            x = x + self.transformer.wpe(torch.arange(start, start + T, device=idx.device))
        else:
            cos, sin = rotary_cos_sin(start + T, cfg.head_dim, cfg.rope_base, device=idx.device)
            rotary = (cos.narrow(0, start, T), sin.narrow(0, start, T))
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x, rotary=rotary, kv_cache=kv_cache)
        if kv_cache is not None:
            kv_cache.advance(T)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        if logits.dtype != torch.float64:
            logits = logits.float()
        if cfg.logit_softcap is not None:
            c = cfg.logit_softcap
            logits = c * torch.tanh(logits / c)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def init_weights(self):
        """normal(0, 0.02) for Linear and Embedding weights, zero biases, unit norm weights;
        attn.c_proj and mlp.c_proj (the projections into the residual stream) at 0.02 / sqrt(2 * n_layer)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            elif isinstance(module, (LayerNorm, RMSNorm)):
                nn.init.ones_(module.weight)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for block in self.transformer.h:
            nn.init.normal_(block.attn.c_proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.c_proj.weight, mean=0.0, std=residual_std)

    def num_params(self, non_embedding=True):
        """Parameters, each shared one counted once; minus wpe when non_embedding (nanoGPT's convention)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and "wpe" in self.transformer:
            n -= self.transformer.wpe.weight.numel()
        return n

    def flops_per_token(self):
        """Training FLOPs per token: 6N for the matmuls (N = num_params()) + 12 * n_layer * n_embd * block_size."""
        cfg = self.config
        return 6 * self.num_params() + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size

    @classmethod
    def from_hf(cls, hf_model):
        """A GPT with the weights of a transformers GPT2LMHeadModel or LlamaForCausalLM, float32, same device."""
        model_type = getattr(hf_model.config, "model_type", None)
        if model_type == "gpt2":
            return cls._from_gpt2(hf_model)
        if model_type == "llama":
            return cls._from_llama(hf_model)
        raise ValueError(
            f"GPT.from_hf reads GPT-2 (GPT2LMHeadModel) and Llama (LlamaForCausalLM) models, "
            f"not {type(hf_model).__name__} (model_type {model_type!r})."
        )

    @staticmethod
    def _device_of(hf_model):
        for p in hf_model.parameters():
            return p.device
        return torch.device("cpu")

    @classmethod
    def _from_gpt2(cls, hf_model):
        """GPT2LMHeadModel -> GPT: map the config, copy the weights (Conv1D weights transposed)."""
        hc = hf_model.config
        act = getattr(hc, "activation_function", "gelu_new")
        if act not in GPT2_TANH_GELUS:
            raise ValueError(f"activation_function {act!r} is not the tanh GELU this GPT uses ({', '.join(GPT2_TANH_GELUS)}).")
        if not getattr(hc, "scale_attn_weights", True):
            raise ValueError("scale_attn_weights=False (unscaled attention) cannot be reproduced: GPT scales by 1/sqrt(D).")
        if getattr(hc, "scale_attn_by_inverse_layer_idx", False):
            raise ValueError("scale_attn_by_inverse_layer_idx=True cannot be reproduced: GPT scales every layer by 1/sqrt(D).")
        if getattr(hc, "add_cross_attention", False):
            raise ValueError("add_cross_attention=True: GPT has no cross-attention.")
        config = GPTConfig(
            vocab_size=hc.vocab_size, block_size=hc.n_positions, n_layer=hc.n_layer, n_head=hc.n_head,
            n_embd=hc.n_embd, mlp_hidden=hc.n_inner, norm="layernorm", norm_eps=hc.layer_norm_epsilon,
            pos_emb="learned", mlp="gelu", bias=True, qk_norm=False,
            tie_embeddings=bool(getattr(hc, "tie_word_embeddings", True)), logit_softcap=None, dropout=0.0,
        )
        device = cls._device_of(hf_model)
        model = cls(config).to(device)
        source = hf_model.state_dict()
        new_state = {}
        for key in model.state_dict():
            if key not in source:
                raise ValueError(f"the GPT-2 model has no tensor {key!r}; is it a GPT2LMHeadModel?")
            t = source[key].detach()
            if key.endswith(CONV1D_WEIGHTS):
                t = t.t()
            new_state[key] = t.to(device=device, dtype=torch.float32)
        model.load_state_dict(new_state, strict=True)
        return model

    @classmethod
    def _from_llama(cls, hf_model):
        """LlamaForCausalLM -> GPT: map the config, concatenate q/k/v into c_attn and gate/up into c_fc."""
        hc = hf_model.config
        act = getattr(hc, "hidden_act", "silu")
        if act not in ("silu", "swish"):
            raise ValueError(f"hidden_act {act!r} cannot be reproduced: GPT's swiglu uses silu.")
        rope_params = dict(getattr(hc, "rope_parameters", None) or {})
        scaling = getattr(hc, "rope_scaling", None) or {}
        rope_type = rope_params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
        if rope_type != "default":
            raise ValueError(f"rope_type {rope_type!r} (rope scaling) cannot be reproduced: GPT uses plain rope.")
        if rope_params.get("partial_rotary_factor", 1.0) != 1.0:
            raise ValueError("partial_rotary_factor != 1 cannot be reproduced: GPT rotates every channel.")
        theta = rope_params.get("rope_theta", getattr(hc, "rope_theta", 10000.0))
        n_embd, n_head = hc.hidden_size, hc.num_attention_heads
        head_dim = getattr(hc, "head_dim", None)
        if head_dim is not None and head_dim * n_head != n_embd:
            raise ValueError(f"head_dim {head_dim} * num_attention_heads {n_head} != hidden_size {n_embd}: "
                             f"GPT needs head_dim = hidden_size // num_attention_heads.")
        attention_bias = bool(getattr(hc, "attention_bias", False))
        mlp_bias = bool(getattr(hc, "mlp_bias", attention_bias))
        if mlp_bias != attention_bias:
            raise ValueError(f"mlp_bias={mlp_bias} with attention_bias={attention_bias} cannot be reproduced: "
                             f"GPT uses one bias setting for every Linear.")
        n_kv = getattr(hc, "num_key_value_heads", None) or n_head
        config = GPTConfig(
            vocab_size=hc.vocab_size, block_size=hc.max_position_embeddings, n_layer=hc.num_hidden_layers,
            n_head=n_head, n_kv_head=n_kv, n_embd=n_embd, norm="rmsnorm", norm_eps=hc.rms_norm_eps,
            pos_emb="rope", rope_base=float(theta), mlp="swiglu", mlp_hidden=hc.intermediate_size,
            bias=attention_bias, qk_norm=False, tie_embeddings=bool(getattr(hc, "tie_word_embeddings", False)),
            logit_softcap=None, dropout=0.0,
        )
        device = cls._device_of(hf_model)
        model = cls(config).to(device)
        src = {k: v.detach().to(device=device, dtype=torch.float32) for k, v in hf_model.state_dict().items()}
        new_state = {"transformer.wte.weight": src["model.embed_tokens.weight"],
                     "transformer.ln_f.weight": src["model.norm.weight"]}
        lm = src.get("lm_head.weight", src["model.embed_tokens.weight"])
        new_state["lm_head.weight"] = lm
        for i in range(config.n_layer):
            hf, me = f"model.layers.{i}.", f"transformer.h.{i}."
            new_state[me + "ln_1.weight"] = src[hf + "input_layernorm.weight"]
            new_state[me + "ln_2.weight"] = src[hf + "post_attention_layernorm.weight"]
            suffixes = ("weight", "bias") if attention_bias else ("weight",)
            for s in suffixes:
                new_state[me + f"attn.c_attn.{s}"] = torch.cat(
                    [src[hf + f"self_attn.{p}_proj.{s}"] for p in ("q", "k", "v")], dim=0)
                new_state[me + f"attn.c_proj.{s}"] = src[hf + f"self_attn.o_proj.{s}"]
                new_state[me + f"mlp.c_fc.{s}"] = torch.cat(
                    [src[hf + f"mlp.{p}_proj.{s}"] for p in ("gate", "up")], dim=0)
                new_state[me + f"mlp.c_proj.{s}"] = src[hf + f"mlp.down_proj.{s}"]
        model.load_state_dict(new_state, strict=True)
        return model

    @classmethod
    def from_pretrained(cls, name_or_path):
        """Load a GPT-2 or Llama checkpoint with transformers (a local directory works offline)."""
        from transformers import AutoModelForCausalLM  # slow to import: only here

        return cls.from_hf(AutoModelForCausalLM.from_pretrained(name_or_path))
