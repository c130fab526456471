"""05 block: the pre-norm transformer block (exercises/block.py).

The learner's Block is built from the learner's own norms, attention and MLP (relative
imports), so a mistake in 01, 03 or 04 shows here too; fix those first. Every
comparison loads the reference Block's perturbed weights into the learner's, so ln_1
and ln_2 hold different weights and a swapped or missing piece changes the output.
"""

import contextlib

import pytest
import torch
import torch.nn as nn

from harness import (
    CONFIG_VARIANTS, describe_config, expect_close, expect_gradients_everywhere, fail, learner,
    load_reference_weights, perturb_parameters, randn, reference, seeded, substitute, tolerance, variant_config,
)

MODULE = "block"
VARIANTS = list(CONFIG_VARIANTS)
T = 7


def mine():
    return learner(MODULE)


def rotary_for(config, T, start=0):
    """(cos, sin) for positions start .. start + T - 1, or None without rope."""
    if config.pos_emb != "rope":
        return None
    cos, sin = reference("rotary").rotary_cos_sin(start + T, config.head_dim, config.rope_base)
    return cos[start:], sin[start:]


def reference_block(config, seed=1, dtype=torch.float32):
    with seeded(seed):
        block = reference(MODULE).Block(config, layer_idx=1)
    return perturb_parameters(block, seed=seed, scale=0.2).to(dtype)


def learner_block(config, ref):
    return load_reference_weights(mine().Block(config, layer_idx=1).to(ref.ln_1.weight.dtype), ref, "Block",
                                  module=MODULE)


def block_mistakes(ref, config, x, rotary):
    """Outputs of wrong wirings of the reference's own (loaded) sub-layers."""
    ln1, ln2, mlp = ref.ln_1, ref.ln_2, ref.mlp
    attn = lambda h, rot=rotary: ref.attn(h, rotary=rot)  # noqa: E731

    def pre_norm(a_norm=ln1, m_norm=ln2, a=attn, m=mlp):
        h = x + a(a_norm(x))
        return h + m(m_norm(h))

    def post_norm():
        h = ln1(x + attn(x))
        return ln2(h + mlp(h))

    def sandwich():
        h = x + ln1(attn(x))
        return h + ln2(mlp(h))

    def no_attn_residual():
        h = attn(ln1(x))
        return h + mlp(ln2(h))

    def no_mlp_residual():
        h = x + attn(ln1(x))
        return mlp(ln2(h))

    def no_residuals():
        return mlp(ln2(attn(ln1(x))))

    def mlp_first(norm_a=ln2, norm_m=ln1):
        h = x + mlp(norm_m(x))
        return h + attn(norm_a(h))

    def parallel():
        return x + attn(ln1(x)) + mlp(ln2(x))

    def normalised_residual():
        h = ln1(x)
        h = h + attn(h)
        g = ln2(h)
        return g + mlp(g)

    swapped = "ln_1 and ln_2 are swapped: ln_1 goes before attn, ln_2 before mlp"
    mistakes = [
        ("post-norm: the norm is applied after the residual add, x = ln(x + attn(x)); pre-norm normalises the "
         "input of each sub-layer only: x = x + attn(ln_1(x))", post_norm),
        ("the norm is applied to the sub-layer's output, x + ln(attn(x)); it belongs on its input: "
         "x = x + attn(ln_1(x))", sandwich),
        ("the attention residual is missing: x = x + attn(ln_1(x)), not x = attn(ln_1(x))", no_attn_residual),
        ("the MLP residual is missing: x = x + mlp(ln_2(x)), not x = mlp(ln_2(x))", no_mlp_residual),
        ("both residual connections are missing: each sub-layer's output is added to x", no_residuals),
        (swapped, lambda: pre_norm(a_norm=ln2, m_norm=ln1)),
        ("the MLP runs before the attention; attention comes first: x = x + attn(ln_1(x)), then "
         "x = x + mlp(ln_2(x))", mlp_first),
        ("the MLP runs before the attention; attention comes first: x = x + attn(ln_1(x)), then "
         "x = x + mlp(ln_2(x))", lambda: mlp_first(norm_a=ln1, norm_m=ln2)),
        ("the final norm is applied inside the block (ln_2 on the output); the block returns the residual "
         "stream unnormalised: the final norm (ln_f) comes once, after the last block, in GPT",
         lambda: ln2(pre_norm())),
        ("the final norm is applied inside the block (ln_1 on the output); the block returns the residual "
         "stream unnormalised: the final norm (ln_f) comes once, after the last block, in GPT",
         lambda: ln1(pre_norm())),
        ("the MLP reads the block's input (a parallel block); it reads the stream after the attention "
         "residual: x = x + attn(ln_1(x)) first, then x = x + mlp(ln_2(x)) with the new x", parallel),
        ("the residual adds the normalised x: x = x + attn(ln_1(x)) adds to x itself, not to ln_1(x)",
         normalised_residual),
        ("ln_1 is not applied: attn reads ln_1(x)", lambda: pre_norm(a_norm=lambda h: h)),
        ("ln_2 is not applied: mlp reads ln_2(x)", lambda: pre_norm(m_norm=lambda h: h)),
        ("ln_1 is used before the MLP too; the MLP reads ln_2(x)", lambda: pre_norm(m_norm=ln1)),
        ("ln_2 is used before the attention too; attention reads ln_1(x)", lambda: pre_norm(a_norm=ln2)),
    ]
    if rotary is not None:
        mistakes.append(("rotary is not passed on to attn: self.attn(self.ln_1(x), rotary=rotary, kv_cache=kv_cache)",
                         lambda: pre_norm(a=lambda h: attn(h, None))))
    if config.norm == "rmsnorm":
        for eps in (config.norm_eps, 1e-5):
            mistakes.append(("ln_1 and ln_2 are LayerNorms but config.norm is 'rmsnorm': build them with "
                             "make_norm(config)",
                             lambda eps=eps: pre_norm(a_norm=layer_norm_instead_eps(ln1, eps),
                                                      m_norm=layer_norm_instead_eps(ln2, eps))))
        if config.norm_eps != 1e-6:
            mistakes.append(("the norms ignore config.norm_eps (RMSNorm's default 1e-6 is used): build them with "
                             "make_norm(config)",
                             lambda: pre_norm(a_norm=rms_eps_norm(ln1, 1e-6), m_norm=rms_eps_norm(ln2, 1e-6))))
    elif config.norm_eps != 1e-5:
        mistakes.append(("the norms ignore config.norm_eps (LayerNorm's default 1e-5 is used): build them with "
                         "make_norm(config)",
                         lambda: pre_norm(a_norm=eps_norm(ln1, 1e-5), m_norm=eps_norm(ln2, 1e-5))))
    return mistakes


def layer_norm_instead_eps(ln, eps):
    norms = reference("norms")
    return lambda h: norms.layer_norm(h, ln.weight, None, eps=eps)


def eps_norm(ln, eps):
    norms = reference("norms")
    return lambda h: norms.layer_norm(h, ln.weight, ln.bias, eps=eps)


def rms_eps_norm(rn, eps):
    norms = reference("norms")
    return lambda h: norms.rms_norm(h, rn.weight, eps=eps)


def upstream_cause(config, ref, x, rotary):
    """Your 01-04 pieces, each alone (built from config, holding the reference block's weights, with the reference's
    versions of the other exercises' functions it calls) on the input the reference block gives it: a cause naming
    those that differ from the reference's, or None. A Block is made of them, so one that is wrong makes the block
    wrong whatever Block.forward does."""
    atol, rtol = tolerance(x.dtype)
    with torch.no_grad():
        h1 = ref.ln_1(x)
        h = x + ref.attn(h1, rotary=rotary)
        h2 = ref.ln_2(h)
        heads = randn(x.size(0), config.n_head, x.size(1), config.head_dim, seed=99, dtype=x.dtype)
    norms, rotary_mod, attention, mlp = (learner(m) for m in ("norms", "rotary", "attention", "mlp"))
    ref_norms, ref_rotary, ref_mlp = reference("norms"), reference("rotary"), reference("mlp")
    norm_name = "RMSNorm" if config.norm == "rmsnorm" else "LayerNorm"

    def norm():
        if config.norm == "rmsnorm":
            return norms.RMSNorm(config.n_embd, eps=config.norm_eps)
        return norms.LayerNorm(config.n_embd, bias=config.bias, eps=config.norm_eps)

    def attn():
        return attention.CausalSelfAttention(config, layer_idx=1)

    def loaded(build, theirs):
        return lambda *args, **kwargs: load_into(build, theirs)(*args, **kwargs)

    isolated_attention = dict(apply_rotary=ref_rotary.apply_rotary, rms_norm=ref_norms.rms_norm)
    isolated_mlp = dict(gelu_tanh=ref_mlp.gelu_tanh, relu_squared=ref_mlp.relu_squared)
    checks = [  # (exercise, what, yours, theirs, args, kwargs, substitutes)
        ("01 norms", f"{norm_name} (ln_1)", loaded(norm, ref.ln_1), ref.ln_1, (x,), {}, None),
        ("01 norms", f"{norm_name} (ln_2)", loaded(norm, ref.ln_2), ref.ln_2, (h,), {}, None),
    ]
    if config.qk_norm:
        checks.append(("01 norms", "rms_norm (for qk_norm)", norms.rms_norm, ref_norms.rms_norm, (heads,),
                       dict(eps=config.norm_eps), None))
    if rotary is not None:
        checks.append(("02 rotary", "apply_rotary", rotary_mod.apply_rotary, ref_rotary.apply_rotary,
                       (heads, *rotary), {}, None))
    checks.append(("03 attention", "CausalSelfAttention", loaded(attn, ref.attn), ref.attn, (h1,),
                   dict(rotary=rotary), (attention, isolated_attention)))
    if config.mlp in ("gelu", "relu2"):
        name = "gelu_tanh" if config.mlp == "gelu" else "relu_squared"
        with torch.no_grad():
            pre = ref.mlp.c_fc(h2)
        checks.append(("04 mlp", name, getattr(mlp, name), getattr(ref_mlp, name), (pre,), {}, None))
    checks.append(("04 mlp", "MLP", loaded(lambda: mlp.MLP(config), ref.mlp), ref.mlp, (h2,), {}, (mlp, isolated_mlp)))

    wrong, exercises = [], []
    for exercise, what, yours, theirs, args, kwargs, subs in checks:
        try:
            with torch.no_grad(), (substitute(subs[0], **subs[1]) if subs else contextlib.nullcontext()):
                got = yours(*args, **kwargs)
            with torch.no_grad():
                want = theirs(*args, **kwargs)
        except NotImplementedError:
            raise  # an unfinished exercise: this test is not started yet
        except Exception as error:  # noqa: BLE001 - a piece that cannot even run is wrong
            got, want = error, None
        if isinstance(got, Exception) or not (isinstance(got, torch.Tensor) and got.shape == want.shape
                                              and torch.allclose(got.double(), want.double(), atol=atol, rtol=rtol)):
            wrong.append(f"your {what} from {exercise} " + (f"raised {type(got).__name__}" if isinstance(got, Exception)
                                                             else "differs from the reference's"))
            exercises.append(exercise)
    if not wrong:
        return None
    return (f"{'; and '.join(wrong)} (each checked alone, with the reference's weights, on the input the block "
            f"gives it): fix {' and '.join(dict.fromkeys(exercises))} first; its own tests say what is wrong")


def load_into(build, theirs):
    """build() holding theirs' weights, in theirs' dtype."""
    module = build().to(next(theirs.parameters()).dtype)
    module.load_state_dict(theirs.state_dict(), strict=True)
    return module


# --- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_block_parameter_names(variant):
    config = variant_config(variant)
    block = mine().Block(config)
    ref = reference(MODULE).Block(config)
    have, want = set(block.state_dict()), set(ref.state_dict())
    if have == want:
        return
    parts = lambda keys: sorted({k.split(".")[0] for k in keys})  # noqa: E731
    text = (f"Block({describe_config(config)}) has parameters under {parts(have)}; the contract's are under "
            f"['attn', 'ln_1', 'ln_2', 'mlp'].")
    extra, missing = sorted(have - want), sorted(want - have)
    if extra:
        text += f" Not in the contract: {', '.join(extra)}."
    if missing:
        text += f" Missing: {', '.join(missing)}."
    causes = []
    others = sorted({k.split(".")[0] for k in extra} - {"ln_1", "attn", "ln_2", "mlp"})
    if others:
        causes.append(f"the block holds {', '.join(others)} besides ln_1, attn, ln_2 and mlp; a block holds nothing "
                      f"else (the final norm, ln_f, belongs to GPT, after the last block)")
    norm_keys = [k for k in extra + missing if k.startswith(("ln_1.", "ln_2."))]
    if norm_keys:
        causes.append(f"ln_1 and ln_2 do not have the parameters config asks for ({', '.join(norm_keys)} differ; "
                      f"norm={config.norm!r}, bias={config.bias}): build them with make_norm(config), which picks "
                      f"LayerNorm or RMSNorm and the bias")
    fail(MODULE, text, cause="; and ".join(causes) or None)


# --- against the reference ---------------------------------------------------------------------


ISOLATED = ("Your 01, 03 and 04 modules, built alone with these weights, match the reference on this input, so the "
            "difference is in Block itself: x = x + attn(ln_1(x), rotary=rotary, kv_cache=kv_cache); "
            "x = x + mlp(ln_2(x)).")


def expect_block(out, ref, config, x, rotary, what):
    """out against the reference block: a known wrong wiring, else a wrong 01/03/04 module, names the cause."""
    upstream = upstream_cause(config, ref, x, rotary)
    expect_close(out, ref(x, rotary=rotary), what, module=MODULE, inputs=dict(x=x, config=config),
                 likely=block_mistakes(ref, config, x, rotary), cause=upstream, hint=None if upstream else ISOLATED)


@pytest.mark.parametrize("variant", VARIANTS)
def test_block_matches_reference(variant):
    config = variant_config(variant)
    ref = reference_block(config, seed=2)
    block = learner_block(config, ref)
    x = randn(2, T, config.n_embd, seed=3)
    rotary = rotary_for(config, T)
    with torch.no_grad():
        out = block(x, rotary=rotary) if rotary is not None else block(x)  # without rotary: forward's default
        expect_block(out, ref, config, x, rotary, "Block" + (" with rotary" if rotary else ""))


@pytest.mark.parametrize("variant", ["gpt2", "gqa-rope-swiglu"])
def test_block_matches_reference_in_float64(variant):
    config = variant_config(variant)
    ref = reference_block(config, seed=4, dtype=torch.float64)
    block = learner_block(config, ref)
    x = randn(1, 5, config.n_embd, seed=5, dtype=torch.float64)
    rotary = rotary_for(config, 5)
    with torch.no_grad():
        out = block(x, rotary=rotary)
        expect_block(out, ref, config, x, rotary, "Block in float64")


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_block_norms_use_config_norm_eps(norm):
    # norm_eps = 0.5, far from either default (1e-5, 1e-6): a norm built without it is far off
    variant = "gpt2" if norm == "layernorm" else "gqa-rope-swiglu"
    config = variant_config(variant, norm_eps=0.5)
    ref = reference_block(config, seed=17)
    block = learner_block(config, ref)
    x = randn(2, T, config.n_embd, seed=18)
    rotary = rotary_for(config, T)
    with torch.no_grad():
        out = block(x, rotary=rotary)
        expect_block(out, ref, config, x, rotary, "Block with norm_eps=0.5")


@pytest.mark.parametrize("variant", ["gqa-rope-swiglu", "mqa-qknorm-relu2"])
def test_block_passes_rotary_to_attention(variant):
    # Tables for positions 3 .. 3 + T - 1: the block must hand attention exactly the (cos, sin) it was given.
    config = variant_config(variant)
    ref = reference_block(config, seed=6)
    block = learner_block(config, ref)
    x = randn(2, T, config.n_embd, seed=7)
    rotary = rotary_for(config, T, start=3)
    with torch.no_grad():
        out = block(x, rotary=rotary)
        without = block(x, rotary=None)
        if torch.allclose(out, without, atol=1e-6):
            # your attention alone, with the same weights: does it use rotary?
            attn = learner("attention").CausalSelfAttention(config, layer_idx=1)
            attn.load_state_dict(ref.attn.state_dict(), strict=True)
            h = ref.ln_1(x)
            if torch.allclose(attn(h, rotary=rotary), attn(h, rotary=None), atol=1e-6):
                fail(MODULE, "Block gives the same output with and without rotary.",
                     cause="your CausalSelfAttention (03 attention) ignores rotary: alone, it gives the same output "
                           "with and without it; fix 03 first")
            fail(MODULE, f"Block({describe_config(config)}) gives the same output with and without rotary, while "
                         f"your attention alone does not.",
                 cause="rotary is not passed on to attention: self.attn(self.ln_1(x), rotary=rotary, kv_cache=kv_cache)")
        expect_block(out, ref, config, x, rotary, "Block with rotary for positions 3..9")


class AttentionSpy(nn.Module):
    """Stands in for block.attn: records the kv_cache it is given and returns zeros."""

    def __init__(self):
        super().__init__()
        self.caches = []

    def forward(self, x, rotary=None, kv_cache=None):
        self.caches.append(kv_cache)
        return torch.zeros_like(x)


def test_block_passes_kv_cache_to_attention():
    config = variant_config("gpt2")
    block = mine().Block(config)
    block.attn = AttentionSpy()
    x = randn(1, 3, config.n_embd, seed=8)
    cache = object()  # exercise 10's KVCache; the block only hands it on
    block(x, kv_cache=cache)
    if not block.attn.caches or block.attn.caches[-1] is not cache:
        fail(MODULE, "Block(x, kv_cache=cache) did not hand the cache to attention (exercise 10's KV cache lives there).",
             cause="kv_cache is not passed on to attention: self.attn(self.ln_1(x), rotary=rotary, kv_cache=kv_cache)")


# --- properties ------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["gpt2", "mqa-qknorm-relu2"])
def test_block_is_causal(variant):
    config = variant_config(variant)
    block = perturb_parameters(mine().Block(config), seed=9, scale=0.2)
    x = randn(2, T, config.n_embd, seed=10)
    y = x.clone()
    y[:, 4:] += randn(2, T - 4, config.n_embd, seed=11)
    rotary = rotary_for(config, T)
    with torch.no_grad():
        out_x, out_y = block(x, rotary=rotary), block(y, rotary=rotary)
    if not torch.allclose(out_x[:, :4], out_y[:, :4], atol=1e-5, rtol=1e-5):
        fail(MODULE, "The norms and the MLP act on each position alone; attention is causal (03).",
             cause="the block sees the future: changing x at positions 4 and later changed its output at positions 0-3")


@pytest.mark.parametrize("variant", VARIANTS)
def test_block_does_not_modify_its_input(variant):
    config = variant_config(variant)
    block = perturb_parameters(mine().Block(config), seed=12)
    x = randn(2, T, config.n_embd, seed=13)
    before = dict(x=x.clone())
    with torch.no_grad():
        block(x, rotary=rotary_for(config, T))
    if not torch.equal(before["x"], x):
        fail(MODULE, "An in-place operation such as x += ... writes into the caller's tensor; x = x + self.attn(...) "
                     "makes a new one.", cause="Block modified its input x in place")


@pytest.mark.parametrize("variant", VARIANTS)
def test_block_gradients_reach_every_parameter_and_the_input(variant):
    config = variant_config(variant)
    block = perturb_parameters(mine().Block(config), seed=14, scale=0.2)
    x = randn(2, T, config.n_embd, seed=15).requires_grad_()
    out = block(x, rotary=rotary_for(config, T))
    expect_gradients_everywhere(block, (out * randn(*out.shape, seed=16)).sum(), "Block", module=MODULE)
    if x.grad is None or not torch.any(x.grad != 0):
        fail(MODULE, "Keep the computation in autograd.", cause="Block: no gradient reaches the input x")
