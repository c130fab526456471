"""03 attention: causal_attention, repeat_kv, CausalSelfAttention (exercises/attention.py).

Checked against the reference, against torch's F.scaled_dot_product_attention
(off limits inside the exercise, fine for computing the expected answer), and
against Hugging Face Llama's repeat_kv and LlamaAttention; plus causality,
which needs no reference at all.
"""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from harness import (
    diagnose, expect_close, expect_gradients_everywhere, expect_unchanged, fail, forbid, learner,
    load_reference_weights, perturb_parameters, randn, reference, seeded, small_config, substitute, tolerance,
    variant_config,
)

MODULE = "attention"
OFF_LIMITS = ("write the softmax(QKᵀ/√d)V yourself; F.scaled_dot_product_attention is for later (exercise 14 "
              "swaps it in).")
BUILTINS = [
    (F, "scaled_dot_product_attention"), (torch._C._nn, "scaled_dot_product_attention"),
    (F, "multi_head_attention_forward"), (nn.MultiheadAttention, "forward"),
]


def mine():
    return learner(MODULE)


def ref():
    return reference(MODULE)


def run(fn, *args, **kwargs):
    """Call the learner's code with F.scaled_dot_product_attention refusing to run, and with the reference's
    apply_rotary (02) and rms_norm (01) in place of yours, so that these tests check 03's own code (02 and 01
    have tests of their own; code that reaches those functions another way is unaffected)."""
    with forbid(MODULE, OFF_LIMITS, BUILTINS, learner_module=mine()), \
            substitute(mine(), apply_rotary=reference("rotary").apply_rotary, rms_norm=reference("norms").rms_norm):
        return fn(*args, **kwargs)


# --- known mistakes -------------------------------------------------------------------------


def attend(q, k, v, *, scale="sqrt", mask="causal", dim=-1, fill=-math.inf, after=False):
    """causal attention in float64 with one knob turned."""
    q, k, v = q.double(), k.double(), v.double()
    Tq, Tk, D = q.size(-2), k.size(-2), q.size(-1)
    scores = q @ k.transpose(-2, -1)
    scores = {"sqrt": scores / math.sqrt(D), "none": scores, "D": scores / D, "times": scores * math.sqrt(D),
              "T": scores / math.sqrt(Tq), "H": scores / math.sqrt(q.size(1)), "output": scores}[scale]
    ones = torch.ones(Tq, Tk, dtype=torch.bool)
    visible = {
        "causal": ones.tril(diagonal=Tk - Tq),
        "no offset": ones.tril(diagonal=0),
        "upper": ones.triu(diagonal=Tk - Tq),
        "future only": ones.triu(diagonal=Tk - Tq + 1),
        "strict": ones.tril(diagonal=Tk - Tq - 1),
        "none": ones,
    }[mask]
    if after:
        weights = F.softmax(scores, dim=-1) * visible
    else:
        weights = F.softmax(scores.masked_fill(~visible, fill), dim=dim)
    out = weights @ v
    return out / math.sqrt(D) if scale == "output" else out


ATTENTION_MISTAKES = [
    ("the scores are not scaled: divide q @ kᵀ by sqrt(D) before the softmax (the sqrt(D) scale is missing)",
     dict(scale="none")),
    ("the scores are divided by D; the scale is 1/sqrt(D)", dict(scale="D")),
    ("the scores are multiplied by sqrt(D); divide them by it", dict(scale="times")),
    ("the scores are divided by sqrt(Tq), q.size(-2), the number of queries; D is the last dim, q.size(-1)",
     dict(scale="T")),
    ("the scores are divided by the square root of q.size(1), the number of heads; D is the last dim, q.size(-1)",
     dict(scale="H")),
    ("the scale is applied after the softmax (or to the output); it divides the scores q @ kᵀ, before the softmax",
     dict(scale="output")),
    ("the mask is drawn the wrong way: each query sees itself and the future (the upper triangle, triu); "
     "it must see itself and the past (torch.tril)", dict(mask="upper")),
    ("the mask hides the past and shows the future (masked_fill on the wrong triangle); each query sees the keys "
     "at its own position and before", dict(mask="future only")),
    ("there is no causal mask: every query sees every key, the future included", dict(mask="none")),
    ("the mask also hides each query's own position (tril with diagonal -1); a query sees the keys at its own "
     "position and before", dict(mask="strict")),
    ("the mask ignores the offset when Tq < Tk: query i sits at position Tk - Tq + i, so mark what it may see "
     "with tril(diagonal=Tk - Tq); tril() with diagonal 0 puts the queries at positions 0 .. Tq - 1",
     dict(mask="no offset")),
    ("the softmax runs over the queries (dim=-2); it runs over the keys, the last dim", dict(dim=-2)),
    ("the softmax runs over the heads (dim=1); it runs over the keys, the last dim", dict(dim=1)),
    ("masked scores are set to 0 instead of -inf, so masked keys still get weight; fill with float('-inf')",
     dict(fill=0.0)),
    ("the mask is applied after the softmax, so the weights no longer sum to 1; put -inf on the masked scores "
     "before the softmax", dict(after=True)),
]


def attention_mistakes(q, k, v):
    return [(sentence, lambda knobs=knobs: attend(q, k, v, **knobs).to(q.dtype))
            for sentence, knobs in ATTENTION_MISTAKES]


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rms(x, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)


def module_forward(attn, config, x, rotary=None, *, order="qkv", split="transpose", rope="qk", qknorm="head",
                   repeat="interleave", merge="transpose", proj=True, **attend_knobs):
    """CausalSelfAttention's forward in float64 with attn's weights, with one knob turned."""
    B, T, C = x.shape
    H, Hkv, D = config.n_head, config.n_kv_head, config.head_dim

    def linear(layer, t):
        return F.linear(t, layer.weight.detach().double(), None if layer.bias is None else layer.bias.detach().double())

    parts = dict(zip(order, linear(attn.c_attn, x.double()).split([H * D, Hkv * D, Hkv * D], dim=-1)))
    q, k, v = parts["q"], parts["k"], parts["v"]
    eps = 1e-6 if qknorm == "default eps" else config.norm_eps
    if (config.qk_norm or qknorm == "forced") and qknorm == "all channels":
        q, k = rms(q, eps), rms(k, eps)

    def heads(t, n):
        if split == "strided":
            return t.view(B, T, D, n).permute(0, 3, 1, 2)
        return t.reshape(B, n, T, D) if split == "view" else t.view(B, T, n, D).transpose(1, 2)

    q, k, v = heads(q, H), heads(k, Hkv), heads(v, Hkv)
    if rotary is not None:
        cos, sin = (t.double() for t in rotary)
        turn = lambda t: t * cos + rotate_half(t) * sin  # noqa: E731
        q = turn(q) if "q" in rope else q
        k = turn(k) if "k" in rope else k
        v = turn(v) if "v" in rope else v
    if (config.qk_norm and qknorm in ("head", "default eps", "qkv")) or qknorm == "forced":
        q, k = rms(q, eps), rms(k, eps)
        v = rms(v, eps) if qknorm == "qkv" else v
    n_rep = H // Hkv
    if repeat == "tile":
        k, v = k.repeat(1, n_rep, 1, 1), v.repeat(1, n_rep, 1, 1)
    else:
        k, v = k.repeat_interleave(n_rep, dim=1), v.repeat_interleave(n_rep, dim=1)
    y = attend(q, k, v, **attend_knobs)
    y = y.reshape(B, T, C) if merge == "view" else y.transpose(1, 2).reshape(B, T, C)
    if proj:
        y = linear(attn.c_proj, y)
    return y.to(x.dtype)


def module_mistakes(attn, config, x, rotary=None):
    """Outputs of known mistakes, computed with the weights of attn (the reference module)."""
    f = lambda **knobs: (lambda: module_forward(attn, config, x, rotary, **knobs))  # noqa: E731
    mistakes = [
        ("the heads were merged without transposing back: (B, H, T, D) must become (B, T, H, D) (transpose(1, 2)) "
         "before the view to (B, T, C)", f(merge="view")),
        ("the heads were split without a transpose: view c_attn's output as (B, T, heads, head_dim), then "
         "transpose(1, 2) to (B, heads, T, head_dim); a view straight to (B, heads, T, head_dim) mixes positions "
         "and channels", f(split="view")),
        ("the heads were split as (B, T, head_dim, heads): head h owns the consecutive channels h*head_dim .. "
         "(h+1)*head_dim - 1, so view as (B, T, heads, head_dim)", f(split="strided")),
        ("the kv heads are tiled (x.repeat gives heads 0, 1, 0, 1); kv head j serves the n_rep consecutive query "
         "heads j*n_rep .. (j+1)*n_rep - 1 (torch.repeat_interleave along dim 1)", f(repeat="tile")),
        ("c_proj is not applied: the attention output goes through c_proj before it is returned", f(proj=False)),
    ]
    for order in ("qvk", "kqv", "kvq", "vqk", "vkq"):
        mistakes.append((f"c_attn's output was split in the order {', '.join(order)}; the order is q, k, v "
                         f"(q first)", f(order=order)))
    if rotary is not None:
        mistakes += [
            ("rope is applied to q but not to k; rotate both q and k", f(rope="q")),
            ("rope is applied to k but not to q; rotate both q and k", f(rope="k")),
            ("rope is applied to v as well; it rotates only q and k", f(rope="qkv")),
            ("the rotary tables are ignored: apply_rotary(q, cos, sin) and apply_rotary(k, cos, sin) when rotary "
             "is given", f(rope="")),
        ]
    if not config.qk_norm:
        mistakes.append(("q and k are rms-normalised although config.qk_norm is False", f(qknorm="forced")))
    if config.qk_norm:
        mistakes += [
            ("qk_norm normalises all the channels of q (and k) together; it is per head: rms_norm over head_dim, "
             "after splitting the heads", f(qknorm="all channels")),
            ("qk_norm is on but q and k are not normalised: rms_norm (no weight) on q and k", f(qknorm="none")),
            ("the qk_norm ignores config.norm_eps: rms_norm(q, eps=config.norm_eps)", f(qknorm="default eps")),
            ("qk_norm normalises v as well; it is for q and k only", f(qknorm="qkv")),
        ]
    mistakes += [(sentence, f(**knobs)) for sentence, knobs in ATTENTION_MISTAKES]
    return mistakes


# --- causal_attention -----------------------------------------------------------------------

# The single-query shapes come last: with one query or one key, some mistakes give the same output (dividing
# by sqrt(Tq) is no scale at all when Tq = 1), so the first failing shape names a mistake unambiguously.
SHAPES = [(2, 3, 5, 5, 8), (2, 2, 3, 7, 16), (1, 4, 6, 6, 32), (2, 1, 4, 9, 8), (1, 2, 1, 6, 4), (1, 1, 1, 1, 4)]


def qkv(B, H, Tq, Tk, D, seed=0, dtype=torch.float32):
    return randn(B, H, Tq, D, seed=seed, dtype=dtype), randn(B, H, Tk, D, seed=seed + 1, dtype=dtype), \
        randn(B, H, Tk, D, seed=seed + 2, dtype=dtype)


def shape_id(shape):
    return "B{}-H{}-Tq{}-Tk{}-D{}".format(*shape)


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_causal_attention_matches_reference(shape):
    q, k, v = qkv(*shape, seed=1)
    out = run(mine().causal_attention, q, k, v)
    expect_close(out, ref().causal_attention(q, k, v), "causal_attention", module=MODULE,
                 inputs=dict(q=q, k=k, v=v), likely=attention_mistakes(q, k, v))


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_causal_attention_matches_torch_sdpa(shape):
    B, H, Tq, Tk, D = shape
    q, k, v = qkv(*shape, seed=2)
    # torch's is_causal aligns the mask to the top left; with Tq < Tk the queries are the last Tq positions
    visible = torch.ones(Tq, Tk, dtype=torch.bool).tril(diagonal=Tk - Tq)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=visible)
    out = run(mine().causal_attention, q, k, v)
    expect_close(out, want, "causal_attention vs F.scaled_dot_product_attention", module=MODULE,
                 inputs=dict(q=q, k=k, v=v), likely=attention_mistakes(q, k, v))


@pytest.mark.parametrize("D", [4, 16, 64])
def test_scores_are_scaled_by_one_over_sqrt_d(D):
    # Two positions, q = 1 at both; k0 = 0 and q·k1 = 0.1·sqrt(D), so with the 1/sqrt(D) scale the last query's
    # scores are 0 and 0.1 for every D; v0 = 0 and v1 = 1, so its output is its weight on key 1, sigmoid(0.1).
    # Every other scale moves that weight far from sigmoid(0.1) without saturating it, even at D = 64. Three
    # identical heads, so that the number of heads (or of queries) is not 1 either.
    q = torch.ones(1, 3, 2, D)
    k = torch.stack((torch.zeros(D), torch.full((D,), 0.1 / math.sqrt(D))))[None, None].expand(1, 3, 2, D).contiguous()
    v = torch.stack((torch.zeros(D), torch.ones(D)))[None, None].expand(1, 3, 2, D).contiguous()
    out = run(mine().causal_attention, q, k, v)
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    expect_close(out, want, f"causal_attention with D={D} (the last query's scaled scores 0 and 0.1)", module=MODULE,
                 inputs=dict(q=q, k=k, v=v), likely=attention_mistakes(q, k, v),
                 hint=f"Divided by sqrt(D), the last query's scores are 0 and 0.1 whatever D is, so its weight on "
                      f"key 1 is sigmoid(0.1) = {torch.sigmoid(torch.tensor(0.1)).item():.4f}.")


def test_more_queries_than_keys_raises_value_error():
    q, k, v = qkv(1, 2, 5, 3, 8, seed=3)
    try:
        out = run(mine().causal_attention, q, k, v)
    except ValueError:
        return
    fail(MODULE, f"It returned {tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}: with "
                 f"more queries than keys some query has no key to look at; check Tq <= Tk and raise ValueError "
                 f"with a sentence that says so.",
         cause="causal_attention(q with Tq=5, k and v with Tk=3) does not raise ValueError")


@pytest.mark.parametrize("Tq,Tk", [(6, 6), (3, 7), (1, 4)])
def test_causal_attention_is_causal(Tq, Tk):
    """Change the key and value at one position: exactly the queries at that position and later must change."""
    q, k, v = qkv(2, 2, Tq, Tk, 8, seed=4)
    out = run(mine().causal_attention, q, k, v)
    if not isinstance(out, torch.Tensor) or out.shape != q.shape:
        fail(MODULE, f"causal_attention returned {describe(out)} for q {tuple(q.shape)}; expected {tuple(q.shape)}.")
    atol, rtol = tolerance(torch.float32)
    future, blind = [], []  # (query, key position): a later key that changed it, an earlier one that did not
    for j in range(Tk):
        k2, v2 = k.clone(), v.clone()
        k2[:, :, j] += randn(2, 2, 8, seed=100 + j)
        v2[:, :, j] += randn(2, 2, 8, seed=200 + j)
        out2 = run(mine().causal_attention, q, k2, v2)
        for i in range(Tq):
            position = Tk - Tq + i
            if j > position and not torch.allclose(out2[:, :, i], out[:, :, i], atol=atol, rtol=rtol, equal_nan=True):
                future.append((i, j))
            if j <= position and torch.allclose(out2[:, :, i], out[:, :, i], atol=0, rtol=0, equal_nan=True):
                blind.append((i, j))

    def where(i):
        return f"query {i} (at position {Tk - Tq + i}; with Tq={Tq} and Tk={Tk}, query i sits at Tk - Tq + i)"

    causes = []
    if future:
        i, j = future[0]
        causes.append(f"{where(i)} sees the future: it changed when only the key and value at the later position {j} "
                      f"changed; every key after a query's position gets -inf on its score before the softmax")
    if blind:
        i, j = blind[0]
        which = "its own position" if j == Tk - Tq + i else "the earlier position"
        causes.append(f"{where(i)} does not see the key at {which} {j}: it did not change when the key and value "
                      f"there changed, and a query sees the keys at its own position and before")
    if causes:
        fail(MODULE, "torch.tril(diagonal=Tk - Tq) marks the keys each query may see.", cause="; and ".join(causes))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
def test_causal_attention_keeps_the_dtype(dtype):
    q, k, v = qkv(2, 2, 4, 6, 8, seed=5, dtype=dtype)
    out = run(mine().causal_attention, q, k, v)
    # Taking the softmax in float32 (as Hugging Face's eager attention does) is allowed, so float64 is held
    # to float32's tolerance: this test is about the dtype that comes back.
    atol, rtol = tolerance(torch.float32) if dtype == torch.float64 else tolerance(dtype)
    expect_close(out, ref().causal_attention(q, k, v), "causal_attention", module=MODULE,
                 inputs=dict(q=q, k=k, v=v), atol=atol, rtol=rtol, likely=attention_mistakes(q, k, v))


def test_causal_attention_does_not_modify_its_inputs():
    q, k, v = qkv(2, 3, 4, 5, 8, seed=6)
    before = dict(q=q.clone(), k=k.clone(), v=v.clone())
    run(mine().causal_attention, q, k, v)
    expect_unchanged(before, dict(q=q, k=k, v=v), "causal_attention", module=MODULE)


# --- repeat_kv ------------------------------------------------------------------------------


def repeat_kv_mistakes(x, n_rep):
    return [
        ("the kv heads are tiled (x.repeat gives heads 0, 1, 0, 1); kv head j serves the n_rep consecutive query "
         "heads j*n_rep .. (j+1)*n_rep - 1: torch.repeat_interleave(x, n_rep, dim=1)", lambda: x.repeat(1, n_rep, 1, 1)),
        ("the repeat runs along time (dim 2); the heads are dim 1", lambda: x.repeat_interleave(n_rep, dim=2)),
        ("the repeat runs along the batch (dim 0); the heads are dim 1", lambda: x.repeat_interleave(n_rep, dim=0)),
    ]


@pytest.mark.parametrize("shape,n_rep", [((2, 2, 5, 4), 3), ((1, 1, 3, 8), 4), ((2, 3, 2, 4), 1), ((1, 4, 2, 2), 2)],
                         ids=lambda v: str(v))
def test_repeat_kv_matches_reference(shape, n_rep):
    x = randn(*shape, seed=7)
    out = run(mine().repeat_kv, x, n_rep)
    expect_close(out, ref().repeat_kv(x, n_rep), "repeat_kv", module=MODULE, inputs=dict(x=x, n_rep=n_rep),
                 likely=repeat_kv_mistakes(x, n_rep))


def test_repeat_kv_matches_hf_llama():
    x = randn(2, 3, 4, 8, seed=8)
    out = run(mine().repeat_kv, x, 2)
    from transformers.models.llama.modeling_llama import repeat_kv

    expect_close(out, repeat_kv(x, 2), "repeat_kv(x, n_rep=2) vs Hugging Face Llama's repeat_kv", module=MODULE,
                 inputs=dict(x=x), likely=repeat_kv_mistakes(x, 2))


def test_repeat_kv_does_not_modify_its_input():
    x = randn(2, 2, 3, 4, seed=9)
    before = dict(x=x.clone())
    run(mine().repeat_kv, x, 3)
    expect_unchanged(before, dict(x=x), "repeat_kv", module=MODULE)


# --- CausalSelfAttention --------------------------------------------------------------------

CONFIGS = {
    "mha-bias": dict(),
    "mha-rope-bias": dict(pos_emb="rope", norm_eps=1e-3),
    "gqa-rope": dict(n_kv_head=2, pos_emb="rope", norm="rmsnorm", bias=False),
    "mqa-qknorm": dict(n_kv_head=1, pos_emb="rope", norm="rmsnorm", qk_norm=True, bias=False),
    "gqa-qknorm-eps-bias": dict(n_kv_head=2, pos_emb="rope", norm="rmsnorm", qk_norm=True, norm_eps=0.5),
}


def make_config(name):
    return small_config(**CONFIGS[name])


def reference_module(config, seed=0):
    with seeded(seed):
        module = ref().CausalSelfAttention(config)
    return perturb_parameters(module, seed=seed, scale=0.1)


def loaded_module(config, seed=0):
    """(mine, ref): the learner's module holding the reference's perturbed weights."""
    attn = run(mine().CausalSelfAttention, config)
    ref_attn = reference_module(config, seed)
    load_reference_weights(attn, ref_attn, "CausalSelfAttention", module=MODULE)
    return attn, ref_attn


def tables(config, T, start=0):
    cos, sin = reference("rotary").rotary_cos_sin(start + T, config.head_dim, 100.0)  # small base: big angles
    return cos[start:], sin[start:]


def expected_parameters(config):
    H, Hkv, D, C = config.n_head, config.n_kv_head, config.head_dim, config.n_embd
    want = {"c_attn.weight": ((H + 2 * Hkv) * D, C), "c_proj.weight": (C, C)}
    if config.bias:
        want.update({"c_attn.bias": ((H + 2 * Hkv) * D,), "c_proj.bias": (C,)})
    return want


@pytest.mark.parametrize("name", ["mha-bias", "gqa-rope", "mqa-qknorm"])
def test_module_parameter_names_and_shapes(name):
    config = make_config(name)
    attn = run(mine().CausalSelfAttention, config, layer_idx=1)
    want = expected_parameters(config)
    have = {n: tuple(p.shape) for n, p in attn.named_parameters()}
    what = f"CausalSelfAttention(n_head={config.n_head}, n_kv_head={config.n_kv_head}, n_embd={config.n_embd}, " \
           f"bias={config.bias})"
    if have != want:
        causes = []
        extra_bias = [k for k in have if k not in want and k.endswith(".bias")]
        missing_bias = [k for k in want if k not in have and k.endswith(".bias")]
        if extra_bias and not config.bias:
            causes.append(f"{', '.join(extra_bias)} exists although config.bias is False: nn.Linear(..., "
                          f"bias=config.bias)")
        if missing_bias and config.bias:
            causes.append(f"{', '.join(missing_bias)} is missing although config.bias is True: nn.Linear(..., "
                          f"bias=config.bias)")
        C = config.n_embd
        if have.get("c_attn.weight", (0,))[0] == 3 * C and want["c_attn.weight"][0] != 3 * C:
            causes.append(f"c_attn.weight has 3 * n_embd = {3 * C} rows, as if there were as many kv heads as query "
                          f"heads; it has (n_head + 2 * n_kv_head) * head_dim = {want['c_attn.weight'][0]}")
        for key in ("c_attn.weight", "c_proj.weight"):
            if key in have and have[key] != want[key] and have[key] == tuple(reversed(want[key])):
                causes.append(f"{key} is transposed: nn.Linear(in, out).weight has shape (out, in)")
        fail(MODULE, f"{what} has parameters {have}; the contract's are {want}: c_attn = nn.Linear(n_embd, "
                     f"(n_head + 2 * n_kv_head) * head_dim) and c_proj = nn.Linear(n_embd, n_embd), both with "
                     f"bias=config.bias.", cause="; and ".join(causes) or None)
    if set(attn.state_dict()) != set(want):
        extra = sorted(set(attn.state_dict()) - set(want))
        fail(MODULE, f"{what}'s state_dict has keys {sorted(attn.state_dict())}, expected {sorted(want)}.",
             cause=f"{what} keeps persistent buffers ({', '.join(extra)}): register them with persistent=False, or "
                   f"compute them in forward" if extra else None)


CASES = [(name, rope) for name in CONFIGS for rope in (True, False)]


@pytest.mark.parametrize("name,rope", CASES, ids=[f"{n}-{'rotary' if r else 'no-rotary'}" for n, r in CASES])
def test_module_matches_reference(name, rope):
    config = make_config(name)
    attn, ref_attn = loaded_module(config, seed=10)
    x = randn(2, 7, config.n_embd, seed=11)
    rotary = tables(config, 7, start=3) if rope else None
    out = run(attn, x, rotary=rotary) if rope else run(attn, x)  # without rotary: forward's default, None
    expect_close(out, ref_attn(x, rotary=rotary), f"CausalSelfAttention({name})", module=MODULE,
                 inputs=dict(x=x, config=config, rotary=rope), likely=module_mistakes(ref_attn, config, x, rotary))


@pytest.mark.parametrize("name", ["mha-bias", "gqa-rope"])
def test_module_with_a_single_position(name):
    config = make_config(name)
    attn, ref_attn = loaded_module(config, seed=12)
    x = randn(3, 1, config.n_embd, seed=13)
    rotary = tables(config, 1, start=5) if config.pos_emb == "rope" else None
    expect_close(run(attn, x, rotary=rotary), ref_attn(x, rotary=rotary), f"CausalSelfAttention({name})",
                 module=MODULE, inputs=dict(x=x, config=config), likely=module_mistakes(ref_attn, config, x, rotary))


LLAMA_CASES = {  # n_kv_head, bias, rope
    "gqa-rope": (2, False, True),
    "mqa-rope-bias": (1, True, True),
    "mha-no-rope-bias": (4, True, False),
}


@pytest.mark.parametrize("case", list(LLAMA_CASES))
def test_module_matches_hf_llama_attention(case):
    """Llama's q, k, v projections concatenated into c_attn, o_proj as c_proj."""
    n_kv_head, bias, rope = LLAMA_CASES[case]
    config = small_config(n_kv_head=n_kv_head, bias=bias, pos_emb="rope" if rope else "learned", norm="rmsnorm")
    attn = run(mine().CausalSelfAttention, config)
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaAttention, LlamaRotaryEmbedding

    hf_config = LlamaConfig(hidden_size=config.n_embd, num_attention_heads=config.n_head,
                            num_key_value_heads=n_kv_head, attention_bias=bias, rope_theta=100.0,
                            max_position_embeddings=16, attn_implementation="eager")
    with torch.random.fork_rng(devices=[]):
        hf = LlamaAttention(hf_config, layer_idx=0).eval()
    with torch.no_grad():
        for i, p in enumerate(hf.parameters()):
            p.copy_(randn(*p.shape, seed=20 + i, scale=0.2))
    T = 6
    x = randn(2, T, config.n_embd, seed=14)
    if rope:
        cos, sin = LlamaRotaryEmbedding(hf_config)(x, torch.arange(T)[None])
    else:  # a rotation by 0: Llama's attention without positions, GPT-2's
        cos, sin = torch.ones(1, T, config.head_dim), torch.zeros(1, T, config.head_dim)
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
    mask = torch.zeros(T, T).masked_fill(future, float("-inf"))[None, None]
    with torch.no_grad():
        want, _ = hf(hidden_states=x, position_embeddings=(cos, sin), attention_mask=mask)

    ref_attn = ref().CausalSelfAttention(config)
    weights = {"c_attn.weight": torch.cat((hf.q_proj.weight, hf.k_proj.weight, hf.v_proj.weight)),
               "c_proj.weight": hf.o_proj.weight}
    if bias:
        weights.update({"c_attn.bias": torch.cat((hf.q_proj.bias, hf.k_proj.bias, hf.v_proj.bias)),
                        "c_proj.bias": hf.o_proj.bias})
    ref_attn.load_state_dict({k: w.detach() for k, w in weights.items()}, strict=True)
    load_reference_weights(attn, ref_attn, "CausalSelfAttention", module=MODULE)
    rotary = (cos[0], sin[0]) if rope else None
    out = run(attn, x, rotary=rotary)
    expect_close(out, want, f"CausalSelfAttention vs Hugging Face LlamaAttention ({case})", module=MODULE,
                 inputs=dict(x=x, config=config, rotary=rope), likely=module_mistakes(ref_attn, config, x, rotary))


@pytest.mark.parametrize("name", ["mha-bias", "gqa-rope"])
def test_module_is_causal(name):
    config = make_config(name)
    attn, ref_attn = loaded_module(config, seed=15)
    T = 6
    x = randn(1, T, config.n_embd, seed=16)
    rotary = tables(config, T) if config.pos_emb == "rope" else None
    out = run(attn, x, rotary=rotary)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        fail(MODULE, f"CausalSelfAttention returned {describe(out)} for x {tuple(x.shape)}; expected {tuple(x.shape)}.")
    atol, rtol = tolerance(torch.float32)
    for t in range(1, T):
        x2 = x.clone()
        x2[:, t] += randn(config.n_embd, seed=300 + t)
        out2 = run(attn, x2, rotary=rotary)
        for p in range(t):
            if not torch.allclose(out2[:, p], out[:, p], atol=atol, rtol=rtol):
                # which known mistake the whole output equals, if any, names it; else the property is the cause
                with torch.no_grad():
                    found = diagnose(out.detach(), module_mistakes(ref_attn, config, x, rotary), atol, rtol,
                                     ref_attn(x, rotary=rotary))
                text = (f"The output at position {p} changed when only the input at the later position {t} "
                        f"changed.")
                if found:
                    fail(MODULE, text, cause=found, looks_like=True)
                fail(MODULE, text, cause=f"CausalSelfAttention sees the future: the output at position {p} depends "
                                         f"on the input at the later position {t}")


@pytest.mark.parametrize("name", ["mha-bias", "gqa-qknorm-eps-bias"])
def test_gradients_reach_every_parameter(name):
    config = make_config(name)
    attn = perturb_parameters(run(mine().CausalSelfAttention, config), seed=17)
    x = randn(2, 5, config.n_embd, seed=18).requires_grad_()
    out = run(attn, x, rotary=tables(config, 5) if config.pos_emb == "rope" else None)
    loss = (out * randn(*out.shape, seed=19)).sum()
    expect_gradients_everywhere(attn, loss, f"CausalSelfAttention({name})", module=MODULE)
    if x.grad is None or not torch.any(x.grad != 0):
        fail(MODULE, "Keep the computation in autograd (no .detach(), .item() or .numpy()).",
             cause="CausalSelfAttention: no gradient reaches the input x")


def test_module_does_not_modify_its_inputs():
    config = make_config("mqa-qknorm")
    attn, _ = loaded_module(config, seed=21)
    x = randn(2, 4, config.n_embd, seed=22)
    cos, sin = tables(config, 4)
    before = dict(x=x.clone(), cos=cos.clone(), sin=sin.clone())
    run(attn, x, rotary=(cos, sin))
    expect_unchanged(before, dict(x=x, cos=cos, sin=sin), "CausalSelfAttention", module=MODULE)


def describe(out):
    return f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__


def test_causal_attention_builds_its_mask_on_the_inputs_device():
    # 'meta' tensors have shapes but no data: a mask made on the CPU shows as a device mismatch on any machine
    run(mine().causal_attention, randn(1, 2, 3, 4), randn(1, 2, 5, 4), randn(1, 2, 5, 4))  # not started stops here
    q, k, v = (torch.empty(1, 2, t, 4, device="meta") for t in (3, 5, 5))
    try:
        out = run(mine().causal_attention, q, k, v)
    except RuntimeError as error:
        if "device" not in str(error):
            pytest.skip(f"causal_attention reads tensor values, which 'meta' tensors do not have ({error})")
        fail(MODULE, f"causal_attention on tensors of device 'meta' raised: {error}.",
             cause="the mask is not built on the inputs' device: torch.ones(Tq, Tk, dtype=torch.bool, device=q.device)")
    if out.device.type != "meta" or tuple(out.shape) != (1, 2, 3, 4):
        fail(MODULE, f"causal_attention on 'meta' tensors (1, 2, 3, 4) returned {tuple(out.shape)} on {out.device}.")


@pytest.mark.parametrize("name", ["gpt2", "gqa-rope-swiglu"])
def test_module_in_eval_mode_does_no_dropout(name):
    with seeded(43):
        ref_attn = perturb_parameters(reference(MODULE).CausalSelfAttention(variant_config(name)), seed=43).eval()
    x = randn(2, 7, ref_attn.c_proj.weight.shape[0], seed=44)
    config = variant_config(name)
    rotary = reference("rotary").rotary_cos_sin(7, config.head_dim) if config.pos_emb == "rope" else None
    with torch.no_grad():
        expected = ref_attn(x, rotary=rotary)
        # first the same weights without dropout, so that a mismatch below can only come from dropout
        plain = load_reference_weights(run(mine().CausalSelfAttention, config).eval(), ref_attn,
                                       "CausalSelfAttention", module=MODULE)
        expect_close(run(plain, x, rotary=rotary), expected, f"CausalSelfAttention({name}, dropout=0.0).eval()",
                     module=MODULE, inputs=dict(x=x), likely=module_mistakes(ref_attn, config, x, rotary))
        attn = load_reference_weights(run(mine().CausalSelfAttention, variant_config(name, dropout=0.5)).eval(),
                                      ref_attn, "CausalSelfAttention", module=MODULE)
        out = run(attn, x, rotary=rotary)
    expect_close(out, expected, f"CausalSelfAttention({name}, dropout=0.5).eval()", module=MODULE,
                 inputs=dict(x=x),
                 cause="dropout acts in eval mode: with dropout=0.0 the same weights match the reference, with 0.5 "
                       "they do not; dropout acts only while training (dropout_p=self.dropout if self.training "
                       "else 0.0; nn.Dropout follows .eval() by itself)")
