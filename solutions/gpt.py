"""06 gpt: the whole model, its initialisation, and loading Hugging Face weights.

    idx (B, T) token ids
    x = wte(idx) + wpe(0 .. T-1)        wpe only with learned positions (GPT-2)
    x = Block(x) for each of the n_layer blocks   (rope: cos/sin for positions 0 .. T-1 go to every block)
    (with a KV cache, exercise 10: positions pos .. pos+T-1, pos = the positions already cached)
    logits = lm_head(ln_f(x))           (B, T, vocab_size), float32
    logits = c * tanh(logits / c)       only with a logit_softcap c
    loss = cross_entropy(logits, targets, ignore_index=-1)   targets are already shifted

Names follow Hugging Face's GPT2LMHeadModel, so the state dicts line up key for
key. One difference: GPT-2's checkpoints store their projections as Conv1D
with weight (in, out); an nn.Linear stores (out, in). Loading GPT-2 therefore
transposes c_attn, c_proj and c_fc weights. With tied embeddings, lm_head and
wte share one Parameter: the same matrix turns ids into vectors and vectors
into logits.

Llama models use the same skeleton with the modern parts (rmsnorm, rope,
grouped-query attention, swiglu, untied): their q/k/v projections are
concatenated into c_attn and gate/up into c_fc.
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
        ### BEGIN SOLUTION
        ### TODO: self.transformer = ModuleDict(wte, wpe (learned positions only), drop, h = n_layer Blocks, ln_f)
        ### TODO: lm_head = Linear(n_embd, vocab_size, bias=False), tied to wte.weight if tie_embeddings
        ### TODO: then self.init_weights()
        layers = dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            ln_f=make_norm(config),
        )
        if config.pos_emb == "learned":
            layers["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        self.transformer = nn.ModuleDict(layers)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight
        self.init_weights()
        ### END SOLUTION

    def forward(self, idx, targets=None, kv_cache=None):
        """idx: (B, T) int64; targets: (B, T) or None. Returns (logits (B, T, V) float32, loss or None).

        kv_cache (exercise 10): a KVCache holding the positions before idx, or None."""
        B, T = idx.shape
        pos = 0  # the position of idx's first token: 0 without a cache
        if kv_cache is not None:
            ### BEGIN SOLUTION 10
            ### TODO: idx continues the cached positions: pos = kv_cache.pos, so token i sits at position pos + i;
            ### TODO: ValueError naming the numbers if pos + T > block_size
            pos = kv_cache.pos
            if pos + T > self.config.block_size:
                raise ValueError(f"The cache holds {pos} positions and idx brings {T} more: {pos + T} > block_size "
                                 f"{self.config.block_size}; reset the cache and feed the last block_size tokens.")
            ### END SOLUTION
        ### BEGIN SOLUTION
        ### TODO: ValueError if T > block_size; x = wte(idx) (+ wpe(positions pos .. pos + T - 1)), dropout
        ### TODO: with rope, cos/sin for positions pos .. pos + T - 1 (rows pos.. of rotary_cos_sin(pos + T, head_dim,
        ### TODO: rope_base)); every block, in order, with rotary and kv_cache
        if T > self.config.block_size:
            raise ValueError(f"The sequence has {T} tokens but block_size is {self.config.block_size}: crop it.")
        x = self.transformer.wte(idx)
        if self.config.pos_emb == "learned":
            x = x + self.transformer.wpe(torch.arange(pos, pos + T, device=idx.device))
        x = self.transformer.drop(x)
        rotary = None
        if self.config.pos_emb == "rope":
            cos, sin = rotary_cos_sin(pos + T, self.config.head_dim, self.config.rope_base, device=idx.device)
            rotary = (cos[pos:], sin[pos:])
        for block in self.transformer.h:
            x = block(x, rotary=rotary, kv_cache=kv_cache)
        ### END SOLUTION
        if kv_cache is not None:
            ### BEGIN SOLUTION 10
            ### TODO: every layer has cached the T new positions: advance the cache, once
            kv_cache.advance(T)
            ### END SOLUTION
        ### BEGIN SOLUTION
        ### TODO: ln_f; lm_head; logits in float32 (float64 stays), softcap if set;
        ### TODO: loss = cross_entropy(..., ignore_index=-1) with targets, else None
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        if self.config.logit_softcap is not None:
            c = self.config.logit_softcap
            logits = c * torch.tanh(logits / c)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss
        ### END SOLUTION

    def init_weights(self):
        """normal(0, 0.02) for Linear and Embedding weights, zero biases, unit norm weights;
        attn.c_proj and mlp.c_proj (the projections into the residual stream) at 0.02 / sqrt(2 * n_layer)."""
        ### BEGIN SOLUTION
        ### TODO: every Linear and Embedding weight ~ normal(0, 0.02), Linear biases 0, norm weights 1 and biases 0
        ### TODO: then each block's attn.c_proj.weight and mlp.c_proj.weight ~ normal(0, 0.02 / sqrt(2 * n_layer))
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, (nn.Linear, LayerNorm)) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, (LayerNorm, RMSNorm)):
                nn.init.ones_(module.weight)
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for block in self.transformer.h:
            nn.init.normal_(block.attn.c_proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.c_proj.weight, mean=0.0, std=residual_std)
        ### END SOLUTION

    def num_params(self, non_embedding=True):
        """Parameters, each shared one counted once; minus wpe when non_embedding (nanoGPT's convention)."""
        ### BEGIN SOLUTION
        ### TODO: sum of numel over self.parameters() (which lists a shared Parameter once); minus wpe if asked
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and "wpe" in self.transformer:
            n -= self.transformer.wpe.weight.numel()
        return n
        ### END SOLUTION

    def flops_per_token(self):
        """Training FLOPs per token: 6N for the matmuls (N = num_params()) + 12 * n_layer * n_embd * block_size."""
        ### BEGIN SOLUTION
        ### TODO: 6 * num_params() + 12 * n_layer * n_embd * block_size
        c = self.config
        return 6 * self.num_params() + 12 * c.n_layer * c.n_embd * c.block_size
        ### END SOLUTION

    @classmethod
    def from_hf(cls, hf_model):
        """A GPT with the weights of a transformers GPT2LMHeadModel or LlamaForCausalLM, float32, same device."""
        ### BEGIN SOLUTION
        ### TODO: by hf_model.config.model_type: "gpt2" -> cls._from_gpt2, "llama" -> cls._from_llama;
        ### TODO: anything else raises ValueError naming the model
        model_type = getattr(getattr(hf_model, "config", None), "model_type", None)
        if model_type == "gpt2" and hasattr(hf_model, "lm_head"):
            return cls._from_gpt2(hf_model)
        if model_type == "llama" and hasattr(hf_model, "lm_head"):
            return cls._from_llama(hf_model)
        raise ValueError(
            f"GPT.from_hf reads GPT2LMHeadModel or LlamaForCausalLM, not {type(hf_model).__name__} "
            f"(model_type {model_type!r})."
        )
        ### END SOLUTION

    @classmethod
    def _from_gpt2(cls, hf_model):
        """GPT2LMHeadModel -> GPT: map the config, copy the weights (Conv1D weights transposed)."""
        ### BEGIN SOLUTION
        ### TODO: GPTConfig from hf_model.config (n_positions, n_inner, layer_norm_epsilon, tie_word_embeddings);
        ### TODO: ValueError for what GPT cannot reproduce (activation other than tanh GELU, unscaled attention, ...)
        ### TODO: copy every tensor of the state dict by its key, transposing the four Conv1D weights (in, out)
        hf = hf_model.config
        if hf.activation_function not in GPT2_TANH_GELUS:
            raise ValueError(f"GPT uses the tanh GELU; this GPT-2 uses activation {hf.activation_function!r}.")
        if not getattr(hf, "scale_attn_weights", True):
            raise ValueError("This GPT-2 has scale_attn_weights=False; GPT always scales attention by 1/sqrt(D).")
        if getattr(hf, "scale_attn_by_inverse_layer_idx", False):
            raise ValueError("This GPT-2 sets scale_attn_by_inverse_layer_idx, which GPT does not reproduce.")
        if getattr(hf, "add_cross_attention", False):
            raise ValueError("This GPT-2 has add_cross_attention, which GPT does not reproduce.")
        config = GPTConfig(
            vocab_size=hf.vocab_size, block_size=hf.n_positions, n_layer=hf.n_layer, n_head=hf.n_head,
            n_embd=hf.n_embd, mlp_hidden=hf.n_inner, norm="layernorm", norm_eps=hf.layer_norm_epsilon,
            pos_emb="learned", mlp="gelu", bias=True, tie_embeddings=hf.tie_word_embeddings, dropout=0.0,
        )
        model = cls(config)
        hf_state = hf_model.state_dict()
        state = {}
        for key in model.state_dict():
            tensor = hf_state[key]
            state[key] = tensor.t() if key.endswith(CONV1D_WEIGHTS) else tensor
        model.load_state_dict(state, strict=True)
        return model.to(next(hf_model.parameters()).device)
        ### END SOLUTION

    @classmethod
    def _from_llama(cls, hf_model):
        """LlamaForCausalLM -> GPT: map the config, concatenate q/k/v into c_attn and gate/up into c_fc."""
        ### BEGIN SOLUTION
        ### TODO: GPTConfig from hf_model.config (rmsnorm, rope with rope_theta, n_kv_head, swiglu with
        ### TODO: intermediate_size, attention_bias, tie_word_embeddings); ValueError for what GPT cannot reproduce
        ### TODO: c_attn = cat(q_proj, k_proj, v_proj), c_fc = cat(gate_proj, up_proj) along the output dim
        hf = hf_model.config
        if hf.hidden_act != "silu":
            raise ValueError(f"GPT's swiglu uses silu; this Llama uses hidden_act {hf.hidden_act!r}.")
        rope = getattr(hf, "rope_parameters", None) or getattr(hf, "rope_scaling", None) or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type != "default":
            raise ValueError(f"GPT implements plain rope; this Llama uses rope_type {rope_type!r}.")
        rope_base = rope.get("rope_theta") or getattr(hf, "rope_theta", None) or 10000.0
        head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
        if head_dim * hf.num_attention_heads != hf.hidden_size:
            raise ValueError(f"This Llama's head_dim ({head_dim}) is not hidden_size / num_attention_heads.")
        bias = bool(getattr(hf, "attention_bias", False))
        if bool(getattr(hf, "mlp_bias", False)) != bias:
            raise ValueError("This Llama sets attention_bias and mlp_bias differently; GPT has one bias flag.")
        config = GPTConfig(
            vocab_size=hf.vocab_size, block_size=hf.max_position_embeddings, n_layer=hf.num_hidden_layers,
            n_head=hf.num_attention_heads, n_kv_head=hf.num_key_value_heads, n_embd=hf.hidden_size,
            norm="rmsnorm", norm_eps=hf.rms_norm_eps, pos_emb="rope", rope_base=float(rope_base),
            mlp="swiglu", mlp_hidden=hf.intermediate_size, bias=bias, qk_norm=False,
            tie_embeddings=hf.tie_word_embeddings, logit_softcap=None, dropout=0.0,
        )
        hf_state = hf_model.state_dict()
        state = {
            "transformer.wte.weight": hf_state["model.embed_tokens.weight"],
            "transformer.ln_f.weight": hf_state["model.norm.weight"],
            "lm_head.weight": hf_state["lm_head.weight"],
        }
        names = ["weight", "bias"] if bias else ["weight"]
        for i in range(config.n_layer):
            ours, theirs = f"transformer.h.{i}.", f"model.layers.{i}."
            state[ours + "ln_1.weight"] = hf_state[theirs + "input_layernorm.weight"]
            state[ours + "ln_2.weight"] = hf_state[theirs + "post_attention_layernorm.weight"]
            for name in names:
                attn, mlp = theirs + "self_attn.", theirs + "mlp."
                qkv = [hf_state[f"{attn}{p}_proj.{name}"] for p in ("q", "k", "v")]
                state[f"{ours}attn.c_attn.{name}"] = torch.cat(qkv, dim=0)
                state[f"{ours}attn.c_proj.{name}"] = hf_state[f"{attn}o_proj.{name}"]
                gate_up = [hf_state[f"{mlp}{p}_proj.{name}"] for p in ("gate", "up")]
                state[f"{ours}mlp.c_fc.{name}"] = torch.cat(gate_up, dim=0)
                state[f"{ours}mlp.c_proj.{name}"] = hf_state[f"{mlp}down_proj.{name}"]
        model = cls(config)
        model.load_state_dict(state, strict=True)
        return model.to(next(hf_model.parameters()).device)
        ### END SOLUTION

    @classmethod
    def from_pretrained(cls, name_or_path):
        """Load a GPT-2 or Llama checkpoint with transformers (a local directory works offline)."""
        from transformers import AutoModelForCausalLM  # slow to import: only here

        return cls.from_hf(AutoModelForCausalLM.from_pretrained(name_or_path))
