"""Mistakes learners make in 06 gpt."""

from . import Mutant

FORWARD_LOSS = "            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)"
SOFTCAP_AND_LOSS = """            logits = c * torch.tanh(logits / c)
        loss = None
        if targets is not None:
""" + FORWARD_LOSS

MUTANTS = [
    # --- structure ---
    Mutant(
        "06-never-tied", "gpt",
        "lm_head is never tied to wte, even when tie_embeddings is True.",
        (("        if config.tie_embeddings:\n            self.lm_head.weight = self.transformer.wte.weight\n", ""),),
        ("same parameter",),
    ),
    Mutant(
        "06-always-tied", "gpt",
        "lm_head is tied to wte whatever tie_embeddings says.",
        (("        if config.tie_embeddings:\n            self.lm_head.weight", "        if True:\n            self.lm_head.weight"),),
        ("tie_embeddings=false", "share"),
    ),
    Mutant(
        "06-tied-by-data", "gpt",
        "lm_head shares wte's storage through .data, so it is a second Parameter (counted and trained twice).",
        (("self.lm_head.weight = self.transformer.wte.weight", "self.lm_head.weight.data = self.transformer.wte.weight.data"),),
        ("different parameter",),
    ),
    Mutant(
        "06-lm-head-bias", "gpt",
        "lm_head is built with a bias.",
        (("self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)",
          "self.lm_head = nn.Linear(config.n_embd, config.vocab_size)"),),
        ("lm_head", "bias"),
    ),
    Mutant(
        "06-wpe-with-rope", "gpt",
        "wpe is built for rope models too (and not used).",
        (('        if config.pos_emb == "learned":\n            layers["wpe"]', '        if True:\n            layers["wpe"]'),),
        ("wpe", "rope"),
    ),
    # --- forward ---
    Mutant(
        "06-no-positions", "gpt",
        "The position embeddings are never added.",
        (("            x = x + self.transformer.wpe(torch.arange(pos, pos + T, device=idx.device))\n", "            pass\n"),),
        ("position embeddings are not added",),
    ),
    Mutant(
        "06-positions-from-one", "gpt",
        "The positions run 1 .. T instead of 0 .. T-1.",
        (("self.transformer.wpe(torch.arange(pos, pos + T, device=idx.device))",
          "self.transformer.wpe(torch.arange(pos + 1, pos + T + 1, device=idx.device))"),),
        ("start at 1",),
    ),
    Mutant(
        "06-no-ln-f", "gpt",
        "The final norm is built but never applied.",
        (("        x = self.transformer.ln_f(x)\n", ""),),
        ("ln_f",),
    ),
    Mutant(
        "06-embeddings-scaled", "gpt",
        "The token embeddings are multiplied by sqrt(n_embd), as in the 2017 Transformer.",
        (("        x = self.transformer.wte(idx)\n", "        x = self.transformer.wte(idx) * math.sqrt(self.config.n_embd)\n"),),
        ("sqrt(n_embd)",),
    ),
    Mutant(
        "06-rope-not-passed", "gpt",
        "The rotary tables are computed but not handed to the blocks.",
        (("x = block(x, rotary=rotary, kv_cache=kv_cache)", "x = block(x, kv_cache=kv_cache)"),),
        ("rope is not applied",),
    ),
    Mutant(
        "06-rope-base-ignored", "gpt",
        "The rotary tables use the default base instead of config.rope_base.",
        (("rotary_cos_sin(pos + T, self.config.head_dim, self.config.rope_base, device=idx.device)",
          "rotary_cos_sin(pos + T, self.config.head_dim, device=idx.device)"),),
        ("rope_base is ignored",),
    ),
    Mutant(
        "06-rotary-for-block-size", "gpt",
        "The rotary tables are built for block_size positions and not sliced to T.",
        (("rotary_cos_sin(pos + T, self.config.head_dim,", "rotary_cos_sin(self.config.block_size, self.config.head_dim,"),),
        ("rotary tables",),
    ),
    Mutant(
        "06-last-position-only", "gpt",
        "Without targets only the last position's logits are computed (nanoGPT's generation shortcut).",
        (("        logits = self.lm_head(x)\n", "        logits = self.lm_head(x if targets is not None else x[:, [-1], :])\n"),),
        ("only the last position",),
    ),
    Mutant(
        "06-no-block-size-check", "gpt",
        "A sequence longer than block_size is not refused.",
        (("            raise ValueError(f\"The sequence has {T} tokens but block_size is {self.config.block_size}: crop it.\")",
          "            pass"),),
        ("block_size",),
    ),
    Mutant(
        "06-block-size-off-by-one", "gpt",
        "A sequence of exactly block_size tokens is refused.",
        (("if T > self.config.block_size:", "if T >= self.config.block_size:"),),
        ("t == block_size",),
    ),
    Mutant(
        "06-logits-keep-model-dtype", "gpt",
        "The logits keep the model's dtype (bfloat16 for a bfloat16 model).",
        (("        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))\n", ""),),
        ("bfloat16", "float32"),
    ),
    Mutant(
        "06-logits-always-float32", "gpt",
        "The logits are always cast to float32, even for a float64 model.",
        (("logits = logits.to(torch.promote_types(logits.dtype, torch.float32))", "logits = logits.float()"),),
        ("float64",),
    ),
    Mutant(
        "06-softcap-no-divide", "gpt",
        "The softcap takes tanh of the raw logits: c * tanh(logits).",
        (("logits = c * torch.tanh(logits / c)", "logits = c * torch.tanh(logits)"),),
        ("softcap", "without dividing"),
    ),
    Mutant(
        "06-softcap-loss-only", "gpt",
        "The softcap is used for the loss, but forward returns the uncapped logits.",
        ((SOFTCAP_AND_LOSS, """            capped = c * torch.tanh(logits / c)
        else:
            capped = logits
        loss = None
        if targets is not None:
            loss = F.cross_entropy(capped.view(-1, capped.size(-1)), targets.reshape(-1), ignore_index=-1)"""),),
        ("softcap", "not applied to the returned logits"),
    ),
    Mutant(
        "06-loss-before-softcap", "gpt",
        "The loss is computed from the logits before the softcap.",
        ((SOFTCAP_AND_LOSS, """            capped = c * torch.tanh(logits / c)
        else:
            capped = logits
        loss = None
        if targets is not None:
""" + FORWARD_LOSS + """
        logits = capped"""),),
        ("before the softcap",),
    ),
    Mutant(
        "06-loss-reshifted", "gpt",
        "The loss shifts the already shifted targets once more.",
        ((FORWARD_LOSS, "            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), "
                        "targets[:, 1:].reshape(-1), ignore_index=-1)"),),
        ("shifted again",),
    ),
    Mutant(
        "06-ignore-index-default", "gpt",
        "cross_entropy keeps its default ignore_index (-100), so -1 targets crash it.",
        ((FORWARD_LOSS, "            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))"),),
        ("ignore_index=-1",),
    ),
    Mutant(
        "06-loss-sum", "gpt",
        "The loss sums the per-token losses instead of averaging them.",
        ((FORWARD_LOSS, "            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), "
                        "ignore_index=-1, reduction=\"sum\")"),),
        ("is a sum",),
    ),
    # --- init_weights ---
    Mutant(
        "06-residual-init-unscaled", "gpt",
        "attn.c_proj and mlp.c_proj keep std 0.02 (no residual scaling).",
        (("residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)", "residual_std = 0.02"),),
        ("not scaled down",),
    ),
    Mutant(
        "06-residual-init-sqrt-n-layer", "gpt",
        "The residual projections are scaled by 1/sqrt(n_layer) instead of 1/sqrt(2 * n_layer).",
        (("residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)", "residual_std = 0.02 / math.sqrt(self.config.n_layer)"),),
        ("1/sqrt(n_layer)",),
    ),
    Mutant(
        "06-embeddings-default-init", "gpt",
        "Only Linear weights are re-initialised; embeddings keep nn.Embedding's N(0, 1).",
        (("if isinstance(module, (nn.Linear, nn.Embedding)):", "if isinstance(module, nn.Linear):"),),
        ("n(0, 1)",),
    ),
    Mutant(
        "06-biases-not-zeroed", "gpt",
        "Biases keep nn.Linear's uniform init.",
        (("                nn.init.zeros_(module.bias)\n", "                pass\n"),),
        ("bias", "not zero"),
    ),
    Mutant(
        "06-init-not-called", "gpt",
        "GPT.__init__ never calls init_weights().",
        (("            self.lm_head.weight = self.transformer.wte.weight\n        self.init_weights()\n",
          "            self.lm_head.weight = self.transformer.wte.weight\n"),),
        ("after gpt(config)",),
    ),
    # --- num_params and flops_per_token ---
    Mutant(
        "06-num-params-tied-twice", "gpt",
        "num_params sums the state dict, where a tied weight appears twice.",
        (("n = sum(p.numel() for p in self.parameters())", "n = sum(p.numel() for p in self.state_dict().values())"),),
        ("counted twice",),
    ),
    Mutant(
        "06-num-params-always-subtracts-wpe", "gpt",
        "num_params subtracts wpe even with non_embedding=False.",
        (('if non_embedding and "wpe" in self.transformer:', 'if "wpe" in self.transformer:'),),
        ("non_embedding=false",),
    ),
    Mutant(
        "06-num-params-assumes-wpe", "gpt",
        "num_params subtracts wpe without checking that it exists (rope models have none).",
        (('if non_embedding and "wpe" in self.transformer:', "if non_embedding:"),),
        ("no wpe",),
    ),
    Mutant(
        "06-flops-without-attention", "gpt",
        "flops_per_token leaves out the attention term.",
        (("return 6 * self.num_params() + 12 * c.n_layer * c.n_embd * c.block_size", "return 6 * self.num_params()"),),
        ("attention term",),
    ),
    # --- from_hf: GPT-2 ---
    Mutant(
        "06-conv1d-not-transposed", "gpt",
        "GPT-2's Conv1D weights are copied without transposing.",
        (("state[key] = tensor.t() if key.endswith(CONV1D_WEIGHTS) else tensor", "state[key] = tensor"),),
        ("conv1d", "not transposed"),
    ),
    Mutant(
        "06-attn-c-proj-not-transposed", "gpt",
        "Weights are transposed only where the shapes disagree, so the square attn.c_proj is not.",
        (('CONV1D_WEIGHTS = (".attn.c_attn.weight", ".attn.c_proj.weight", ',
          'CONV1D_WEIGHTS = (".attn.c_attn.weight", '),),
        ("attn.c_proj", "transpose"),
    ),
    Mutant(
        "06-gpt2-eps-not-mapped", "gpt",
        "layer_norm_epsilon is not read; norm_eps stays 1e-5.",
        (("mlp_hidden=hf.n_inner, norm=\"layernorm\", norm_eps=hf.layer_norm_epsilon,",
          "mlp_hidden=hf.n_inner, norm=\"layernorm\","),),
        ("layer_norm_epsilon",),
    ),
    Mutant(
        "06-n-inner-ignored", "gpt",
        "n_inner is not read; the MLP is always 4 * n_embd wide.",
        (("mlp_hidden=hf.n_inner, norm=\"layernorm\"", "norm=\"layernorm\""),),
        ("n_inner",),
    ),
    Mutant(
        "06-n-positions-ignored", "gpt",
        "n_positions is not read; block_size stays 1024.",
        (("vocab_size=hf.vocab_size, block_size=hf.n_positions, n_layer=hf.n_layer,",
          "vocab_size=hf.vocab_size, n_layer=hf.n_layer,"),),
        ("n_positions",),
    ),
    Mutant(
        "06-gpt2-always-tied", "gpt",
        "from_hf always ties GPT-2's lm_head, ignoring tie_word_embeddings.",
        (('mlp="gelu", bias=True, tie_embeddings=hf.tie_word_embeddings,', 'mlp="gelu", bias=True, tie_embeddings=True,'),),
        ("tie_word_embeddings",),
    ),
    Mutant(
        "06-gpt2-dropout-copied", "gpt",
        "from_hf copies GPT-2's resid_pdrop into the GPT's dropout.",
        (("tie_embeddings=hf.tie_word_embeddings, dropout=0.0,", "tie_embeddings=hf.tie_word_embeddings, dropout=hf.resid_pdrop,"),),
        ("dropout",),
    ),
    Mutant(
        "06-gpt2-erf-gelu-accepted", "gpt",
        "GPT-2 models with the exact (erf) GELU are accepted, though GPT uses the tanh approximation.",
        (('GPT2_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")',
          'GPT2_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu")'),),
        ("activation_function='gelu'", "cannot reproduce"),
    ),
    Mutant(
        "06-from-hf-keeps-hf-dtype", "gpt",
        "from_hf converts the GPT to the Hugging Face model's dtype as well as its device.",
        (("state[key] = tensor.t() if key.endswith(CONV1D_WEIGHTS) else tensor\n"
          "        model.load_state_dict(state, strict=True)\n"
          "        return model.to(next(hf_model.parameters()).device)",
          "state[key] = tensor.t() if key.endswith(CONV1D_WEIGHTS) else tensor\n"
          "        model.load_state_dict(state, strict=True)\n"
          "        return model.to(next(hf_model.parameters()).device, next(hf_model.parameters()).dtype)"),),
        ("float32",),
    ),
    Mutant(
        "06-unknown-model-read-as-gpt2", "gpt",
        "Any model that is not a Llama is read as GPT-2.",
        (('if model_type == "gpt2" and hasattr(hf_model, "lm_head"):', "if model_type != \"llama\":"),),
        ("raise valueerror naming it",),
    ),
    # --- from_hf: Llama ---
    Mutant(
        "06-llama-qkv-order", "gpt",
        "Llama's projections are concatenated as k, q, v.",
        (('for p in ("q", "k", "v")', 'for p in ("k", "q", "v")'),),
        ("concatenated as k, q, v",),
    ),
    Mutant(
        "06-llama-gate-up-swapped", "gpt",
        "Llama's gate and up projections are concatenated as (up, gate).",
        (('for p in ("gate", "up")', 'for p in ("up", "gate")'),),
        ("gate and up are swapped",),
    ),
    Mutant(
        "06-llama-rope-theta-ignored", "gpt",
        "rope_theta is not read; rope_base stays 10000.",
        (("rope_base=float(rope_base),", "rope_base=10000.0,"),),
        ("rope_base", "rope_theta"),
    ),
    Mutant(
        "06-llama-eps-not-mapped", "gpt",
        "rms_norm_eps is not read; norm_eps stays 1e-5.",
        (("norm_eps=hf.rms_norm_eps, ", ""),),
        ("rms_norm_eps",),
    ),
    Mutant(
        "06-llama-kv-heads-ignored", "gpt",
        "num_key_value_heads is not read: every Llama is treated as multi-head.",
        (("n_kv_head=hf.num_key_value_heads, ", ""),),
        ("num_key_value_heads",),
    ),
    Mutant(
        "06-llama-bias-ignored", "gpt",
        "attention_bias is not read; the Llama biases are dropped.",
        (('bias = bool(getattr(hf, "attention_bias", False))\n        if bool(getattr(hf, "mlp_bias", False)) != bias:\n'
          '            raise ValueError("This Llama sets attention_bias and mlp_bias differently; GPT has one bias flag.")\n',
          "bias = False\n"),),
        ("attention_bias",),
    ),
    Mutant(
        "06-llama-rope-type-ignored", "gpt",
        "Llama's rope scaling (llama3, linear) is not refused.",
        (('        if rope_type != "default":\n            raise ValueError(f"GPT implements plain rope; this Llama uses rope_type {rope_type!r}.")\n', ""),),
        ("rope_type", "cannot reproduce"),
    ),
    Mutant(
        "06-llama-gelu-accepted", "gpt",
        "Llama's hidden_act is not checked, so a gelu Llama is read as swiglu with silu.",
        (('        if hf.hidden_act != "silu":\n            raise ValueError(f"GPT\'s swiglu uses silu; this Llama uses hidden_act {hf.hidden_act!r}.")\n', ""),),
        ("hidden_act='gelu'", "cannot reproduce"),
    ),
    Mutant(
        "06-positions-on-the-cpu", "gpt",
        "The positions are made with torch.arange(pos, pos + T), on the CPU whatever the device of idx.",
        (("self.transformer.wpe(torch.arange(pos, pos + T, device=idx.device))",
          "self.transformer.wpe(torch.arange(pos, pos + T))"),),
        ("idx's device",),
    ),
    Mutant(
        "06-llama-always-tied", "gpt",
        "from_hf builds every Llama tied, ignoring tie_word_embeddings.",
        (("tie_embeddings=hf.tie_word_embeddings, logit_softcap=None", "tie_embeddings=True, logit_softcap=None"),),
        ("tie_word_embeddings",),
    ),
]
