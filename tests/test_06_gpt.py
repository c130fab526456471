"""06 gpt: the whole model, its initialisation, and loading Hugging Face GPT-2 and Llama (exercises/gpt.py).

Checked against the reference (its weights perturbed and loaded into yours) across the harness's
config variants, and against Hugging Face's GPT2LMHeadModel and LlamaForCausalLM: tiny models with
seeded, perturbed weights whose logits GPT.from_hf must reproduce, the full-size GPT-2 state dict
built on the meta device, and the real `gpt2` checkpoint when it is in the local cache.

transformers is imported only by the tests marked `hf`, after your GPT has been built once.
"""

import copy
import dataclasses
import functools
import itertools
import math
import os
import re

import pytest
import torch
import torch.nn.functional as F

from harness import (
    CONFIG_VARIANTS, MODEL_TOLERANCE, Mismatch, devices, expect_close, expect_gradients_everywhere, fail, learner,
    load_reference_weights, perturb_parameters, randint, reference, small_config, variant_config,
)

MODULE = "gpt"
CONV1D = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
RESIDUAL = ("attn.c_proj.weight", "mlp.c_proj.weight")
GPT2_SIZES = ("124M", "1558M")  # the smallest and the largest (350M and 774M differ only in the numbers)


def mine():
    return learner(MODULE)


def ref_gpt(config, seed=0):
    """The reference GPT with seeded weights, perturbed so that biases are off 0 and norm weights off 1."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = reference(MODULE).GPT(config)
    return perturb_parameters(model, seed=seed + 1)


def build_pair(name, seed=0, **overrides):
    """(yours, the reference's) for a CONFIG_VARIANTS entry, the reference's weights loaded into yours."""
    config = variant_config(name, **overrides)
    model = mine().GPT(config)
    ref = ref_gpt(variant_config(name, **overrides), seed=seed)
    return load_weights(model, ref, config), ref


def load_weights(model, ref, config):
    expect_contract_parameters(model, config)
    return load_reference_weights(model, ref, f"GPT({describe(config)})", module=MODULE)


def describe(config):
    shown = ("pos_emb", "norm", "mlp", "bias", "tie_embeddings", "n_kv_head", "logit_softcap", "rope_base")
    return ", ".join(f"{k}={getattr(config, k)!r}" for k in shown)


def expect_contract_parameters(model, config):
    """The mistakes a state dict shows by itself, named before the generic key comparison."""
    what = f"GPT({describe(config)})"
    keys = set(model.state_dict())
    params = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    if "lm_head.bias" in keys:
        fail(MODULE, f"{what}: nn.Linear(n_embd, vocab_size, bias=False) (GPT-2 has none, and a tied wte cannot "
                     f"carry one).", cause="your lm_head has a bias: the vocabulary projection has none")
    if config.pos_emb == "rope" and "transformer.wpe.weight" in keys:
        fail(MODULE, f"{what}: with pos_emb='rope' the positions come from rotating q and k.",
             cause="the GPT has transformer.wpe with rope: build wpe only for pos_emb='learned'")
    if config.pos_emb == "learned" and "transformer.wpe.weight" not in keys:
        fail(MODULE, f"{what}: learned positions need transformer.wpe = nn.Embedding(block_size, n_embd).",
             cause="the GPT has no transformer.wpe with learned positions")
    if not any(k.startswith("transformer.ln_f.") for k in keys):
        fail(MODULE, f"{what}: the final norm after the last block is make_norm(config).",
             cause="the GPT has no transformer.ln_f")
    buffers = sorted(keys - params)
    if buffers:
        fail(MODULE, f"{what}: its state dict holds {', '.join(buffers)}; the contract's state dicts hold "
                     f"parameters only: use register_buffer(..., persistent=False) or compute them.",
             cause="the GPT has persistent buffers in its state dict")


def call(model, idx, targets=None):
    try:
        out = model(idx, targets)
    except RuntimeError as e:
        if "size of tensor" not in str(e):
            raise
        block_size = getattr(getattr(model, "config", None), "block_size", None)
        fail(MODULE, f"forward(idx {tuple(idx.shape)}) raised RuntimeError: {e}.",
             cause=(f"your forward fails for T = {idx.size(1)} < block_size = {block_size} with a size mismatch: the "
                    f"positions or the rotary tables are not built (or sliced) for the T of idx")
             if block_size and idx.size(1) < block_size else None)
    if not (isinstance(out, tuple) and len(out) == 2):
        fail(MODULE, f"GPT.forward returned {type(out).__name__}.", cause="your forward does not return (logits, loss)")
    return out


# --- the reference's forward pass with known mistakes switched in ------------------------------


def reference_logits(ref, idx, *, positions=True, position_offset=0, final_norm=True, rotary=True, rope_base=None,
                     embed_weight=None, head_weight=None, scale_embeddings=False, reverse_blocks=False,
                     softcap="right"):
    """The reference model's logits computed step by step, each step replaceable by a known mistake."""
    c = ref.config
    T = idx.size(1)
    with torch.no_grad():
        x = F.embedding(idx, ref.transformer.wte.weight if embed_weight is None else embed_weight)
        if scale_embeddings:
            x = x * math.sqrt(c.n_embd)
        if c.pos_emb == "learned" and positions:
            x = x + ref.transformer.wpe.weight[position_offset:position_offset + T]
        cos_sin = None
        if c.pos_emb == "rope" and rotary:
            base = c.rope_base if rope_base is None else rope_base
            cos_sin = reference("rotary").rotary_cos_sin(T, c.head_dim, base, device=idx.device)
        blocks = list(ref.transformer.h)
        for block in reversed(blocks) if reverse_blocks else blocks:
            x = block(x, rotary=cos_sin)
        if final_norm:
            x = ref.transformer.ln_f(x)
        cap = c.logit_softcap
        if cap is not None and softcap == "before_head":
            x = cap * torch.tanh(x / cap)
        logits = F.linear(x, ref.lm_head.weight if head_weight is None else head_weight)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        if cap is not None:
            if softcap == "right":
                logits = cap * torch.tanh(logits / cap)
            elif softcap == "no_divide":
                logits = cap * torch.tanh(logits)
            elif softcap == "no_multiply":
                logits = torch.tanh(logits / cap)
        return logits


def forward_mistakes(ref, idx):
    c = ref.config
    r = functools.partial(reference_logits, ref, idx)
    wte, head = ref.transformer.wte.weight, ref.lm_head.weight
    likely = [
        ("only the last position's logits are returned (nanoGPT's shortcut for generation); forward returns "
         "logits for all T positions", lambda: r()[:, -1:]),
        ("the final norm transformer.ln_f is not applied before lm_head", lambda: r(final_norm=False)),
        ("the embeddings are multiplied by sqrt(n_embd) (the 2017 Transformer does; GPT does not)",
         lambda: r(scale_embeddings=True)),
        ("the blocks run in reverse order", lambda: r(reverse_blocks=True)),
    ]
    if c.pos_emb == "learned":
        likely += [
            ("the position embeddings are not added: x = wte(idx) + wpe(torch.arange(T))", lambda: r(positions=False)),
            ("the positions start at 1; they are torch.arange(T), from 0", lambda: r(position_offset=1)),
        ]
    else:
        likely += [
            ("rope is not applied: compute rotary_cos_sin(T, head_dim, rope_base) and pass rotary=(cos, sin) to "
             "every block", lambda: r(rotary=False)),
        ]
        if c.rope_base != 10000.0:
            likely.append((f"rope_base is ignored (rotary tables built with the default 10000 instead of "
                           f"config.rope_base={c.rope_base:g})", lambda: r(rope_base=10000.0)))
    if not c.tie_embeddings:
        likely += [
            ("wte and lm_head share one weight although tie_embeddings=False (tie only when asked)",
             lambda: r(embed_weight=head)),
            ("wte and lm_head share one weight although tie_embeddings=False (tie only when asked)",
             lambda: r(head_weight=wte)),
        ]
    if c.logit_softcap is not None:
        likely += [
            ("the softcap takes tanh without dividing by c first: logits = c * tanh(logits / c)",
             lambda: r(softcap="no_divide")),
            ("the softcap does not multiply by c after the tanh: logits = c * tanh(logits / c)",
             lambda: r(softcap="no_multiply")),
            ("the softcap is applied to the hidden state before lm_head; it caps the logits, after lm_head",
             lambda: r(softcap="before_head")),
            ("the softcap is not applied to the returned logits (logits = c * tanh(logits / c) after lm_head, "
             "and the loss is computed from those capped logits)", lambda: r(softcap="none")),
        ]
    return likely


def expect_logits(model, ref, idx, what):
    logits, _ = call(model, idx)
    want = reference_logits(ref, idx)
    expect_close(logits, want, what, module=MODULE, inputs=dict(idx=idx), model=True,
                 likely=forward_mistakes(ref, idx),
                 hint="This compares the whole forward pass with the reference's, with the reference's weights "
                      "loaded into yours (its blocks are checked in 01-05).")


# --- structure -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIG_VARIANTS)
def test_parameters_have_the_contract_names_and_shapes(name):
    config = variant_config(name)
    model = mine().GPT(config)
    ref = ref_gpt(variant_config(name))
    load_weights(model, ref, config)
    reference(MODULE).GPT(variant_config(name)).load_state_dict(model.state_dict(), strict=True)


@pytest.mark.parametrize("name", CONFIG_VARIANTS)
def test_lm_head_is_wte_exactly_when_tied(name):
    config = variant_config(name)
    model = mine().GPT(config)
    head, wte = model.lm_head.weight, model.transformer.wte.weight
    what = f"GPT({describe(config)})"
    if getattr(model.lm_head, "bias", None) is not None:
        fail(MODULE, f"{what}: nn.Linear(n_embd, vocab_size, bias=False).", cause="your lm_head has a bias")
    if config.tie_embeddings and head is not wte:
        if head.data_ptr() == wte.data_ptr() or torch.equal(head, wte):
            fail(MODULE, f"{what}: assign the Parameter itself, self.lm_head.weight = self.transformer.wte.weight, so "
                         f"both are trained as one and it is counted once.",
                 cause="with tie_embeddings=True lm_head.weight holds wte's values but is a different Parameter")
        fail(MODULE, f"{what}: self.lm_head.weight = self.transformer.wte.weight.",
             cause="with tie_embeddings=True lm_head.weight is not the same Parameter as transformer.wte.weight")
    if not config.tie_embeddings and (head is wte or head.data_ptr() == wte.data_ptr()):
        fail(MODULE, f"{what}: tie only when config.tie_embeddings is True.",
             cause="with tie_embeddings=False lm_head.weight and transformer.wte.weight share one Parameter")


# --- forward ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIG_VARIANTS)
def test_logits_match_reference(name):
    model, ref = build_pair(name, seed=10)
    idx = randint(ref.config.vocab_size, 2, 11, seed=11)
    expect_logits(model, ref, idx, f"GPT({describe(ref.config)})")


def test_logits_use_rope_base():
    model, ref = build_pair("gqa-rope-swiglu", seed=12, rope_base=50.0)
    idx = randint(ref.config.vocab_size, 2, 12, seed=13)
    expect_logits(model, ref, idx, f"GPT({describe(ref.config)})")


def test_logits_at_block_size():
    model, ref = build_pair("gpt2", seed=14)
    idx = randint(ref.config.vocab_size, 2, ref.config.block_size, seed=15)
    expect_logits(model, ref, idx, f"GPT({describe(ref.config)}) with T = block_size")


def test_softcap_bounds_logits():
    cap = 0.5
    model, ref = build_pair("mqa-qknorm-relu2", seed=16, logit_softcap=cap)
    idx = randint(ref.config.vocab_size, 2, 9, seed=17)
    assert reference_logits(ref, idx, softcap="none").abs().max() > 2 * cap  # the cap has work to do
    logits, _ = call(model, idx)
    expect_logits(model, ref, idx, f"GPT({describe(ref.config)})")
    if logits.abs().max() > cap:
        fail(MODULE, f"GPT({describe(ref.config)}): a logit is {logits.abs().max():.3g} in size; c * tanh(logits / c) "
                     f"lies within (-c, c).", cause=f"the logits are not capped to (-{cap}, {cap})")


@pytest.mark.parametrize("name", ["gpt2", "mqa-qknorm-relu2"])
def test_loss_is_mean_cross_entropy_ignoring_minus_one(name):
    # The loss is compared with the cross-entropy of YOUR logits (forward's tests check those): this isolates
    # the loss. With a softcap, the loss belongs to the capped logits that forward returns.
    model, ref = build_pair(name, seed=20)
    V = ref.config.vocab_size
    idx, targets = randint(V, 2, 10, seed=21), randint(V, 2, 10, seed=22)
    targets[0, [0, 3]] = -1
    targets[1, [1, 2, 5, 7, 8]] = -1
    try:
        logits, loss = call(model, idx, targets)
    except (IndexError, RuntimeError) as e:
        fail(MODULE, f"forward(idx, targets) with some targets -1 raised {type(e).__name__}: {e}.",
             cause="a target of -1 marks a position to ignore: F.cross_entropy(..., ignore_index=-1)")
    if not isinstance(loss, torch.Tensor):
        fail(MODULE, f"forward(idx, targets) returned loss {loss!r}.", cause="the loss is not a tensor")
    logits = logits.detach().double()
    flat = lambda lg, tg: (lg.reshape(-1, lg.size(-1)), tg.reshape(-1))  # noqa: E731
    want = F.cross_entropy(*flat(logits, targets), ignore_index=-1)
    counted = (targets != -1).sum()
    likely = [
        ("the targets are shifted again (logits[:, :-1] against targets[:, 1:]); targets are already shifted: "
         "targets[:, t] is the token after idx[:, t], so compare logits[:, t] with targets[:, t]",
         lambda: F.cross_entropy(*flat(logits[:, :-1], targets[:, 1:]), ignore_index=-1)),
        ("the loss is a sum; it is the mean over the counted targets (F.cross_entropy's default reduction)",
         lambda: F.cross_entropy(*flat(logits, targets), ignore_index=-1, reduction="sum")),
        ("the ignored (-1) targets are counted in the mean's denominator; ignore_index=-1 leaves them out",
         lambda: want * counted / targets.numel()),
    ]
    c = ref.config.logit_softcap
    if c is not None:
        likely += [
            ("the loss is computed from the logits before the softcap; compute it from the capped logits that "
             "forward returns",
             lambda: F.cross_entropy(*flat(c * torch.atanh((logits / c).clamp(-1 + 1e-12, 1 - 1e-12)), targets),
                                     ignore_index=-1)),
            ("the softcap is not applied to the returned logits: the loss is computed from capped logits, but "
             "forward returns them uncapped", lambda: F.cross_entropy(*flat(c * torch.tanh(logits / c), targets),
                                                                      ignore_index=-1)),
        ]
    expect_close(loss.detach().double(), want, "loss of forward(idx, targets) vs cross_entropy of its own logits",
                 module=MODULE, inputs=dict(idx=idx, targets=targets), likely=likely, atol=2e-5, rtol=1e-4,
                 hint="The expected value is F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), "
                      "ignore_index=-1) of the logits your forward returned.")


def test_loss_is_none_without_targets():
    model, ref = build_pair("gpt2", seed=23)
    out = model(randint(ref.config.vocab_size, 1, 5, seed=24), kv_cache=None)
    if not (isinstance(out, tuple) and len(out) == 2):
        fail(MODULE, f"GPT.forward returned {type(out).__name__}.", cause="your forward does not return (logits, loss)")
    if out[1] is not None:
        fail(MODULE, f"forward(idx) without targets returned loss {out[1]!r}.",
             cause="the loss is not None without targets")


@pytest.mark.parametrize("name", ["gpt2", "gqa-rope-swiglu"])
def test_longest_sequence_is_block_size(name):
    config = variant_config(name, block_size=8)
    model = mine().GPT(config)
    try:
        call(model, randint(config.vocab_size, 1, 8, seed=25))
    except ValueError as e:
        fail(MODULE, f"forward with T == block_size == 8 raised ValueError ({e}); block_size is the longest "
                     f"sequence allowed.", cause="your forward refuses T == block_size: raise only when T > block_size")
    idx = randint(config.vocab_size, 1, 9, seed=26)
    try:
        call(model, idx)
    except ValueError:
        return
    except Exception as e:  # noqa: BLE001 - any other error is the wrong one
        fail(MODULE, f"forward with T=9 > block_size=8 raised {type(e).__name__} ({e}): raise ValueError with a "
                     f"sentence saying the sequence is longer than block_size.",
             cause="your forward does not check T against block_size (it raised another error than ValueError)")
    fail(MODULE, "forward with T=9 > block_size=8 returned: check idx.size(1) against config.block_size and "
                 "raise ValueError.", cause="your forward does not refuse a sequence longer than block_size")


@pytest.mark.parametrize("name", ["gpt2", "gqa-rope-swiglu"])
def test_logits_do_not_depend_on_later_tokens(name):
    model, ref = build_pair(name, seed=27)
    V = ref.config.vocab_size
    idx = randint(V, 2, 12, seed=28)
    changed = idx.clone()
    changed[:, 6:] = (idx[:, 6:] + 1 + randint(V - 1, 2, 6, seed=29)) % V
    before, _ = call(model, idx)
    after, _ = call(model, changed)
    if before.shape[:2] != idx.shape:
        fail(MODULE, f"GPT({describe(ref.config)})(idx {tuple(idx.shape)}) returned logits of shape "
                     f"{tuple(before.shape)}.",
             cause="your forward returns only the last position's logits (nanoGPT's shortcut for generation); it returns "
                   "logits for all T positions" if before.shape[1] == 1 else "forward's logits are not (B, T, V)")
    if not torch.allclose(before[:, :6], after[:, :6], atol=1e-5, rtol=1e-5):
        fail(MODULE, f"GPT({describe(ref.config)}): changing the tokens at positions 6 and later changed the logits "
                     f"at positions 0..5. Places to look: the mask in 03 causal_attention, and anything in forward "
                     f"that mixes positions (a mean or sum over the time dim).",
             cause="a position sees later tokens")


@pytest.mark.parametrize("name", CONFIG_VARIANTS)
def test_gradients_reach_every_parameter(name):
    model, ref = build_pair(name, seed=30)
    V = ref.config.vocab_size
    _, loss = call(model, randint(V, 2, 9, seed=31), randint(V, 2, 9, seed=32))
    if not isinstance(loss, torch.Tensor):
        fail(MODULE, f"forward(idx, targets) returned loss {loss!r}.", cause="the loss is not a tensor")
    expect_gradients_everywhere(model, loss, f"GPT({describe(ref.config)})", module=MODULE)


# --- dtypes and devices ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gpt2", "mqa-qknorm-relu2"])
def test_float64_model_gives_float64_logits(name):
    model, ref = build_pair(name, seed=33)
    model, ref = model.double(), copy.deepcopy(ref).double()
    idx = randint(ref.config.vocab_size, 2, 7, seed=34)
    logits, _ = call(model, idx)
    if isinstance(logits, torch.Tensor) and logits.dtype == torch.float32:
        fail(MODULE, f"float64 GPT({describe(ref.config)}): cast to at least float32, so that float64 stays "
                     f"float64 (logits.to(torch.promote_types(logits.dtype, torch.float32))).",
             cause="a float64 model gave float32 logits")
    # The rotary tables are float32 by contract, so a rotation keeps norms only to ~6e-8 (cos² + sin² in
    # float32): with qk_norm, norming before or after rope (both correct) moves the logits by ~1e-7.
    atol, rtol = (1e-6, 1e-5) if ref.config.pos_emb == "rope" else MODEL_TOLERANCE[torch.float64]
    expect_close(logits, reference_logits(ref, idx), f"float64 GPT({describe(ref.config)})", module=MODULE,
                 inputs=dict(idx=idx), atol=atol, rtol=rtol)


@pytest.mark.parametrize("name", ["gpt2", "mqa-qknorm-relu2"])
def test_bfloat16_model_gives_float32_logits(name):
    model, ref = build_pair(name, seed=35)
    model = model.to(torch.bfloat16)
    idx = randint(ref.config.vocab_size, 2, 7, seed=36)
    logits, _ = call(model, idx)
    if isinstance(logits, torch.Tensor) and logits.dtype != torch.float32:
        fail(MODULE, f"bfloat16 GPT({describe(ref.config)}): cast after lm_head (softmax and cross-entropy over a "
                     f"large vocabulary need float32's precision).",
             cause=f"a bfloat16 model gave {str(logits.dtype)[6:]} logits, not float32")
    # bfloat16 keeps 8 bits: compare with the float32 model loosely (a mistake is far bigger)
    expect_close(logits, reference_logits(ref, idx), f"bfloat16 GPT({describe(ref.config)})", module=MODULE,
                 inputs=dict(idx=idx), atol=0.15, rtol=0.05)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("name", ["gpt2", "gqa-rope-swiglu"])
def test_forward_runs_on_the_model_device(name, device):
    model, ref = build_pair(name, seed=37)
    model = model.to(device)
    idx = randint(ref.config.vocab_size, 2, 7, seed=38)
    logits, _ = call(model, idx.to(device))
    if isinstance(logits, torch.Tensor) and logits.device.type != device:
        fail(MODULE, f"GPT({describe(ref.config)}) on {device}: create positions and rotary tables on idx.device.",
             cause=f"a model on {device} gave logits on {logits.device}")
    expect_close(logits.cpu() if isinstance(logits, torch.Tensor) else logits, reference_logits(ref, idx),
                 f"GPT({describe(ref.config)}) on {device}", module=MODULE, inputs=dict(idx=idx), model=True)


# --- init_weights ----------------------------------------------------------------------------

INIT_CONFIGS = {
    "learned-layernorm-bias-untied": dict(vocab_size=256, block_size=128, n_layer=3, n_head=4, n_embd=128,
                                          tie_embeddings=False),
    "rope-rmsnorm-tied-swiglu": dict(vocab_size=256, block_size=128, n_layer=2, n_head=4, n_kv_head=2, n_embd=128,
                                     pos_emb="rope", norm="rmsnorm", mlp="swiglu", mlp_hidden=128, bias=False),
}


def expect_initialised(model, config, when):
    """Every parameter as init_weights leaves it; statistics on tensors of >= 16k values, bounds many sigmas wide."""
    residual = 0.02 / math.sqrt(2 * config.n_layer)
    for name, p in model.named_parameters():
        w = p.detach().double().flatten()
        if name.endswith(".bias"):
            if torch.any(w != 0):
                fail(MODULE, f"{when}: init_weights sets every bias to 0 (nn.Linear's own init draws biases "
                             f"uniformly).", cause=f"the bias {name} is not zero")
            continue
        if p.dim() == 1:
            if torch.any(w != 1):
                fail(MODULE, f"{when}: init_weights sets norm weights to 1.",
                     cause=f"the norm weight {name} is not all ones")
            continue
        want = residual if name.endswith(RESIDUAL) else 0.02
        n = w.numel()
        std, mean = w.std().item(), w.mean().item()
        if abs(std / want - 1) > 0.1:
            fail(MODULE, f"{when}, {name} has std {std:.4g}, expected {want:.4g}: Linear and Embedding weights get "
                         f"normal(0, 0.02); attn.c_proj and mlp.c_proj weights 0.02 / sqrt(2 * n_layer).",
                 cause=init_diagnosis(name, std, config) or f"{name} has std {std:.4g}, not {want:.4g}")
        if abs(mean) > 6 * want / math.sqrt(n):
            fail(MODULE, f"{when}: init_weights draws from a normal with mean 0.",
                 cause=f"{name} has mean {mean:.3g}, not 0")
        tail = (w.abs() > 2 * want).double().mean().item()  # 4.55% for a normal distribution
        if not 0.033 < tail < 0.058:
            fail(MODULE, f"{when}, {tail:.1%} of {name} lies beyond 2 standard deviations, where a normal "
                         f"distribution puts 4.6%: nn.init.normal_(weight, mean=0.0, std={want:.4g}).",
                 cause=f"{name} is not normally distributed")


def init_diagnosis(name, std, config):
    """The known mistake whose std equals this weight's, or None."""
    L = config.n_layer
    close = lambda value: abs(std / value - 1) < 0.1  # noqa: E731
    if name.endswith(RESIDUAL):
        if close(0.02):
            return ("the residual projections (attn.c_proj, mlp.c_proj) are not scaled down: their std is "
                    "0.02 / sqrt(2 * n_layer), since each block adds two of them to the residual stream")
        if close(0.02 / math.sqrt(L)):
            return ("the residual projections are scaled by 1/sqrt(n_layer); it is 1/sqrt(2 * n_layer), two "
                    "residual additions (attn and mlp) per block")
        return None
    if close(1.0):
        return f"{name} keeps nn.Embedding's default N(0, 1): init_weights must re-initialise embeddings too"
    if name.endswith(".wte.weight") and close(0.02 / math.sqrt(2 * L)):
        return "the embedding got the residual std; only attn.c_proj and mlp.c_proj are scaled down"
    return None


@pytest.mark.parametrize("name", INIT_CONFIGS)
def test_constructor_initialises_weights(name):
    config = small_config(**INIT_CONFIGS[name])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(40)
        model = mine().GPT(config)
    try:
        expect_initialised(model, config, f"after GPT(config) with {name}")
    except Mismatch as error:
        # If your init_weights() alone gets it right, the constructor is not calling it.
        other = mine().GPT(config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(43)
            other.init_weights()
        try:
            expect_initialised(other, config, "")
        except Mismatch:
            raise error from None
        fail(MODULE, f"After GPT(config) with {name} a parameter is not as init_weights leaves it ({error.cause}); "
                     f"after model.init_weights() every one is.",
             cause="after GPT(config) the weights are not initialised, though model.init_weights() initialises "
                   "them: call self.init_weights() at the end of GPT.__init__")


@pytest.mark.parametrize("name", INIT_CONFIGS)
def test_init_weights_resets_every_parameter(name):
    config = small_config(**INIT_CONFIGS[name])
    model = perturb_parameters(mine().GPT(config), seed=41, scale=1.0)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(42)
        model.init_weights()
    kept = [k for k, v in model.named_parameters() if torch.equal(v.detach(), before[k])]
    if kept:
        first = kept[0]
        what = (" (for an embedding, nn.Embedding's default N(0, 1) after GPT(config))"
                if first.endswith(("wte.weight", "wpe.weight")) else
                ", so the bias is not zero (init_weights sets every bias to 0)" if first.endswith(".bias") else
                ", so the norm weight is not all ones" if dict(model.named_parameters())[first].dim() == 1 else "")
        fail(MODULE, f"model.init_weights() on perturbed weights ({name}) left {', '.join(kept[:4])} as they were.",
             cause=f"init_weights does not re-initialise {first}: it keeps the value it had{what}")
    expect_initialised(model, config, f"after model.init_weights() on perturbed weights ({name})")


# --- num_params and flops_per_token ----------------------------------------------------------


def counts(config):
    """(all parameters, each shared one once; wpe's numel) for the reference built from config."""
    ref = reference(MODULE).GPT(config)
    unique = {id(p): p for p in ref.parameters()}
    total = sum(p.numel() for p in unique.values())
    expect = ref.num_params(non_embedding=False)
    assert total == expect, "the reference's num_params disagrees with a count of its parameters"
    wpe = config.block_size * config.n_embd if config.pos_emb == "learned" else 0
    return total, wpe


def num_params_mistakes(total, wpe, wte, tie):
    """(count, sentence) of known num_params mistakes; total counts each Parameter once, wpe and wte their sizes."""
    twice = ("the tied weight is counted twice; a shared Parameter counts once (self.parameters() lists it once, "
             "the state dict twice)")
    return [
        (total + wte if tie else None, twice),
        (total - wpe - wte, "wte is subtracted too; nanoGPT's non-embedding count subtracts only wpe, because wte "
                            "is also the output layer"),
        (total + wte - wpe if tie else None, twice),
        (total - wpe if wpe else None, "wpe is subtracted with non_embedding=False; subtract it only when "
                                       "non_embedding is True"),
        (total, "wpe is not subtracted with non_embedding=True"),
    ]


@pytest.mark.parametrize("name", CONFIG_VARIANTS)
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_num_params(name, tie):
    config = variant_config(name, tie_embeddings=tie)
    model = mine().GPT(config)
    total, wpe = counts(config)
    wte = config.vocab_size * config.n_embd
    want = {True: total - wpe, False: total}
    mistakes = num_params_mistakes(total, wpe, wte, tie)
    shared = model.lm_head.weight is model.transformer.wte.weight
    for non_embedding in (True, False):
        try:
            got = model.num_params(non_embedding=non_embedding)
        except (AttributeError, KeyError) as e:
            fail(MODULE, f"num_params(non_embedding={non_embedding}) for GPT({describe(config)}) raised "
                         f"{type(e).__name__}: {e}.",
                 cause="your num_params fails on a model with no wpe (pos_emb='rope'): subtract wpe only when it exists"
                 if config.pos_emb == "rope" else None)
        if got != want[non_embedding]:
            text = (f"num_params(non_embedding={non_embedding}) for GPT({describe(config)}) is {got}, expected "
                    f"{want[non_embedding]}.")
            if shared != tie:  # the count follows the model's own (wrong) tying: test_lm_head_is_wte... names it
                fail(MODULE, text, cause=(
                    "with tie_embeddings=True lm_head.weight must be the same Parameter as wte.weight; yours is a "
                    "different Parameter, so it is counted twice") if tie else (
                    "with tie_embeddings=False lm_head.weight and wte.weight share one Parameter, so it is counted "
                    "once"))
            found = [sentence for value, sentence in mistakes if value == got and value != want[non_embedding]]
            fail(MODULE, text, cause=found[0] if found else None, looks_like=True)
    if model.num_params() != want[True]:
        fail(MODULE, f"num_params() for GPT({describe(config)}) is {model.num_params()}, expected {want[True]}.",
             cause="your num_params's non_embedding does not default to True")


@pytest.mark.parametrize("name", ["gpt2", "gqa-rope-swiglu"])
def test_flops_per_token(name):
    config = variant_config(name)
    model = mine().GPT(config)
    total, wpe = counts(config)
    N = total - wpe
    attention = 12 * config.n_layer * config.n_embd * config.block_size
    got = model.flops_per_token()
    if got == 6 * N + attention:
        return
    text = f"flops_per_token() for GPT({describe(config)}) is {got}, expected 6 * {N} + {attention} = {6 * N + attention}."
    mistakes = {
        6 * total + attention: "N counts wpe: N = num_params(), with its default non_embedding=True",
        6 * N: "the attention term 12 * n_layer * n_embd * block_size is missing",
        2 * N + attention: "the matmuls count 6 FLOPs per parameter per token in training (2 forward, 4 backward)",
    }
    fail(MODULE, text, cause=mistakes.get(got), looks_like=True)


# --- Hugging Face: GPT-2 and Llama -----------------------------------------------------------


def learner_gpt_first():
    """Build a tiny GPT with your code before importing transformers (5 s): a not-started exercise stops here."""
    mine().GPT(small_config())


def hf():
    import transformers  # slow to import: only in the tests that need it

    transformers.logging.set_verbosity_error()
    return transformers


def hf_gpt2(seed=0, **fields):
    """A tiny GPT2LMHeadModel, seeded, every weight perturbed; eval mode."""
    t = hf()
    config = dict(vocab_size=61, n_positions=16, n_embd=32, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0,
                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="eager")
    config.update(fields)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = t.GPT2LMHeadModel(t.GPT2Config(**config))
    return perturb_parameters(model, seed=seed + 1).eval()


def hf_llama(seed=0, rope_theta=10000.0, **fields):
    """A tiny LlamaForCausalLM, seeded, every weight perturbed; eval mode."""
    t = hf()
    config = dict(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=0,
                  rope_parameters={"rope_type": "default", "rope_theta": rope_theta}, attn_implementation="eager")
    config.update(fields)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = t.LlamaForCausalLM(t.LlamaConfig(**config))
    return perturb_parameters(model, seed=seed + 1).eval()


def hf_logits(model, idx):
    with torch.no_grad():
        return model(idx.to(model.device)).logits


CONV1D_NOT_TRANSPOSED = re.compile(  # a load error whose two shapes are each other's transpose
    r"(c_attn|c_fc|c_proj)\.weight.*\[(\d+), (\d+)\].*\[\3, \2\]", re.S)


def tying_cause(model, tie):
    """The sentence for a GPT whose lm_head/wte sharing disagrees with tie (its config), else None."""
    head, wte = model.lm_head.weight, model.transformer.wte.weight
    if tie and head is not wte:
        # Loaded weights (or the meta device) make values and data_ptr agree anyway: ask a fresh small GPT.
        fresh = mine().GPT(small_config(tie_embeddings=True))
        if fresh.lm_head.weight.data_ptr() == fresh.transformer.wte.weight.data_ptr():
            return "with tie_embeddings=True your lm_head.weight holds wte's values but is a different Parameter"
        return "with tie_embeddings=True your lm_head.weight is not the same Parameter as transformer.wte.weight"
    if not tie and (head is wte or (head.device.type != "meta" and head.data_ptr() == wte.data_ptr())):
        return "with tie_embeddings=False your lm_head.weight and transformer.wte.weight share one Parameter"
    return None


def structure_cause(config):
    """If your GPT(config) has other parameters (names, shapes, tying) than the reference's, that sentence."""
    try:
        model = mine().GPT(copy.deepcopy(config))
    except Exception as e:  # noqa: BLE001
        return f"your GPT(config) raises {type(e).__name__} for this model's config ({e})"
    theirs = {k: tuple(v.shape) for k, v in reference(MODULE).GPT(copy.deepcopy(config)).state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if ours != theirs:
        parts = [f"{k} is extra" for k in sorted(set(ours) - set(theirs))]
        parts += [f"{k} is missing" for k in sorted(set(theirs) - set(ours))]
        parts += [f"{k} is {ours[k]}, not {theirs[k]}" for k in sorted(set(ours) & set(theirs)) if ours[k] != theirs[k]]
        return (f"your GPT({describe(config)}) itself has other parameters than the contract's "
                f"({'; '.join(parts[:4])}): test_parameters_have_the_contract_names_and_shapes checks them")
    return tying_cause(model, config.tie_embeddings)


HF_NAMES = {  # GPTConfig field -> where from_hf reads it (GPT-2 / Llama)
    "vocab_size": "vocab_size", "block_size": "n_positions / max_position_embeddings", "n_layer": "n_layer / "
    "num_hidden_layers", "n_head": "n_head / num_attention_heads", "n_kv_head": "num_key_value_heads",
    "n_embd": "n_embd / hidden_size", "norm_eps": "layer_norm_epsilon / rms_norm_eps", "rope_base": "rope_theta",
    "mlp_hidden": "n_inner / intermediate_size", "bias": "attention_bias", "tie_embeddings": "tie_word_embeddings",
}


def config_cause(got, want):
    """The config fields from_hf set differently from the contract's mapping (want: the reference's config)."""
    fields = [f.name for f in dataclasses.fields(want)]
    if want.pos_emb == "learned":
        fields.remove("rope_base")  # not used by learned positions
    wrong = [f"{name}={getattr(got, name, None)!r} (expected {getattr(want, name)!r}"
             + (f", from {HF_NAMES[name]})" if name in HF_NAMES else ")")
             for name in fields if getattr(got, name, None) != getattr(want, name)]
    if wrong:
        return "your from_hf sets the config wrong: " + "; ".join(wrong)
    return None


def recorded_config(hf_model):
    """The config your from_hf builds its GPT with (recorded through a subclass), or None."""
    seen = []

    class Recording(mine().GPT):
        def __init__(self, config):
            seen.append(copy.deepcopy(config))
            super().__init__(config)
    try:
        Recording.from_hf(hf_model)
    except Exception:  # noqa: BLE001  it raised before; only the recorded config matters
        pass
    return seen[0] if seen else None


def from_hf(hf_model, what):
    """Your GPT.from_hf(hf_model); an error (other than not-started) is explained by what it shows: your GPT's
    own parameters, the config your from_hf built, or Conv1D shapes left untransposed."""
    try:
        return mine().GPT.from_hf(hf_model)
    except NotImplementedError:
        raise
    except Exception as e:  # noqa: BLE001
        text = f"GPT.from_hf({what}) raised {type(e).__name__}: {str(e)[:600]}"
        want = reference(MODULE).GPT.from_hf(hf_model).config
        got = recorded_config(hf_model)
        found = structure_cause(want) or (got is not None and config_cause(got, want)) or None
        if not found and CONV1D_NOT_TRANSPOSED.search(str(e)):
            found = ("GPT-2's Conv1D weights were not transposed (the shapes in the error are each other's "
                     "transpose): Conv1D stores (in, out), nn.Linear (out, in); transpose attn.c_attn, attn.c_proj, "
                     "mlp.c_fc and mlp.c_proj weights (.t())")
        if not found and isinstance(e, ValueError):
            found = "your from_hf refused a model that GPT can reproduce: raise ValueError only for what it cannot"
        fail(MODULE, text, cause=found)


def reference_from_hf(hf_model, **config_changes):
    """The reference's GPT for hf_model, optionally rebuilt with changed config fields (same weights)."""
    model = reference(MODULE).GPT.from_hf(hf_model)
    if not config_changes:
        return model
    changed = reference(MODULE).GPT(dataclasses.replace(model.config, **config_changes))
    changed.load_state_dict(model.state_dict(), strict=True)
    return changed


def logits_of(model, idx):
    with torch.no_grad():
        return model(idx)[0]


def expect_reproduces(model, hf_model, idx, what, likely=(), hint=None):
    """likely: (sentence, logits) pairs, or a function of your model returning them (so that a mapping mistake
    is named only when your model's config shows it)."""
    if not all(p.dtype == torch.float32 for p in model.parameters()):
        dtypes = sorted({str(p.dtype)[6:] for p in model.parameters()})
        fail(MODULE, f"GPT.from_hf({what}) has {', '.join(dtypes)} parameters.",
             cause="GPT.from_hf does not return a float32 model")
    device = next(hf_model.parameters()).device
    if any(p.device != device for p in model.parameters()):
        fail(MODULE, f"GPT.from_hf({what}): its parameters are not all on {device}.",
             cause="GPT.from_hf's model is not on the Hugging Face model's device")
    logits, _ = call(model, idx.to(device))
    want = hf_logits(hf_model, idx).float()
    if isinstance(logits, torch.Tensor) and logits.shape == want.shape and torch.allclose(
            logits, want, atol=1e-4, rtol=0.0):
        return
    text = f"GPT.from_hf({what}) against Hugging Face: the logits differ."
    want_config = reference(MODULE).GPT.from_hf(hf_model).config
    config = getattr(model, "config", None)
    if config is not None:
        found = (config_cause(config, want_config) or structure_cause(config)
                 or tying_cause(model, config.tie_embeddings))
        if found:
            fail(MODULE, text, cause=found)
    expect_close(logits, want, f"GPT.from_hf({what}) against Hugging Face", module=MODULE, inputs=dict(idx=idx),
                 atol=1e-4, rtol=0.0, likely=likely(model) if callable(likely) else likely, hint=hint)


def config_mistake(model, field, wrong, mapped, ignored, logits_fn):
    """A candidate for a config field that from_hf maps: if your GPT's config holds the wrong value, the mapping
    is named; if it holds the right one but your logits are those of the wrong value, your forward ignores it."""
    value = getattr(getattr(model, "config", None), field, None)
    if value == wrong:
        return [(mapped, logits_fn)]
    return [(ignored.format(value=value), logits_fn)]


GPT2_CASES = {  # GPT2Config fields: sizes, n_inner, layer_norm_epsilon, tying, activation
    "tied-default-width": dict(),
    "untied-n_inner-eps1e-3": dict(vocab_size=50, n_positions=12, n_embd=24, n_layer=3, n_head=2, n_inner=40,
                                   layer_norm_epsilon=1e-3, tie_word_embeddings=False),
    "tied-8-heads-eps1e-2": dict(vocab_size=70, n_positions=20, n_embd=64, n_layer=1, n_head=8, n_inner=96,
                                 layer_norm_epsilon=1e-2, activation_function="gelu_pytorch_tanh"),
}


def gpt2_mistakes(hf_model, idx):
    """The known mistakes of loading GPT-2, as a function of your model (see expect_reproduces)."""
    r = lambda **changes: logits_of(reference_from_hf(hf_model, **changes), idx)  # noqa: E731

    def c_proj_not_transposed():
        model = reference_from_hf(hf_model)
        with torch.no_grad():
            for block in model.transformer.h:
                block.attn.c_proj.weight.copy_(block.attn.c_proj.weight.t().clone())
        return logits_of(model, idx)

    def likely(model):
        found = [
            ("attn.c_proj's weight was not transposed: it is square, so its shape fits either way, but GPT-2's "
             "Conv1D stores (in, out); transpose all four Conv1D weights (attn.c_attn, attn.c_proj, mlp.c_fc, "
             "mlp.c_proj)", c_proj_not_transposed),
        ]
        if hf_model.config.layer_norm_epsilon != 1e-5:
            found += config_mistake(model, "norm_eps", 1e-5, "layer_norm_epsilon is not mapped to norm_eps",
                                    "your GPT's norms ignore config.norm_eps (from_hf set norm_eps={value}, but the "
                                    "logits are those of 1e-5)", lambda: r(norm_eps=1e-5))
        return found
    return likely


@pytest.mark.hf
@pytest.mark.parametrize("size", GPT2_SIZES)
def test_gpt2_preset_state_dict_is_hugging_faces(size):
    GPTConfig = reference("config").GPTConfig
    with torch.device("meta"):  # shapes only: no memory, no real initialisation
        model = mine().GPT(GPTConfig.gpt2(size))
    theirs = {k: tuple(v.shape) for k, v in hf_gpt2_meta(size).state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing, extra = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
    if missing or extra:
        differ = "; ".join(filter(None, [missing and "missing " + ", ".join(missing[:6]),
                                         extra and "not in GPT-2 " + ", ".join(extra[:6])]))
        fail(MODULE, f"GPT(GPTConfig.gpt2({size!r})).state_dict(): use Hugging Face's names: "
                     f"transformer.wte/wpe/h/ln_f and lm_head.",
             cause=f"the GPT-2 preset's state dict differs from GPT2LMHeadModel's: {differ}")
    for key, shape in theirs.items():
        want = shape[::-1] if key.endswith(CONV1D) else shape
        if ours[key] != want:
            fail(MODULE, f"GPT(GPTConfig.gpt2({size!r})): {key} is {ours[key]}, expected {want}"
                         + (f" (GPT-2's Conv1D stores {shape}, (in, out); nn.Linear is (out, in))" if want != shape
                            else "") + ".",
                 cause=f"the GPT-2 preset's {key} has the wrong shape")
    if tying_cause(model, True):
        fail(MODULE, f"GPT(GPTConfig.gpt2({size!r})): GPT-2 ties lm_head.weight to transformer.wte.weight.",
             cause=tying_cause(model, True))


@functools.cache
def hf_gpt2_meta(size):
    t = hf()
    n_layer, n_head, n_embd = reference("config").GPT2_SIZES[size]
    with torch.device("meta"):
        return t.GPT2LMHeadModel(t.GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd))


@pytest.mark.hf
def test_gpt2_num_params_is_hugging_faces():
    with torch.device("meta"):
        model = mine().GPT(reference("config").GPTConfig.gpt2("124M"))
    theirs = hf_gpt2_meta("124M")
    total = sum(p.numel() for p in theirs.parameters())  # Hugging Face lists the tied weight once
    wpe = theirs.transformer.wpe.weight.numel()
    got = (model.num_params(non_embedding=False), model.num_params(non_embedding=True))
    if got != (total, total - wpe):
        theirs_keys = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
        ours_keys = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        own = sum(p.numel() for p in model.parameters())  # your model's own parameters, each shared one once
        if got[0] == own and (tying_cause(model, True) or set(ours_keys) != set(theirs_keys)):
            cause = tying_cause(model, True) or (
                f"the GPT-2 preset's parameters differ from GPT2LMHeadModel's (not in GPT-2: "
                f"{', '.join(sorted(set(ours_keys) - set(theirs_keys))[:4]) or 'none'}), so the count does too")
        else:
            mistakes = num_params_mistakes(total, wpe, theirs.transformer.wte.weight.numel(), True)
            found = [sentence for value, sentence in mistakes
                     if value is not None and (got[0] == value != total or got[1] == value != total - wpe)]
            cause = found[0] if found else None
        fail(MODULE, f"GPT-2 124M: num_params(non_embedding=False) and (True) are {got[0]} and {got[1]}; "
                     f"GPT2LMHeadModel has {total} parameters (the tied weight once), so expected {total} and "
                     f"{total - wpe} (minus wpe).", cause=cause)


@pytest.mark.hf
@pytest.mark.parametrize("case", GPT2_CASES)
def test_from_hf_reproduces_gpt2(case):
    learner_gpt_first()
    theirs = hf_gpt2(seed=50, **GPT2_CASES[case])
    idx = randint(theirs.config.vocab_size, 2, theirs.config.n_positions - 3, seed=51)
    model = from_hf(theirs, f"GPT2LMHeadModel {case}")
    model.eval()
    expect_reproduces(model, theirs, idx, f"GPT2LMHeadModel {case}", likely=gpt2_mistakes(theirs, idx),
                      hint="This compares GPT.from_hf(the GPT-2) with the GPT-2's own logits: it isolates the config "
                           "mapping and the weight copying (your forward is compared with the reference's in "
                           "test_logits_match_reference).")


@pytest.mark.hf
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_from_hf_ties_like_the_hf_model(family, tie):
    learner_gpt_first()
    theirs = hf_gpt2(seed=52, tie_word_embeddings=tie) if family == "gpt2" else hf_llama(seed=52,
                                                                                       tie_word_embeddings=tie)
    model = from_hf(theirs, f"{family} with tie_word_embeddings={tie}")
    shared = model.lm_head.weight is model.transformer.wte.weight
    if shared != tie:
        text = (f"GPT.from_hf of a {family} model with tie_word_embeddings={tie} gave a GPT whose lm_head "
                f"{'is not' if tie else 'is'} tied to wte.")
        if model.config.tie_embeddings != tie:
            fail(MODULE, text, cause=f"your from_hf does not map tie_word_embeddings to tie_embeddings (your GPT's "
                                     f"config has tie_embeddings={model.config.tie_embeddings})")
        fail(MODULE, text + " Its config is right: see test_lm_head_is_wte_exactly_when_tied.",
             cause=tying_cause(model, tie))


@pytest.mark.hf
def test_from_hf_builds_without_dropout():
    learner_gpt_first()
    theirs = hf_gpt2(seed=53, resid_pdrop=0.5, embd_pdrop=0.5, attn_pdrop=0.5)  # GPT-2's checkpoints say 0.1
    idx = randint(theirs.config.vocab_size, 2, 9, seed=54)
    model = from_hf(theirs, "GPT2LMHeadModel with dropout 0.5")
    model.train()
    logits, _ = call(model, idx)
    want = hf_logits(theirs, idx)
    if not torch.allclose(logits, want, atol=1e-4, rtol=0):
        if torch.allclose(logits_of(model.eval(), idx), want, atol=1e-4, rtol=0):
            fail(MODULE, f"GPT.from_hf(GPT2LMHeadModel with dropout 0.5): in train mode its logits differ from the "
                         f"model's, in eval mode they agree; its config has dropout={model.config.dropout!r}. The "
                         f"contract builds the GPT with dropout=0.",
                 cause="GPT.from_hf copied GPT-2's dropout probabilities")
        expect_close(logits, want, "GPT.from_hf(GPT2LMHeadModel) in train mode", module=MODULE, atol=1e-4, rtol=0)


def llama_state(hf_model, config, qkv=("q", "k", "v"), fc=("gate", "up")):
    """A Llama state dict in the contract's names, with the q/k/v and gate/up orders given."""
    theirs = hf_model.state_dict()
    state = {"transformer.wte.weight": theirs["model.embed_tokens.weight"],
             "transformer.ln_f.weight": theirs["model.norm.weight"], "lm_head.weight": theirs["lm_head.weight"]}
    for i in range(config.n_layer):
        ours, src = f"transformer.h.{i}.", f"model.layers.{i}."
        state[ours + "ln_1.weight"] = theirs[src + "input_layernorm.weight"]
        state[ours + "ln_2.weight"] = theirs[src + "post_attention_layernorm.weight"]
        for name in ["weight", "bias"] if config.bias else ["weight"]:
            state[f"{ours}attn.c_attn.{name}"] = torch.cat([theirs[f"{src}self_attn.{p}_proj.{name}"] for p in qkv])
            state[f"{ours}attn.c_proj.{name}"] = theirs[f"{src}self_attn.o_proj.{name}"]
            state[f"{ours}mlp.c_fc.{name}"] = torch.cat([theirs[f"{src}mlp.{p}_proj.{name}"] for p in fc])
            state[f"{ours}mlp.c_proj.{name}"] = theirs[f"{src}mlp.down_proj.{name}"]
    return state


def llama_mistakes(hf_model, idx):
    """The known mistakes of loading a Llama, as a function of your model (see expect_reproduces)."""
    base = reference(MODULE).GPT.from_hf(hf_model).config

    def r(qkv=("q", "k", "v"), fc=("gate", "up"), **changes):
        config = dataclasses.replace(base, **changes)
        model = reference(MODULE).GPT(config)
        model.load_state_dict(llama_state(hf_model, config, qkv, fc), strict=True)
        return logits_of(model, idx)

    def likely(model):
        found = [(f"q, k, v were concatenated as {', '.join(order)}; c_attn's output is q, then k, then v "
                  f"(torch.cat([q_proj, k_proj, v_proj]))", functools.partial(r, qkv=order))
                 for order in itertools.permutations("qkv") if order != ("q", "k", "v")]
        found.append(("gate and up are swapped: c_fc's output is (gate, up), so torch.cat([gate_proj, up_proj])",
                      lambda: r(fc=("up", "gate"))))
        if base.rope_base != 10000.0:
            found += config_mistake(
                model, "rope_base", 10000.0,
                "rope_theta is ignored: map config.rope_parameters['rope_theta'] (transformers 5; rope_theta in 4.x) "
                "to rope_base",
                "rope_base is ignored by your GPT's forward: from_hf set rope_base={value}, but the logits are those "
                "of rope_base 10000 (test_logits_use_rope_base checks the forward)", lambda: r(rope_base=10000.0))
        for eps in (1e-5, 1e-6):
            if base.norm_eps != eps:
                found += config_mistake(model, "norm_eps", eps, "rms_norm_eps is not mapped to norm_eps",
                                        "your GPT's norms ignore config.norm_eps (from_hf set norm_eps={value}, but "
                                        "the logits are those of " + f"{eps:g})", lambda eps=eps: r(norm_eps=eps))
        if base.bias and getattr(getattr(model, "config", None), "bias", None) is False:
            found.append(("attention_bias is not mapped to bias: the q, k, v, o (and MLP) biases were left out",
                          lambda: r(bias=False)))
        return found
    return likely


LLAMA_CASES = {  # LlamaConfig fields: grouped-query, multi-query and multi-head; bias; tying; rope_theta; eps
    "gqa-untied-theta500-eps1e-3": dict(rope_theta=500.0, rms_norm_eps=1e-3),
    "mqa-bias-tied-theta2000": dict(vocab_size=50, hidden_size=48, intermediate_size=64, num_attention_heads=6,
                                    num_key_value_heads=1, rope_theta=2000.0, attention_bias=True, mlp_bias=True,
                                    tie_word_embeddings=True, rms_norm_eps=1e-5, max_position_embeddings=20),
    "mha-untied-theta100-eps1e-2": dict(hidden_size=32, intermediate_size=40, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2, rope_theta=100.0,
                                        rms_norm_eps=1e-2, max_position_embeddings=12),
}


@pytest.mark.hf
@pytest.mark.parametrize("case", LLAMA_CASES)
def test_from_hf_reproduces_llama(case):
    learner_gpt_first()
    theirs = hf_llama(seed=60, **LLAMA_CASES[case])
    idx = randint(theirs.config.vocab_size, 2, theirs.config.max_position_embeddings - 2, seed=61)
    model = from_hf(theirs, f"LlamaForCausalLM {case}")
    model.eval()
    expect_reproduces(model, theirs, idx, f"LlamaForCausalLM {case}", likely=llama_mistakes(theirs, idx),
                      hint="This compares GPT.from_hf(the Llama) with the Llama's own logits: it isolates the config "
                           "mapping and the weight copying (your forward is compared with the reference's in "
                           "test_logits_match_reference).")


@pytest.mark.hf
@pytest.mark.parametrize("bias", ["attention-only", "mlp-only"])
def test_from_hf_llama_with_mixed_biases_is_reproduced_or_refused(bias):
    learner_gpt_first()
    theirs = hf_llama(seed=62, attention_bias=bias == "attention-only", mlp_bias=bias == "mlp-only")
    idx = randint(theirs.config.vocab_size, 2, 9, seed=63)
    try:
        model = mine().GPT.from_hf(theirs)
    except ValueError:
        return  # GPT has one bias flag: refusing is right
    except NotImplementedError:
        raise
    except Exception as e:  # noqa: BLE001
        fail(MODULE, f"GPT.from_hf(Llama with {bias} biases) raised {type(e).__name__}: {e}; either reproduce it "
                     f"or raise ValueError saying that GPT has one bias flag for attention and MLP.",
             cause="GPT.from_hf crashes on a Llama whose attention_bias and mlp_bias differ (instead of refusing it "
                   "with ValueError)")
    expect_reproduces(model, theirs, idx, f"LlamaForCausalLM with {bias} biases",
                      hint="This Llama's attention_bias and mlp_bias differ, and GPT has one bias flag: it is "
                           "reproduced exactly or refused with ValueError.")


@pytest.mark.hf
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("device", devices())
def test_from_hf_gives_float32_on_the_hf_device(family, dtype, device):
    learner_gpt_first()
    theirs = (hf_gpt2 if family == "gpt2" else hf_llama)(seed=64)
    idx = randint(theirs.config.vocab_size, 2, 9, seed=65)
    # The float32 model with the same (rounded) weights; a fresh one keeps Llama's float32 rope tables.
    reference_copy = type(theirs)(theirs.config).eval()
    reference_copy.load_state_dict({k: v.to(dtype).float() for k, v in theirs.state_dict().items()})
    converted = theirs.to(device=device, dtype=dtype)
    model = from_hf(converted, f"{str(dtype)[6:]} {family} on {device}")
    if not isinstance(model, torch.nn.Module):
        fail(MODULE, f"GPT.from_hf returned {type(model).__name__}.", cause="GPT.from_hf does not return a GPT")
    if not all(p.dtype == torch.float32 for p in model.parameters()):
        fail(MODULE, f"GPT.from_hf of a {str(dtype)[6:]} {family} model has parameters of dtype "
                     f"{sorted({str(p.dtype)[6:] for p in model.parameters()})}: build the GPT in float32, then load "
                     f"the weights.",
             cause="GPT.from_hf's model is not float32 whatever the Hugging Face model's dtype")
    expect_reproduces(model, reference_copy.to(device), idx, f"{str(dtype)[6:]} {family} on {device}")


REFUSED = {  # case -> (family, config fields, words one of which the ValueError must contain)
    "gpt2-gelu-erf": ("gpt2", dict(activation_function="gelu"), ("gelu",)),
    "gpt2-relu": ("gpt2", dict(activation_function="relu"), ("relu",)),
    "gpt2-inverse-layer-idx": ("gpt2", dict(scale_attn_by_inverse_layer_idx=True), ("inverse layer",)),
    "gpt2-unscaled-attention": ("gpt2", dict(scale_attn_weights=False), ("scale",)),
    "llama-gelu": ("llama", dict(hidden_act="gelu"), ("gelu",)),
    "llama-rope-llama3": ("llama", dict(rope_parameters=dict(rope_type="llama3", rope_theta=500.0, factor=8.0,
                                                            low_freq_factor=1.0, high_freq_factor=4.0,
                                                            original_max_position_embeddings=8)), ("llama3",)),
    "llama-rope-linear": ("llama", dict(rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=2.0)),
                          ("linear",)),
    "llama-head-dim": ("llama", dict(head_dim=16), ("head dim",)),
}


@pytest.mark.hf
@pytest.mark.parametrize("case", REFUSED)
def test_from_hf_refuses_what_gpt_cannot_reproduce(case):
    learner_gpt_first()
    family, fields, words = REFUSED[case]
    theirs = hf_gpt2(seed=66, **fields) if family == "gpt2" else hf_llama(seed=66, **fields)
    setting = ", ".join(f"{k}={v!r}" for k, v in fields.items())
    try:
        mine().GPT.from_hf(theirs)
    except ValueError as e:
        text = str(e).lower().replace("_", " ")
        if not any(w in text for w in words):
            fail(MODULE, f"GPT.from_hf({family} with {setting}) raised ValueError({str(e)!r}); say which setting "
                         f"it is (e.g. {words[0]!r}).",
                 cause="the ValueError does not name what GPT cannot reproduce")
        return
    except NotImplementedError:
        raise
    except Exception as e:  # noqa: BLE001
        fail(MODULE, f"GPT.from_hf({family} with {setting}) raised {type(e).__name__} ({e}): raise ValueError "
                     f"naming {words[0]!r}.",
             cause=f"GPT.from_hf does not refuse a {family} with {setting}, which GPT cannot reproduce, with "
                   f"ValueError")
    fail(MODULE, f"GPT.from_hf({family} with {setting}) returned a model (its logits would differ): raise ValueError "
                 f"naming the setting.",
         cause=f"GPT.from_hf accepted a {family} with {setting}, which GPT cannot reproduce")


class OtherCausalLM(torch.nn.Module):
    """A stand-in for a model type GPT does not read (a GPT-NeoX, say)."""

    def __init__(self):
        super().__init__()
        self.config = type("GPTNeoXConfig", (), {"model_type": "gpt_neox"})()
        self.lm_head = torch.nn.Linear(4, 8, bias=False)


def test_from_hf_refuses_other_model_types():
    learner_gpt_first()
    other = OtherCausalLM()
    try:
        mine().GPT.from_hf(other)
    except ValueError as e:
        if not any(w in str(e) for w in ("gpt_neox", "OtherCausalLM", "GPTNeoX")):
            fail(MODULE, f"GPT.from_hf(a gpt_neox model) raised ValueError({str(e)!r}).",
                 cause="the ValueError does not name the model's type")
        return
    except NotImplementedError:
        raise
    except Exception as e:  # noqa: BLE001
        fail(MODULE, f"GPT.from_hf(a gpt_neox model) raised {type(e).__name__} ({e}).",
             cause="GPT.from_hf does not raise ValueError naming it for a model other than GPT2LMHeadModel or "
                   "LlamaForCausalLM")
    fail(MODULE, "GPT.from_hf(a gpt_neox model) returned a model; it reads GPT2LMHeadModel and LlamaForCausalLM "
                 "only.", cause="GPT.from_hf does not raise ValueError naming it for a model of another type")


@pytest.mark.hf
def test_from_pretrained_loads_a_local_directory(tmp_path):
    learner_gpt_first()
    theirs = hf_gpt2(seed=67, n_inner=48, layer_norm_epsilon=1e-3)
    theirs.save_pretrained(tmp_path)
    idx = randint(theirs.config.vocab_size, 2, 9, seed=68)
    model = mine().GPT.from_pretrained(str(tmp_path))
    model.eval()
    expect_reproduces(model, theirs, idx, f"GPT.from_pretrained({tmp_path.name!r})")


@pytest.mark.hf
def test_pretrained_gpt2_matches_hugging_face(monkeypatch):
    learner_gpt_first()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import try_to_load_from_cache

    config_file = try_to_load_from_cache("gpt2", "config.json")
    folder = os.path.dirname(config_file) if isinstance(config_file, str) else None
    weights = ("model.safetensors", "pytorch_model.bin")
    if folder is None or not any(os.path.exists(os.path.join(folder, w)) for w in weights):
        pytest.skip("the gpt2 checkpoint is not in the local Hugging Face cache (download it once to run this check)")
    theirs = hf().GPT2LMHeadModel.from_pretrained(folder, local_files_only=True).eval()
    model = mine().GPT.from_pretrained(folder)
    model.eval()
    idx = randint(theirs.config.vocab_size, 1, 12, seed=69)
    logits, _ = call(model, idx)
    expect_close(logits, hf_logits(theirs, idx), "GPT.from_pretrained('gpt2') against GPT2LMHeadModel",
                 module=MODULE, inputs=dict(idx=idx), model=True)


def test_loss_accepts_targets_that_are_not_contiguous():
    config = small_config()
    model, ref = mine().GPT(config), reference(MODULE).GPT(config)
    load_reference_weights(model, ref, "GPT", module=MODULE)
    windows = randint(config.vocab_size, 2, 11, seed=71)
    idx, targets = windows[:, :-1], windows[:, 1:]  # a view that is not contiguous, as get_batch's y can be
    try:
        logits, loss = model(idx, targets)
    except RuntimeError as error:
        fail(MODULE, f"forward(idx, targets) with targets = windows[:, 1:] (not contiguous) raised: {error}. "
                     f"Flatten with targets.reshape(-1); .view(-1) needs a contiguous tensor.",
             cause="the targets are flattened with .view(-1), which fails for targets that are not contiguous"
             if "view" in str(error) else None)
    want = F.cross_entropy(logits.detach().reshape(-1, logits.size(-1)).double(), targets.reshape(-1),
                           ignore_index=-1)
    expect_close(loss.detach().double(), want, "the loss for targets that are not contiguous vs cross_entropy of "
                 "your logits", module=MODULE, inputs=dict(idx=idx, targets=targets), atol=2e-5, rtol=1e-4,
                 hint="The targets here are a view that is not contiguous (windows[:, 1:]), as get_batch's y can be.")


@pytest.mark.parametrize("name", ["gpt2", "gqa-rope-swiglu"])
def test_forward_makes_positions_on_the_device_of_idx(name):
    # a 'meta' model and idx have shapes but no data: positions or rotary tables made on the CPU show as a
    # device mismatch on any machine
    config = variant_config(name)
    mine().GPT(config)  # not started stops here
    with torch.device("meta"):
        model = mine().GPT(config)
    seen = []  # the devices of what wpe is called with (an embedding on 'meta' accepts CPU indices silently)
    wpe = getattr(model.transformer, "wpe", None) if hasattr(model, "transformer") else None
    if isinstance(wpe, torch.nn.Module):
        wpe.register_forward_pre_hook(lambda module, args: seen.append(args[0].device.type))
    try:
        logits, _ = model(torch.zeros(2, 5, dtype=torch.long, device="meta"))
    except RuntimeError as error:
        if "device" not in str(error):
            pytest.skip(f"GPT.forward reads tensor values, which 'meta' tensors do not have ({error})")
        fail(MODULE, f"forward on a model and idx of device 'meta' raised: {error}. Make the positions "
                     f"(torch.arange(T, device=idx.device)) and the rotary tables on idx's device.",
             cause="your forward makes its positions or rotary tables on another device than idx's")
    if any(device != "meta" for device in seen):
        fail(MODULE, f"GPT({describe(config)}) on 'meta': make them with torch.arange(T, device=idx.device).",
             cause=f"your forward looks up wpe with positions on {sorted(set(seen))}, not on idx's device")
    if logits.device.type != "meta":
        fail(MODULE, f"GPT({describe(config)}) on 'meta'.",
             cause=f"your forward on a 'meta' model and idx gave logits on {logits.device}")


@pytest.mark.hf
def test_from_hf_llama_maps_max_position_embeddings_to_block_size():
    learner_gpt_first()
    model = from_hf(hf_llama(seed=73, max_position_embeddings=12), "LlamaForCausalLM")
    with torch.no_grad():
        model(randint(61, 1, 12, seed=74))  # block_size tokens run
    try:
        with torch.no_grad():
            model(randint(61, 1, 13, seed=74))
    except ValueError:
        return
    block_size = model.config.block_size
    fail(MODULE, f"GPT.from_hf(a LlamaForCausalLM with max_position_embeddings=12) accepted 13 tokens; its config "
                 f"has block_size={block_size}.",
         cause=("your from_hf does not map max_position_embeddings to block_size (as n_positions for GPT-2)"
                if block_size != 12 else "your forward does not refuse a sequence longer than block_size"))
