"""02 rotary: rotary_cos_sin, rotate_half, apply_rotary (exercises/rotary.py).

Checked against the reference, against Hugging Face Llama's own rotary code
(LlamaRotaryEmbedding, rotate_half, apply_rotary_pos_emb), and against the
properties that make RoPE what it is: position 0 is the identity, a rotation
keeps lengths, and q·k depends only on the distance between the positions.
"""

import pytest
import torch

from harness import (
    devices, diagnose, expect_close, expect_unchanged, fail, learner, randn, reference, substitute, tolerance,
)

MODULE = "rotary"


def mine():
    return learner(MODULE)


def ref():
    return reference(MODULE)


# --- known mistakes, computed in float64 and returned in float32 -------------------------------


def tables(T, D, base, *, exponents="2i/D", start=0, layout="halves"):
    """cos and sin tables with one knob turned: the exponent, the first position, the layout."""
    i = torch.arange(D // 2, dtype=torch.float64)
    e = {
        "2i/D": 2 * i / D,
        "i/D": i / D,
        "4i/D": 4 * i / D,  # 2i / (D/2)
        "-2i/D": -2 * i / D,  # base^(+2i/D)
        "every channel": torch.arange(D, dtype=torch.float64) / D,  # arange(0, D) instead of arange(0, D, 2)
        "int": torch.zeros(D // 2, dtype=torch.float64),  # arange(0, D, 2) // D: integer division gives 0
    }[exponents]
    inv_freq = base ** (-e)
    positions = torch.arange(start, start + T, dtype=torch.float64)
    angles = torch.outer(positions, inv_freq)
    if layout == "halves":
        angles = torch.cat((angles, angles), dim=-1)
    elif layout == "interleaved":
        angles = angles.repeat_interleave(2, dim=-1)
    # layout "once": the (T, D/2) table, not repeated
    return angles.cos().float(), angles.sin().float()


def table_mistakes(T, D, base, which):
    """Mistaken versions of the cos (which=0) or sin (which=1) table."""
    pick = lambda **knobs: (lambda: tables(T, D, base, **knobs)[which])  # noqa: E731
    return [
        ("cos and sin are swapped: rotary_cos_sin returns (cos, sin), cos first", lambda: tables(T, D, base)[1 - which]),
        ("the exponent is i/head_dim for i < head_dim/2; it is 2i/head_dim: torch.arange(0, head_dim, 2) / head_dim",
         pick(exponents="i/D")),
        ("the exponent is 2i/(head_dim/2); it is 2i/head_dim: torch.arange(0, head_dim, 2) / head_dim",
         pick(exponents="4i/D")),
        ("the frequencies are base^(+2i/head_dim); the exponent is negative: theta_i = base^(-2i/head_dim) "
         "= 1 / base**(2i/head_dim)", pick(exponents="-2i/D")),
        ("every frequency is 1: the exponents 2i/head_dim were computed with integer division (//) or in "
         "an integer dtype; make them float (torch.arange(..., dtype=torch.float32) / head_dim)",
         pick(exponents="int")),
        ("the angles are repeated interleaved (θ0, θ0, θ1, θ1, ... as repeat_interleave gives); concatenate the "
         "table with itself instead, torch.cat((angles, angles), dim=-1), so that channel j and channel "
         "j + head_dim/2 share an angle", pick(layout="interleaved")),
        ("the positions start at 1; they run 0 .. seq_len - 1 (torch.arange(seq_len))", pick(start=1)),
        (f"the base argument is ignored (10000 is used whatever base is; here base={base})",
         lambda: tables(T, D, 10000.0)[which]),
        ("the angles are not repeated: the table is (seq_len, head_dim/2); concatenate it with itself along "
         "the last dim to get (seq_len, head_dim)", pick(layout="once")),
        ("there is a frequency for every channel (torch.arange(0, head_dim)); there is one per pair of channels, "
         "torch.arange(0, head_dim, 2)", pick(exponents="every channel")),
    ]


def interleaved_rotate_half(x):
    """The paper's layout: pairs of neighbouring channels (x0, x1), (x2, x3), ... each become (-x1, x0)."""
    even, odd = x[..., ::2], x[..., 1::2]
    return torch.stack((-odd, even), dim=-1).flatten(-2)


def rotate_half_mistakes(x):
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    even, odd = x[..., ::2], x[..., 1::2]
    return [
        ("the sign is on the wrong half: rotate_half is cat(-x2, x1), not cat(x2, -x1)",
         lambda: torch.cat((x2, -x1), dim=-1)),
        ("the minus sign is missing: rotate_half is cat(-x2, x1), not cat(x2, x1)", lambda: torch.cat((x2, x1), dim=-1)),
        ("the halves are not swapped: rotate_half is cat(-x2, x1), not cat(-x1, x2)",
         lambda: torch.cat((-x1, x2), dim=-1)),
        ("the channels are paired interleaved (x[..., ::2], x[..., 1::2], the RoPE paper's layout); the Llama "
         "layout pairs the two halves: x1 = x[..., :D/2], x2 = x[..., D/2:]", lambda: torch.cat((-odd, even), dim=-1)),
        ("neighbouring channels are rotated as pairs (interleaved, the RoPE paper's layout); the Llama layout "
         "pairs channel j with channel j + D/2, the two halves", lambda: interleaved_rotate_half(x)),
    ]


def apply_mistakes(x, cos, sin):
    """Mistakes in apply_rotary's own formula (the tests run it with the reference's rotate_half)."""
    x64, c, s = x.double(), cos.double(), sin.double()
    rot = ref().rotate_half(x64)
    cast = lambda fn: (lambda: fn().to(x.dtype))  # noqa: E731
    return [
        ("cos and sin are swapped in apply_rotary: it is x * cos + rotate_half(x) * sin, not "
         "x * sin + rotate_half(x) * cos", cast(lambda: x64 * s + rot * c)),
        ("apply_rotary turns x the wrong way: it adds the sin term, x * cos + rotate_half(x) * sin",
         cast(lambda: x64 * c - rot * s)),
        ("rotate_half is missing: the sin term multiplies rotate_half(x), not x", cast(lambda: x64 * c + x64 * s)),
        ("the channels are paired interleaved (the RoPE paper's layout); the Llama layout pairs the two halves, "
         "channel j with channel j + D/2", cast(lambda: x64 * c + interleaved_rotate_half(x64) * s)),
    ]


def my_apply(x, cos, sin):
    """Your apply_rotary with the reference's rotate_half in place of yours, so that its tests check its own
    formula (rotate_half has tests of its own); an apply_rotary that does not call rotate_half is unaffected."""
    with substitute(mine(), rotate_half=ref().rotate_half):
        return mine().apply_rotary(x, cos, sin)


def wrong_pieces(x, base):
    """Rope with your own tables, rotate_half and apply_rotary: which of the three differ from the reference's on
    x's sizes, each checked alone. Returns (cause, text): the mistakes named (established, each matching a
    known mistake's output) and a sentence on the pieces that differ in some other way."""
    T, D = x.shape[-2:]
    atol, rtol = tolerance(torch.float32)
    ref_cos, ref_sin = ref().rotary_cos_sin(T, D, base)
    named, other = [], []

    def check(what, compute, want, likely):
        try:
            got = compute()
        except Exception as error:  # noqa: BLE001 - a piece that crashes is reported by its own tests
            other.append(f"{what} raised {type(error).__name__}")
            return
        if not isinstance(got, torch.Tensor) or got.shape != want.shape or got.dtype != want.dtype:
            other.append(f"{what} returned {describe_out(got)}, expected shape {tuple(want.shape)}")
            return
        if torch.allclose(got.double(), want.double(), atol=atol, rtol=rtol):
            return
        found = diagnose(got, likely, atol, rtol, want)
        if found:
            named.append(f"{what} is wrong: {found.rstrip('.')}")
        else:
            other.append(f"{what} differs from the reference")

    tables_call = f"rotary_cos_sin({T}, {D}, base={base:g})"
    check(f"{tables_call}[0] (cos)", lambda: mine().rotary_cos_sin(T, D, base)[0], ref_cos, table_mistakes(T, D, base, 0))
    check(f"{tables_call}[1] (sin)", lambda: mine().rotary_cos_sin(T, D, base)[1], ref_sin, table_mistakes(T, D, base, 1))
    check("rotate_half", lambda: mine().rotate_half(x), ref().rotate_half(x), rotate_half_mistakes(x))
    check("apply_rotary", lambda: my_apply(x, ref_cos, ref_sin), ref().apply_rotary(x, ref_cos, ref_sin),
          apply_mistakes(x, ref_cos, ref_sin))
    cause = "; and ".join(named) or None
    text = ""
    if other:
        text = (f" Checked alone on these sizes, {', and '.join(other)}: test_cos_sin_match_reference, "
                f"test_rotate_half_matches_reference and test_apply_rotary_matches_reference show more.")
    return cause, text


def check_tables(out, what):
    """rotary_cos_sin must return a (cos, sin) pair of float32 tensors."""
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
        fail(MODULE, f"{what} returned {type(out).__name__}; it returns a pair of tensors (cos, sin).")
    for name, t in zip(("cos", "sin"), out):
        if t.dtype != torch.float32:
            fail(MODULE, "Build them with torch.arange(..., dtype=torch.float32), whatever dtype the model later uses.",
                 cause=f"{what} returned a {str(t.dtype)[6:]} {name} table; the tables are float32")
    return out


def expect_tables(out, want, what, T, D, base):
    cos, sin = check_tables(out, what)
    expect_close(cos, want[0], f"{what}: cos", module=MODULE, likely=table_mistakes(T, D, base, 0))
    expect_close(sin, want[1], f"{what}: sin", module=MODULE, likely=table_mistakes(T, D, base, 1))


# --- rotary_cos_sin -------------------------------------------------------------------------

TABLES = [(7, 8, 10000.0), (40, 64, 10000.0), (1, 16, 10000.0), (12, 2, 10000.0), (9, 32, 500.0),
          (20, 16, 1e6), (5, 12, 3.0)]


@pytest.mark.parametrize("seq_len,head_dim,base", TABLES, ids=lambda v: str(v))
def test_cos_sin_match_reference(seq_len, head_dim, base):
    out = mine().rotary_cos_sin(seq_len, head_dim, base)
    what = f"rotary_cos_sin({seq_len}, {head_dim}, base={base:g})"
    expect_tables(out, ref().rotary_cos_sin(seq_len, head_dim, base), what, seq_len, head_dim, base)


def test_cos_sin_default_base_is_10000():
    out = mine().rotary_cos_sin(10, 16)
    expect_tables(out, ref().rotary_cos_sin(10, 16, 10000.0), "rotary_cos_sin(10, 16) with the default base",
                  10, 16, 10000.0)


@pytest.mark.parametrize("seq_len,head_dim,base", [(16, 8, 10000.0), (33, 64, 10000.0), (10, 32, 500000.0)],
                         ids=lambda v: str(v))
def test_cos_sin_match_hf_llama_rotary_embedding(seq_len, head_dim, base):
    out = mine().rotary_cos_sin(seq_len, head_dim, base)
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    n_head = 2
    config = LlamaConfig(hidden_size=n_head * head_dim, num_attention_heads=n_head, rope_theta=base,
                         max_position_embeddings=64)
    hf = LlamaRotaryEmbedding(config)
    cos, sin = hf(torch.zeros(1, seq_len, head_dim), torch.arange(seq_len)[None])
    expect_tables(out, (cos[0], sin[0]), f"rotary_cos_sin({seq_len}, {head_dim}, base={base:g}) vs Hugging Face "
                  f"LlamaRotaryEmbedding", seq_len, head_dim, base)


@pytest.mark.parametrize("device", ["meta", *devices()])
def test_cos_sin_are_made_on_the_given_device(device):
    # "meta" is a device of shapes without data: tables made on the CPU and never moved stay on "cpu".
    cos, sin = check_tables(mine().rotary_cos_sin(6, 8, device=device), f"rotary_cos_sin(6, 8, device={device!r})")
    for name, t in (("cos", cos), ("sin", sin)):
        if t.device.type != torch.device(device).type:
            fail(MODULE, "Make the tables on `device`: torch.arange(..., device=device).",
                 cause=f"rotary_cos_sin(6, 8, device={device!r}) returned {name} on {t.device}, not on the device "
                       f"asked for")
        if tuple(t.shape) != (6, 8):
            fail(MODULE, f"rotary_cos_sin(6, 8, device={device!r}) returned {name} of shape {tuple(t.shape)}, "
                         f"expected (6, 8).")
    if device != "meta":
        expect_tables((cos.cpu(), sin.cpu()), ref().rotary_cos_sin(6, 8), f"rotary_cos_sin(6, 8, device={device!r})",
                      6, 8, 10000.0)


def test_cos_sin_default_device_is_cpu():
    cos, sin = check_tables(mine().rotary_cos_sin(3, 4, device=None), "rotary_cos_sin(3, 4, device=None)")
    if cos.device.type != "cpu" or sin.device.type != "cpu":
        fail(MODULE, "device=None means torch's default, the CPU.",
             cause=f"rotary_cos_sin(3, 4, device=None) returned tables on {cos.device}/{sin.device}, not on the "
                   f"default device")


# --- rotate_half ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 5, 8), (4, 6), (1, 1, 1, 2), (3, 16)], ids=str)
def test_rotate_half_matches_reference(shape):
    x = randn(*shape, seed=1)
    expect_close(mine().rotate_half(x), ref().rotate_half(x), "rotate_half", module=MODULE, inputs=dict(x=x),
                 likely=rotate_half_mistakes(x))


def test_rotate_half_matches_hf_llama():
    x = randn(2, 3, 4, 12, seed=2)
    out = mine().rotate_half(x)
    from transformers.models.llama.modeling_llama import rotate_half

    expect_close(out, rotate_half(x), "rotate_half vs Hugging Face Llama's rotate_half", module=MODULE,
                 inputs=dict(x=x), likely=rotate_half_mistakes(x))


# --- apply_rotary ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 5, 8), (1, 4, 7, 16), (3, 1, 1, 4), (2, 6, 3, 32)], ids=str)
def test_apply_rotary_matches_reference(shape):
    B, H, T, D = shape
    x = randn(*shape, seed=3)
    cos, sin = ref().rotary_cos_sin(T + 2, D, 100.0)  # a small base turns even the last channels
    cos, sin = cos[2:], sin[2:]  # positions 2 .. T+1, as in a sliced table
    expect_close(my_apply(x, cos, sin), ref().apply_rotary(x, cos, sin), "apply_rotary", module=MODULE,
                 inputs=dict(x=x, cos=cos, sin=sin), likely=apply_mistakes(x, cos, sin))


def test_apply_rotary_matches_hf_llama_apply_rotary_pos_emb():
    q, k = randn(2, 4, 6, 16, seed=4), randn(2, 2, 6, 16, seed=5)  # grouped-query: fewer k heads
    cos, sin = ref().rotary_cos_sin(6, 16, 50.0)
    q_out, k_out = my_apply(q, cos, sin), my_apply(k, cos, sin)
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    q_hf, k_hf = apply_rotary_pos_emb(q, k, cos[None], sin[None])  # HF's tables carry a batch dim
    expect_close(q_out, q_hf, "apply_rotary(q) vs Hugging Face apply_rotary_pos_emb", module=MODULE,
                 inputs=dict(x=q, cos=cos, sin=sin), likely=apply_mistakes(q, cos, sin))
    expect_close(k_out, k_hf, "apply_rotary(k) vs Hugging Face apply_rotary_pos_emb", module=MODULE,
                 inputs=dict(x=k, cos=cos, sin=sin), likely=apply_mistakes(k, cos, sin))


def test_rope_end_to_end_matches_hf_llama():
    """Your tables and your apply_rotary together against Llama's rotary embedding and apply_rotary_pos_emb."""
    T, D, base = 11, 16, 1000.0
    q = randn(1, 3, T, D, seed=6)
    cos, sin = check_tables(mine().rotary_cos_sin(T, D, base), f"rotary_cos_sin({T}, {D}, base={base:g})")
    out = mine().apply_rotary(q, cos, sin)
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    config = LlamaConfig(hidden_size=3 * D, num_attention_heads=3, rope_theta=base, max_position_embeddings=32)
    hf_cos, hf_sin = LlamaRotaryEmbedding(config)(q, torch.arange(T)[None])
    want, _ = apply_rotary_pos_emb(q, q, hf_cos, hf_sin)
    cause, text = wrong_pieces(q, base)
    expect_close(out, want, f"apply_rotary(q, *rotary_cos_sin({T}, {D}, base={base:g})) vs Hugging Face Llama",
                 module=MODULE, inputs=dict(q=q), cause=cause, hint=text.strip() or None)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64], ids=str)
def test_apply_rotary_keeps_the_dtype_of_x(dtype):
    x = randn(2, 3, 5, 8, seed=7, dtype=dtype)
    cos, sin = ref().rotary_cos_sin(5, 8, 100.0)  # float32 tables, as rotary_cos_sin makes them
    out = my_apply(x, cos, sin)
    if isinstance(out, torch.Tensor) and out.dtype != dtype:
        fail(MODULE, "The output keeps x's dtype.",
             cause=f"apply_rotary of a {str(dtype)[6:]} x with float32 cos/sin returned {str(out.dtype)[6:]}: "
                   f"cast cos and sin to x.dtype (cos.to(x.dtype))")
    # The tables are float32, so even a float64 answer is only float32-accurate: rotating in float32 and
    # casting back (as Meta's Llama code does) is as right as casting the tables to float64.
    atol, rtol = tolerance(torch.float32) if dtype == torch.float64 else tolerance(dtype)
    expect_close(out, ref().apply_rotary(x, cos, sin), "apply_rotary", module=MODULE,
                 inputs=dict(x=x, cos=cos, sin=sin), atol=atol, rtol=rtol, likely=apply_mistakes(x, cos, sin))


def test_apply_rotary_does_not_modify_its_inputs():
    x = randn(2, 3, 5, 8, seed=8)
    cos, sin = ref().rotary_cos_sin(5, 8)
    before = dict(x=x.clone(), cos=cos.clone(), sin=sin.clone())
    my_apply(x, cos, sin)
    expect_unchanged(before, dict(x=x, cos=cos, sin=sin), "apply_rotary", module=MODULE)
    mine().rotate_half(x)
    expect_unchanged(before, dict(x=x, cos=cos, sin=sin), "rotate_half", module=MODULE)


# --- properties: no reference needed --------------------------------------------------------


def my_rope(x, base=10000.0):
    """x (B, H, T, D) rotated with your own tables."""
    T, D = x.shape[-2:]
    cos, sin = check_tables(mine().rotary_cos_sin(T, D, base), f"rotary_cos_sin({T}, {D}, base={base:g})")
    return mine().apply_rotary(x, cos, sin)


def test_position_0_is_the_identity():
    x = randn(2, 3, 4, 16, seed=9)
    out = my_rope(x)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        fail(MODULE, f"apply_rotary returned {describe_out(out)} for x {tuple(x.shape)}; it keeps x's shape.")
    atol, rtol = tolerance(torch.float32)
    if not torch.allclose(out[:, :, 0], x[:, :, 0], atol=atol, rtol=rtol):
        cause, text = wrong_pieces(x, 10000.0)
        fail(MODULE, "RoPE changed the vectors at position 0; the angle there is 0 (cos 1, sin 0), so they must "
                     "come out unchanged." + text, cause=cause)


def test_rotation_keeps_every_vector_length():
    x = randn(2, 3, 9, 16, seed=10)
    out = my_rope(x, base=100.0)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        fail(MODULE, f"apply_rotary returned {describe_out(out)} for x {tuple(x.shape)}; it keeps x's shape.")
    cause, text = wrong_pieces(x, 100.0)
    expect_close(out.norm(dim=-1), x.norm(dim=-1), "the length of each rotated vector, |rope(x)|, against |x|",
                 module=MODULE, inputs=dict(x=x), cause=cause,
                 hint="A rotation keeps lengths: each pair of channels (j, j + D/2) turns by one angle." + text)


def test_q_dot_k_depends_only_on_the_relative_position():
    T, D = 10, 16
    q, k = randn(D, seed=11), randn(D, seed=12)
    # the same q at every position, the same k at every position
    rq = my_rope(q.expand(1, 1, T, D).contiguous(), base=100.0)
    rk = my_rope(k.expand(1, 1, T, D).contiguous(), base=100.0)
    if not isinstance(rq, torch.Tensor) or rq.shape != (1, 1, T, D):
        fail(MODULE, f"apply_rotary returned {describe_out(rq)} for x (1, 1, {T}, {D}); it keeps x's shape.")
    scores = (rq[0, 0] @ rk[0, 0].T).double()  # scores[m, n] = rope(q, m) · rope(k, n)
    diff = (scores[1:, 1:] - scores[:-1, :-1]).abs()  # shifting both positions by 1 must change nothing
    if diff.max() > 1e-4 * (1 + scores.abs().max()):
        m, n = (int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
        cause, text = wrong_pieces(torch.stack((q, k)).expand(1, 2, T, D).contiguous(), 100.0)
        fail(MODULE, f"rope(q at position {m}) · rope(k at position {n}) = {scores[m, n]:.5g} but at positions "
                     f"({m + 1}, {n + 1}) it is {scores[m + 1, n + 1]:.5g}: shifting both positions should not change "
                     f"the dot product, which should depend only on m - n." + text, cause=cause)


def describe_out(out):
    return f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
