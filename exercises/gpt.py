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
        # TODO: self.transformer = ModuleDict(wte, wpe (learned positions only), drop, h = n_layer Blocks, ln_f)
        #       lm_head = Linear(n_embd, vocab_size, bias=False), tied to wte.weight if tie_embeddings
        #       then self.init_weights()
        raise NotImplementedError("06 gpt: GPT.__init__ — self.transformer = ModuleDict(wte, wpe (learned positions only), drop, h = n_layer Blocks, ln_f)")

    def forward(self, idx, targets=None, kv_cache=None):
        """idx: (B, T) int64; targets: (B, T) or None. Returns (logits (B, T, V) float32, loss or None).

        kv_cache (exercise 10): a KVCache holding the positions before idx, or None."""
        B, T = idx.shape
        pos = 0  # the position of idx's first token: 0 without a cache
        if kv_cache is not None:
            # TODO: idx continues the cached positions: pos = kv_cache.pos, so token i sits at position pos + i;
            #       ValueError naming the numbers if pos + T > block_size
            raise NotImplementedError("10 kv_cache: GPT.forward — idx continues the cached positions: pos = kv_cache.pos, so token i sits at position pos + i")
        # TODO: ValueError if T > block_size; x = wte(idx) (+ wpe(positions pos .. pos + T - 1)), dropout
        #       with rope, cos/sin for positions pos .. pos + T - 1 (rows pos.. of rotary_cos_sin(pos + T, head_dim,
        #       rope_base)); every block, in order, with rotary and kv_cache
        raise NotImplementedError("06 gpt: GPT.forward — ValueError if T > block_size; x = wte(idx) (+ wpe(positions pos .. pos + T - 1)), dropout")
        if kv_cache is not None:
            # TODO: every layer has cached the T new positions: advance the cache, once
            raise NotImplementedError("10 kv_cache: GPT.forward — every layer has cached the T new positions: advance the cache, once")
        # TODO: ln_f; lm_head; logits in float32 (float64 stays), softcap if set;
        #       loss = cross_entropy(..., ignore_index=-1) with targets, else None
        raise NotImplementedError("06 gpt: GPT.forward — ln_f; lm_head; logits in float32 (float64 stays), softcap if set")

    def init_weights(self):
        """normal(0, 0.02) for Linear and Embedding weights, zero biases, unit norm weights;
        attn.c_proj and mlp.c_proj (the projections into the residual stream) at 0.02 / sqrt(2 * n_layer)."""
        # TODO: every Linear and Embedding weight ~ normal(0, 0.02), Linear biases 0, norm weights 1 and biases 0
        #       then each block's attn.c_proj.weight and mlp.c_proj.weight ~ normal(0, 0.02 / sqrt(2 * n_layer))
        raise NotImplementedError("06 gpt: GPT.init_weights — every Linear and Embedding weight ~ normal(0, 0.02), Linear biases 0, norm weights 1 and biases 0")

    def num_params(self, non_embedding=True):
        """Parameters, each shared one counted once; minus wpe when non_embedding (nanoGPT's convention)."""
        # TODO: sum of numel over self.parameters() (which lists a shared Parameter once); minus wpe if asked
        raise NotImplementedError("06 gpt: GPT.num_params — sum of numel over self.parameters() (which lists a shared Parameter once); minus wpe if asked")

    def flops_per_token(self):
        """Training FLOPs per token: 6N for the matmuls (N = num_params()) + 12 * n_layer * n_embd * block_size."""
        # TODO: 6 * num_params() + 12 * n_layer * n_embd * block_size
        raise NotImplementedError("06 gpt: GPT.flops_per_token — 6 * num_params() + 12 * n_layer * n_embd * block_size")

    @classmethod
    def from_hf(cls, hf_model):
        """A GPT with the weights of a transformers GPT2LMHeadModel or LlamaForCausalLM, float32, same device."""
        # TODO: by hf_model.config.model_type: "gpt2" -> cls._from_gpt2, "llama" -> cls._from_llama;
        #       anything else raises ValueError naming the model
        raise NotImplementedError("06 gpt: GPT.from_hf — by hf_model.config.model_type: \"gpt2\" -> cls._from_gpt2, \"llama\" -> cls._from_llama")

    @classmethod
    def _from_gpt2(cls, hf_model):
        """GPT2LMHeadModel -> GPT: map the config, copy the weights (Conv1D weights transposed)."""
        # TODO: GPTConfig from hf_model.config (n_positions, n_inner, layer_norm_epsilon, tie_word_embeddings);
        #       ValueError for what GPT cannot reproduce (activation other than tanh GELU, unscaled attention, ...)
        #       copy every tensor of the state dict by its key, transposing the four Conv1D weights (in, out)
        raise NotImplementedError("06 gpt: GPT._from_gpt2 — GPTConfig from hf_model.config (n_positions, n_inner, layer_norm_epsilon, tie_word_embeddings)")

    @classmethod
    def _from_llama(cls, hf_model):
        """LlamaForCausalLM -> GPT: map the config, concatenate q/k/v into c_attn and gate/up into c_fc."""
        # TODO: GPTConfig from hf_model.config (rmsnorm, rope with rope_theta, n_kv_head, swiglu with
        #       intermediate_size, attention_bias, tie_word_embeddings); ValueError for what GPT cannot reproduce
        #       c_attn = cat(q_proj, k_proj, v_proj), c_fc = cat(gate_proj, up_proj) along the output dim
        raise NotImplementedError("06 gpt: GPT._from_llama — GPTConfig from hf_model.config (rmsnorm, rope with rope_theta, n_kv_head, swiglu with")

    @classmethod
    def from_pretrained(cls, name_or_path):
        """Load a GPT-2 or Llama checkpoint with transformers (a local directory works offline)."""
        from transformers import AutoModelForCausalLM  # slow to import: only here

        return cls.from_hf(AutoModelForCausalLM.from_pretrained(name_or_path))
