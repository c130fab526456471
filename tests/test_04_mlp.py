"""04 mlp: gelu_tanh, relu_squared, MLP (exercises/mlp.py).

Checked against the reference, against torch's F.gelu(approximate="tanh") (computed
outside the exercise: F.gelu and nn.GELU are off limits inside it), and against the
erf GELU it must not be: the two differ by up to 5e-4 around |x| = 2.7, far above
the float32 tolerance for values near 0.
"""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from harness import (
    expect_close, expect_gradients_everywhere, expect_unchanged, fail, forbid, learner, load_reference_weights,
    perturb_parameters, randn, reference, seeded, small_config, substitute,
)

MODULE = "mlp"
OFF_LIMITS = "write gelu_tanh yourself from its formula; F.gelu and nn.GELU are off limits here."
BUILTINS = [(F, "gelu"), (torch._C._nn, "gelu"), (nn.GELU, "forward")]
KINDS = ["gelu", "relu2", "swiglu"]


def mine():
    return learner(MODULE)


def run(fn, *args, **kwargs):
    """Call the learner's code with the built-in GELU refusing to run."""
    with forbid(MODULE, OFF_LIMITS, BUILTINS, learner_module=mine()):
        return fn(*args, **kwargs)


def run_mlp(mlp, x):
    """Your MLP's forward on x with the reference's gelu_tanh and relu_squared in place of yours, so that the MLP
    tests check forward itself (the activations have tests of their own); a forward that writes the activation
    out is unaffected."""
    with substitute(mine(), gelu_tanh=reference(MODULE).gelu_tanh, relu_squared=reference(MODULE).relu_squared):
        return run(mlp, x)


# --- known mistakes, computed in float64 ------------------------------------------------------

ERF_GELU = "this is the exact (erf) GELU; GPT-2 uses the tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x³)))"


def tanh_gelu_with(x, half=0.5, scale=math.sqrt(2 / math.pi), power=3, coef=0.044715):
    return half * x * (1 + torch.tanh(scale * (x + coef * x.pow(power))))


def gelu_mistakes(x):
    x64 = x.double()
    cast = lambda fn: (lambda: fn().to(x.dtype))  # noqa: E731
    return [
        (ERF_GELU, cast(lambda: 0.5 * x64 * (1 + torch.erf(x64 / math.sqrt(2))))),
        ("the factor 0.5 is missing: 0.5 * x * (1 + tanh(...))", cast(lambda: tanh_gelu_with(x64, half=1.0))),
        ("the cubic term uses x² instead of x³: x + 0.044715 * x³", cast(lambda: tanh_gelu_with(x64, power=2))),
        ("the constant is sqrt(2 * pi); it is sqrt(2 / pi)", cast(lambda: tanh_gelu_with(x64, scale=math.sqrt(2 * math.pi)))),
        ("the constant is 2 / pi without the square root; it is sqrt(2 / pi)",
         cast(lambda: tanh_gelu_with(x64, scale=2 / math.pi))),
        ("the 0.044715 x³ term is missing", cast(lambda: tanh_gelu_with(x64, coef=0.0))),
        ("sqrt(2/pi) multiplies only x; it multiplies the whole (x + 0.044715 x³)",
         cast(lambda: 0.5 * x64 * (1 + torch.tanh(math.sqrt(2 / math.pi) * x64 + 0.044715 * x64.pow(3))))),
        ("this is the sigmoid approximation x * sigmoid(1.702 x); GPT-2 uses the tanh form",
         cast(lambda: x64 * torch.sigmoid(1.702 * x64))),
        ("this is relu, not GELU", cast(lambda: x64.clamp_min(0))),
    ]


def relu_squared_mistakes(x):
    x64 = x.double()
    cast = lambda fn: (lambda: fn().to(x.dtype))  # noqa: E731
    return [
        ("x is squared without the relu: negative inputs must give 0, not x²", cast(lambda: x64.square())),
        ("this is a plain relu: square it, relu(x)²", cast(lambda: x64.clamp_min(0))),
    ]


# --- gelu_tanh --------------------------------------------------------------------------------

SHAPES = [(7,), (3, 10), (2, 5, 16)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gelu_tanh_matches_reference(shape):
    x = randn(*shape, seed=1, scale=2.5)
    out = run(mine().gelu_tanh, x)
    expect_close(out, reference(MODULE).gelu_tanh(x), "gelu_tanh", module=MODULE, inputs=dict(x=x),
                 likely=gelu_mistakes(x))


def test_gelu_tanh_matches_torch():
    x = randn(4, 64, seed=2, scale=3.0)
    want = F.gelu(x, approximate="tanh")
    out = run(mine().gelu_tanh, x)
    expect_close(out, want, 'gelu_tanh vs F.gelu(x, approximate="tanh")', module=MODULE, inputs=dict(x=x),
                 likely=gelu_mistakes(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_gelu_tanh_is_not_the_erf_gelu(dtype):
    # Where the two GELUs differ most relative to their values: |x| around 1.1-1.5 and 2.2-3.2, mostly
    # negative (small outputs); the gap there is 20 to 10^6 times the tolerance.
    x = torch.cat([torch.linspace(-3.2, -2.2, 11), torch.linspace(-1.5, -1.1, 5), torch.linspace(1.1, 1.5, 5)])
    x = x.to(dtype)
    want = F.gelu(x.double(), approximate="tanh").to(dtype)
    out = run(mine().gelu_tanh, x)
    expect_close(out, want, "gelu_tanh", module=MODULE, inputs=dict(x=x), likely=gelu_mistakes(x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("fn", ["gelu_tanh", "relu_squared"])
def test_activation_keeps_dtype(fn, dtype):
    x = randn(3, 32, seed=3, scale=2.0, dtype=dtype)
    out = run(getattr(mine(), fn), x)
    # The exact value, rounded once to dtype: any order of the arithmetic lies within a few roundings of it.
    truth = getattr(reference(MODULE), fn)(x.double()).to(dtype)
    if isinstance(out, torch.Tensor) and out.dtype != dtype:
        fail(MODULE, "torch.tanh, torch.pow and arithmetic with Python floats keep x's dtype.",
             cause=f"{fn} of a {str(dtype)[6:]} x returned {str(out.dtype)[6:]}, not x's dtype")
    likely = gelu_mistakes(x) if fn == "gelu_tanh" else relu_squared_mistakes(x)
    expect_close(out, truth, fn, module=MODULE, inputs=dict(x=x), likely=likely)


def test_gelu_tanh_handles_large_inputs():
    x = torch.tensor([-60.0, -30.0, -10.0, 10.0, 30.0, 60.0])
    out = run(mine().gelu_tanh, x)
    if isinstance(out, torch.Tensor) and out.shape == x.shape and not torch.isfinite(out).all():
        bad = [f"{v:g}" for v in x[~torch.isfinite(out)].tolist()]
        fail(MODULE, "For large |x| gelu_tanh(x) is x (x > 0) or 0 (x < 0); torch.tanh saturates at ±1 instead of "
                     "overflowing.", cause=f"gelu_tanh gives inf or NaN at x = {', '.join(bad)}")
    expect_close(out, F.gelu(x, approximate="tanh"), "gelu_tanh", module=MODULE, inputs=dict(x=x),
                 likely=gelu_mistakes(x), hint="This test isolates large |x|, where gelu_tanh(x) is x (x > 0) or 0 "
                                               "(x < 0).")


# --- relu_squared ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_relu_squared_matches_reference(shape):
    x = randn(*shape, seed=4, scale=2.0)
    out = run(mine().relu_squared, x)
    expect_close(out, reference(MODULE).relu_squared(x), "relu_squared", module=MODULE, inputs=dict(x=x),
                 likely=relu_squared_mistakes(x))


def test_relu_squared_matches_torch():
    x = randn(4, 64, seed=5, scale=2.0)
    out = run(mine().relu_squared, x)
    expect_close(out, torch.relu(x).pow(2), "relu_squared vs torch.relu(x) ** 2", module=MODULE,
                 inputs=dict(x=x), likely=relu_squared_mistakes(x))


@pytest.mark.parametrize("fn", ["gelu_tanh", "relu_squared"])
def test_activations_do_not_modify_their_input(fn):
    x = randn(4, 16, seed=6, scale=2.0)
    before = dict(x=x.clone())
    run(getattr(mine(), fn), x)
    expect_unchanged(before, dict(x=x), fn, module=MODULE)


@pytest.mark.parametrize("fn", ["gelu_tanh", "relu_squared"])
def test_activations_pass_gradients(fn):
    x = randn(4, 16, seed=7, scale=2.0).abs().add(0.1).requires_grad_()  # positive: both activations pass gradient
    out = run(getattr(mine(), fn), x)
    (out * randn(4, 16, seed=8)).sum().backward()
    if x.grad is None or not torch.any(x.grad != 0):
        fail(MODULE, "Compute with torch operations on x (no .detach(), .item(), .numpy(), math.tanh or "
                     "torch.no_grad()).", cause=f"{fn}: no gradient reaches x")


# --- MLP ---------------------------------------------------------------------------------------


def mlp_config(kind, bias=True, hidden=None, n_embd=32):
    return small_config(mlp=kind, bias=bias, mlp_hidden=hidden, n_embd=n_embd)


def expected_shapes(config):
    C, H = config.n_embd, config.mlp_hidden
    fc_out = 2 * H if config.mlp == "swiglu" else H
    shapes = {"c_fc.weight": (fc_out, C), "c_proj.weight": (C, H)}
    if config.bias:
        shapes.update({"c_fc.bias": (fc_out,), "c_proj.bias": (C,)})
    return shapes


CONFIGS = [
    pytest.param(dict(kind=k, bias=b, hidden=h), id=f"{k}-{'bias' if b else 'nobias'}-hidden{h or 'default'}")
    for k in KINDS for b in (True, False) for h in (None, 48)
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_mlp_parameter_names_and_shapes(cfg):
    config = mlp_config(**cfg)
    mlp = run(mine().MLP, config)
    have = {k: tuple(v.shape) for k, v in mlp.state_dict().items()}
    want = expected_shapes(config)
    what = f"MLP(mlp={config.mlp!r}, n_embd={config.n_embd}, mlp_hidden={config.mlp_hidden}, bias={config.bias})"
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    if missing or extra:
        text = f"{what} has state_dict keys {sorted(have)}, expected {sorted(want)}."
        cause = None
        if any(k.endswith("bias") for k in extra) and not config.bias:
            cause = (f"{', '.join(k for k in extra if k.endswith('bias'))} exists although bias=False: neither "
                     f"Linear has a bias then, nn.Linear(..., bias=config.bias)")
        elif any(k.endswith("bias") for k in missing) and config.bias:
            cause = (f"{', '.join(k for k in missing if k.endswith('bias'))} is missing although bias=True: both "
                     f"Linears have a bias then, nn.Linear(..., bias=config.bias)")
        elif any(k.endswith("weight") for k in missing):
            cause = "the two Linears are not called c_fc (in) and c_proj (out)"
        fail(MODULE, text, cause=cause)
    for key, shape in want.items():
        if have[key] == shape:
            continue
        text = f"{what}: {key} has shape {have[key]}, expected {shape}."
        H, C = config.mlp_hidden, config.n_embd
        cause = None
        if key.startswith("c_fc") and config.mlp == "swiglu" and have[key][0] == H:
            cause = (f"c_fc is not doubled for swiglu: it outputs 2 * mlp_hidden = {2 * H} channels, the gate and up "
                     f"halves side by side")
        elif key.startswith("c_fc") and config.mlp != "swiglu" and have[key][0] == 2 * H:
            cause = f"c_fc is doubled, but only swiglu doubles it; {config.mlp!r} has c_fc output mlp_hidden = {H}"
        elif 4 * C in have[key] and H != 4 * C:
            cause = f"the hidden size is 4 * n_embd = {4 * C}; it is config.mlp_hidden ({H} here)"
        elif have[key] == tuple(reversed(shape)):
            cause = f"{key} is transposed: nn.Linear(in, out).weight has shape (out, in)"
        fail(MODULE, text, cause=cause)


def mlp_mistakes(ref, config, x):
    """Outputs of wrong activations, computed with the reference's own (loaded) Linears."""
    kind = config.mlp
    h_of = lambda: ref.c_fc(x)  # noqa: E731
    proj = lambda act: (lambda: ref.c_proj(act(h_of())))  # noqa: E731
    gelu = reference(MODULE).gelu_tanh
    if kind == "swiglu":
        halves = lambda h: h.chunk(2, dim=-1)  # noqa: E731
        return [
            ("the halves of c_fc's output are swapped: silu goes on the first half (the gate), which multiplies "
             "the second (up); here silu was applied to the second half",
             proj(lambda h: F.silu(halves(h)[1]) * halves(h)[0])),
            ("silu is missing: the activation is silu(gate) * up, not gate * up",
             proj(lambda h: halves(h)[0] * halves(h)[1])),
            ("silu is applied to both halves; it goes on the gate only: silu(gate) * up",
             proj(lambda h: F.silu(halves(h)[0]) * F.silu(halves(h)[1]))),
            ("silu is applied to the product; it goes on the gate alone: silu(gate) * up",
             proj(lambda h: F.silu(halves(h)[0] * halves(h)[1]))),
            ("sigmoid is used instead of silu; silu(x) = x * sigmoid(x)",
             proj(lambda h: torch.sigmoid(halves(h)[0]) * halves(h)[1])),
            ("gelu is used instead of silu (that is GEGLU); swiglu is silu(gate) * up",
             proj(lambda h: gelu(halves(h)[0]) * halves(h)[1])),
            ("c_fc's output is split into even and odd channels; split it into two halves, gate = the first "
             "mlp_hidden channels, up = the rest (h.chunk(2, dim=-1))",
             proj(lambda h: F.silu(h[..., 0::2]) * h[..., 1::2])),
            ("c_fc's output is split into even and odd channels with the roles swapped; split it into halves, "
             "gate first", proj(lambda h: F.silu(h[..., 1::2]) * h[..., 0::2])),
        ]
    wrong_kind = "gelu" if kind == "relu2" else "relu2"
    common = [
        ("the activation is missing: c_proj(c_fc(x))", proj(lambda h: h)),
        (f"this is the {wrong_kind} MLP; config.mlp is {kind!r}: pick the activation by config.mlp",
         proj(gelu if kind == "relu2" else reference(MODULE).relu_squared)),
    ]
    if kind == "gelu":
        return [
            (ERF_GELU, proj(lambda h: 0.5 * h * (1 + torch.erf(h / math.sqrt(2))))),
            ("relu is used instead of gelu_tanh", proj(F.relu)),
        ] + common
    return [
        ("x² without the relu is used: relu_squared(h) = relu(h)²", proj(lambda h: h.square())),
        ("a plain relu is used: relu_squared squares it", proj(F.relu)),
    ] + common


@pytest.mark.parametrize("cfg", CONFIGS)
def test_mlp_matches_reference(cfg):
    config = mlp_config(**cfg)
    with seeded(11):
        ref = perturb_parameters(reference(MODULE).MLP(config), seed=11, scale=0.1)
    mlp = load_reference_weights(run(mine().MLP, config), ref, "MLP", module=MODULE)
    x = randn(2, 5, config.n_embd, seed=12, scale=2.0)
    with torch.no_grad():
        out = run_mlp(mlp, x)
        expect_close(out, ref(x), "MLP", module=MODULE, inputs=dict(x=x, config=config),
                     likely=mlp_mistakes(ref, config, x))


@pytest.mark.parametrize("kind", KINDS)
def test_mlp_matches_torch_builtins(kind):
    """The MLP written with torch's own GELU and SiLU (outside the exercise)."""
    config = mlp_config(kind, hidden=40)
    with seeded(13):
        ref = perturb_parameters(reference(MODULE).MLP(config), seed=13)
    mlp = load_reference_weights(run(mine().MLP, config), ref, "MLP", module=MODULE)
    x = randn(3, 4, 32, seed=14, scale=2.0)
    with torch.no_grad():
        h = ref.c_fc(x)
        if kind == "gelu":
            h = F.gelu(h, approximate="tanh")
        elif kind == "relu2":
            h = torch.relu(h) ** 2
        else:
            gate, up = h.split(40, dim=-1)
            h = F.silu(gate) * up
        want = ref.c_proj(h)
        expect_close(run_mlp(mlp, x), want, f"MLP(mlp={kind!r}) vs torch", module=MODULE,
                     inputs=dict(x=x, config=config), likely=mlp_mistakes(ref, config, x))


@pytest.mark.parametrize("kind", KINDS)
def test_mlp_acts_on_each_position_separately(kind):
    config = mlp_config(kind)
    mlp = perturb_parameters(run(mine().MLP, config), seed=15)
    x = randn(2, 6, 32, seed=16)
    y = x.clone()
    y[:, 3] += randn(2, 32, seed=17)
    with torch.no_grad():
        out_x, out_y = run(mlp, x), run(mlp, y)
    others = [0, 1, 2, 4, 5]
    if not torch.allclose(out_x[:, others], out_y[:, others], atol=1e-6, rtol=1e-5):
        fail(MODULE, "The MLP works on each (B, T) position's C channels alone (Linear acts on the last dim).",
             cause=f"MLP(mlp={kind!r}) mixes positions: changing x at position 3 changed the output at other positions")


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_mlp_keeps_dtype(kind, dtype):
    config = mlp_config(kind)
    with seeded(18):
        ref = perturb_parameters(reference(MODULE).MLP(config), seed=18).to(dtype)
    mlp = load_reference_weights(run(mine().MLP, config).to(dtype), ref, "MLP", module=MODULE)
    x = randn(2, 5, 32, seed=19, dtype=dtype)
    with torch.no_grad():
        out = run_mlp(mlp, x)
        want = ref(x)
        if isinstance(out, torch.Tensor) and out.dtype != dtype:
            fail(MODULE, "Keep x's dtype (no .float() on the way).",
                 cause=f"MLP(mlp={kind!r}) in {str(dtype)[6:]} returned {str(out.dtype)[6:]}, not x's dtype")
        expect_close(out, want, f"MLP(mlp={kind!r})", module=MODULE, inputs=dict(x=x, config=config),
                     likely=mlp_mistakes(ref, config, x))


@pytest.mark.parametrize("kind", KINDS)
def test_mlp_does_not_modify_its_input(kind):
    config = mlp_config(kind)
    mlp = run(mine().MLP, config)
    x = randn(2, 5, 32, seed=20)
    before = dict(x=x.clone())
    with torch.no_grad():
        run(mlp, x)
    expect_unchanged(before, dict(x=x), f"MLP(mlp={kind!r})", module=MODULE)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("kind", KINDS)
def test_mlp_gradients_reach_every_parameter_and_the_input(kind, bias):
    config = mlp_config(kind, bias=bias, hidden=24)
    mlp = perturb_parameters(run(mine().MLP, config), seed=21, scale=0.3)
    x = randn(2, 5, 32, seed=22).requires_grad_()
    out = run(mlp, x)
    expect_gradients_everywhere(mlp, (out * randn(2, 5, 32, seed=23)).sum(), f"MLP(mlp={kind!r})", module=MODULE)
    if x.grad is None or not torch.any(x.grad != 0):
        fail(MODULE, "Keep the computation in autograd.", cause=f"MLP(mlp={kind!r}): no gradient reaches the input x")
