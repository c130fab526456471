"""01 norms: layer_norm, rms_norm, LayerNorm, RMSNorm (exercises/norms.py).

Checked against the reference and against torch's own F.layer_norm / F.rms_norm,
which are off limits inside the exercise itself.
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from harness import (
    describe, expect_close, expect_gradients_everywhere, expect_unchanged, fail, forbid, keepdim_cause, learner,
    load_reference_weights, perturb_parameters, randn, reference,
)

MODULE = "norms"
OFF_LIMITS = "write the normalisation yourself; F.layer_norm, F.rms_norm, nn.LayerNorm and nn.RMSNorm are off limits here."
BUILTINS = [
    (F, "layer_norm"), (torch, "layer_norm"), (torch, "native_layer_norm"), (nn.LayerNorm, "forward"),
    (F, "rms_norm"), (torch, "rms_norm"), (nn.RMSNorm, "forward"),
]


def mine():
    return learner(MODULE)


def run(fn, *args, **kwargs):
    """Call the learner's code with the built-in norms refusing to run.

    A broadcasting RuntimeError whose sizes show a mean over the last dim that lost its size-1 axis fails
    with that cause (keepdim=True) instead of the bare error."""
    with forbid(MODULE, OFF_LIMITS, BUILTINS, learner_module=mine()):
        try:
            return fn(*args, **kwargs)
        except RuntimeError as error:
            x = next((a for a in args if isinstance(a, torch.Tensor)), None)
            cause = keepdim_cause(error, x)
            if cause is None:
                raise
            name = getattr(fn, "__name__", type(fn).__name__)
            fail(MODULE, f"{name}(x {describe(x)}) raised RuntimeError: {error}", cause=cause)


# Known mistakes, computed in float64 from x and the parameters: the message names the one that matches.
def unbiased_layer_norm(x, w, b, eps):
    y = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=True, keepdim=True) + eps)
    return affine(y, w, b)


def eps_outside_sqrt(x, w, b, eps):
    y = (x - x.mean(-1, keepdim=True)) / (x.var(-1, unbiased=False, keepdim=True).sqrt() + eps)
    return affine(y, w, b)


def affine(y, w, b):
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def layer_norm_mistakes(x, w, b, eps):
    d = lambda t: None if t is None else t.double()  # noqa: E731
    x64, w64, b64 = x.double(), d(w), d(b)
    centred = x64 - x64.mean(-1, keepdim=True)
    std = torch.sqrt(x64.var(-1, unbiased=False, keepdim=True) + eps)
    cast = lambda fn: (lambda: fn().to(x.dtype))  # noqa: E731
    return [
        ("the variance is unbiased (divided by C - 1); LayerNorm divides by C (torch.var(..., unbiased=False))",
         cast(lambda: unbiased_layer_norm(x64, w64, b64, eps))),
        ("eps is added to the standard deviation; it belongs inside the square root, sqrt(var + eps)",
         cast(lambda: eps_outside_sqrt(x64, w64, b64, eps))),
        ("eps is added after the division, (x - mean) / sqrt(var) + eps; it belongs inside the square root, "
         "sqrt(var + eps)",
         cast(lambda: affine(centred / x64.var(-1, unbiased=False, keepdim=True).sqrt() + eps, w64, b64))),
        ("the mean is not subtracted (that is rms_norm); layer_norm centres x first",
         cast(lambda: affine(x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + eps), w64, b64))),
        ("the weight is not applied", cast(lambda: affine(centred / std, None, b64))),
        ("the bias is not added", cast(lambda: affine(centred / std, w64, None))),
        ("the statistics are taken over the first dim instead of the last (use dim=-1)",
         cast(lambda: affine((x64 - x64.mean(0, keepdim=True))
                             / torch.sqrt(x64.var(0, unbiased=False, keepdim=True) + eps), w64, b64))),
    ]


def rms_norm_mistakes(x, w, eps):
    x64, w64 = x.double(), None if w is None else w.double()
    ms = x64.pow(2).mean(-1, keepdim=True)
    cast = lambda fn: (lambda: fn().to(x.dtype))  # noqa: E731
    return [
        ("the mean is subtracted (that is layer_norm); rms_norm only scales",
         cast(lambda: affine((x64 - x64.mean(-1, keepdim=True))
                             / torch.sqrt(x64.var(-1, unbiased=False, keepdim=True) + eps), w64, None))),
        ("eps is added to the root mean square; it belongs inside the square root, sqrt(mean(x²) + eps)",
         cast(lambda: affine(x64 / (ms.sqrt() + eps), w64, None))),
        ("eps is added after the division, x / sqrt(mean(x²)) + eps; it belongs inside the square root, "
         "sqrt(mean(x²) + eps)", cast(lambda: affine(x64 / ms.sqrt() + eps, w64, None))),
        ("the sum of squares is used instead of the mean (divide by C)",
         cast(lambda: affine(x64 * torch.rsqrt(x64.pow(2).sum(-1, keepdim=True) + eps), w64, None))),
        ("the weight is not applied", cast(lambda: x64 * torch.rsqrt(ms + eps))),
        ("x is divided by mean(x²) without the square root",
         cast(lambda: affine(x64 / (ms + eps), w64, None))),
        ("the mean of |x| is used where the mean of x² belongs: rms_norm divides by sqrt(mean(x²) + eps), the "
         "root of the mean square", cast(lambda: affine(x64 * torch.rsqrt(x64.abs().mean(-1, keepdim=True) + eps),
                                                        w64, None))),
        ("x is divided by mean(|x|), the mean absolute value, with no square root; rms_norm divides by the root "
         "mean square, sqrt(mean(x²) + eps)", cast(lambda: affine(x64 / (x64.abs().mean(-1, keepdim=True) + eps),
                                                                  w64, None))),
        ("x is divided by mean(|x|), the mean absolute value, with no square root; rms_norm divides by the root "
         "mean square, sqrt(mean(x²) + eps)", cast(lambda: affine(x64 / x64.abs().mean(-1, keepdim=True), w64, None))),
        ("the statistics are taken over the first dim instead of the last (use dim=-1)",
         cast(lambda: affine(x64 * torch.rsqrt(x64.pow(2).mean(0, keepdim=True) + eps), w64, None))),
    ]


SHAPES = [(3, 8), (2, 5, 16), (2, 3, 4, 7)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("affine_params", ["weight+bias", "weight", "none"])
def test_layer_norm_matches_reference(shape, affine_params):
    C = shape[-1]
    x = randn(*shape, seed=1, scale=3.0) + 2.0  # a mean far from 0, so a missing centring shows
    w = randn(C, seed=2) + 1.0 if affine_params != "none" else None
    b = randn(C, seed=3) if affine_params == "weight+bias" else None
    eps = 1e-1  # large, so that where eps goes shows
    out = run(mine().layer_norm, x, w, b, eps=eps)
    expect_close(out, reference(MODULE).layer_norm(x, w, b, eps=eps), "layer_norm", module=MODULE,
                 inputs=dict(x=x, weight=w, bias=b, eps=eps), likely=layer_norm_mistakes(x, w, b, eps))


def test_layer_norm_matches_torch():
    x, w, b = randn(4, 6, 24, seed=4, scale=2.0), randn(24, seed=5), randn(24, seed=6)
    want = F.layer_norm(x, (24,), w, b, eps=1e-5)
    out = run(mine().layer_norm, x, w, b, eps=1e-5)
    expect_close(out, want, "layer_norm vs F.layer_norm", module=MODULE, inputs=dict(x=x, weight=w, bias=b),
                 likely=layer_norm_mistakes(x, w, b, 1e-5))


def default_eps_cause(call, eps, signature):
    return (f"the default eps is not {eps}: {call} with eps={eps} passed explicitly matches on this input, "
            f"{call} without it does not ({signature})")


def test_layer_norm_default_eps_is_1e_5():
    x = randn(2, 4, seed=7, scale=1e-3)  # variance ~1e-6, below eps: the eps used decides the output
    want = F.layer_norm(x, (4,), eps=1e-5)
    expect_close(run(mine().layer_norm, x, eps=1e-5), want, "layer_norm", module=MODULE,
                 inputs=dict(x=x, eps=1e-5), likely=layer_norm_mistakes(x, None, None, 1e-5))
    expect_close(run(mine().layer_norm, x), want, "layer_norm", module=MODULE, inputs=dict(x=x),
                 cause=default_eps_cause("layer_norm(x)", "1e-5", "def layer_norm(x, weight=None, bias=None, eps=1e-5)"))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("with_weight", [True, False], ids=["weight", "no-weight"])
def test_rms_norm_matches_reference(shape, with_weight):
    C = shape[-1]
    x = randn(*shape, seed=11, scale=3.0) + 1.0
    w = randn(C, seed=12) + 1.0 if with_weight else None
    eps = 1e-1
    out = run(mine().rms_norm, x, w, eps=eps)
    expect_close(out, reference(MODULE).rms_norm(x, w, eps=eps), "rms_norm", module=MODULE,
                 inputs=dict(x=x, weight=w, eps=eps), likely=rms_norm_mistakes(x, w, eps))


def test_rms_norm_matches_torch():
    x, w = randn(4, 6, 24, seed=13, scale=2.0), randn(24, seed=14)
    want = F.rms_norm(x, (24,), w, eps=1e-6)
    out = run(mine().rms_norm, x, w, eps=1e-6)
    expect_close(out, want, "rms_norm vs F.rms_norm", module=MODULE, inputs=dict(x=x, weight=w),
                 likely=rms_norm_mistakes(x, w, 1e-6))


def test_rms_norm_default_eps_is_1e_6():
    x = randn(2, 4, seed=15, scale=1e-3)  # mean(x²) ~1e-6, the size of eps: the eps used decides the output
    want = F.rms_norm(x, (4,), eps=1e-6)
    expect_close(run(mine().rms_norm, x, eps=1e-6), want, "rms_norm", module=MODULE, inputs=dict(x=x, eps=1e-6),
                 likely=rms_norm_mistakes(x, None, 1e-6))
    expect_close(run(mine().rms_norm, x), want, "rms_norm", module=MODULE, inputs=dict(x=x),
                 cause=default_eps_cause("rms_norm(x)", "1e-6", "def rms_norm(x, weight=None, eps=1e-6)"))


@pytest.mark.parametrize("fn", ["layer_norm", "rms_norm"])
def test_float16_with_large_values_does_not_overflow(fn):
    # |x| up to ~1000: x² reaches 1e6, far above float16's largest value (65504).
    x32 = randn(3, 64, seed=21, scale=400.0)
    x = x32.half()
    w = (randn(64, seed=22) * 0.1 + 1.0).half()
    out = run(getattr(mine(), fn), x, w)
    want = getattr(reference(MODULE), fn)(x, w)
    overflow = (f"x² overflows float16 (max 65504) for |x| up to {x32.abs().max():.0f}: convert x to float32 "
                f"before squaring and the result back to x's dtype at the end")
    if isinstance(out, torch.Tensor) and out.dtype == torch.float16 and not torch.isfinite(out).all():
        # the same values in float32 come out finite: the float16 arithmetic overflowed
        in_float32 = run(getattr(mine(), fn), x.float(), w.float())
        finite32 = isinstance(in_float32, torch.Tensor) and bool(torch.isfinite(in_float32).all())
        fail(MODULE, f"{fn} of a float16 x gave inf or NaN" + (", and finite values for the same x in float32."
                                                                  if finite32 else "."),
             cause=overflow if finite32 else None)
    mistakes = layer_norm_mistakes(x, w, None, 1e-5) if fn == "layer_norm" else rms_norm_mistakes(x, w, 1e-6)
    in_float16 = lambda: in_own_dtype(fn, x, w)  # noqa: E731
    expect_close(out, want, fn, module=MODULE, inputs=dict(x=x, weight=w), likely=[(overflow, in_float16), *mistakes])


def in_own_dtype(fn, x, w):
    """The norm computed without upcasting: in float16, x² becomes inf and the output 0."""
    if fn == "rms_norm":
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w
    centred = x - x.mean(-1, keepdim=True)
    return centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + 1e-5) * w


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64], ids=str)
@pytest.mark.parametrize("fn", ["layer_norm", "rms_norm"])
def test_returns_the_input_dtype(fn, dtype):
    x = randn(2, 3, 16, seed=23, dtype=dtype)
    w = randn(16, seed=24, dtype=dtype)
    out = run(getattr(mine(), fn), x, w)
    want = getattr(reference(MODULE), fn)(x, w)
    if isinstance(out, torch.Tensor) and out.dtype != dtype:
        fail(MODULE, "Compute in float32 (float64 stays float64) but return x's dtype: .to(x.dtype) at the end.",
             cause=f"{fn} of a {str(dtype)[6:]} x returned {str(out.dtype)[6:]}, not x's dtype")
    likely = layer_norm_mistakes(x, w, None, 1e-5) if fn == "layer_norm" else rms_norm_mistakes(x, w, 1e-6)
    if dtype == torch.float64:
        in_float32 = "float64 was computed in float32; leave float64 as it is (upcast only below float32)"
        ref = getattr(reference(MODULE), fn)
        likely = [(in_float32, lambda: ref(x.float(), w.float()).double()),  # all of it in float32
                  (in_float32, lambda: ref(x.float(), None).double() * w),  # the normalisation, then a float64 weight
                  *likely]
    expect_close(out, want, fn, module=MODULE, inputs=dict(x=x, weight=w), likely=likely)


def test_functions_do_not_modify_their_inputs():
    x, w, b = randn(2, 5, 8, seed=31), randn(8, seed=32), randn(8, seed=33)
    before = dict(x=x.clone(), weight=w.clone(), bias=b.clone())
    run(mine().layer_norm, x, w, b)
    expect_unchanged(before, dict(x=x, weight=w, bias=b), "layer_norm", module=MODULE)
    run(mine().rms_norm, x, w)
    expect_unchanged(before, dict(x=x, weight=w, bias=b), "rms_norm", module=MODULE)


def test_layer_norm_module_parameters():
    ln = run(mine().LayerNorm, 12)
    expect_parameters(ln, "LayerNorm(12)", {"weight": torch.ones(12), "bias": torch.zeros(12)})
    ln = run(mine().LayerNorm, 12, bias=False)
    expect_parameters(ln, "LayerNorm(12, bias=False)", {"weight": torch.ones(12)})


def test_rms_norm_module_parameters():
    expect_parameters(run(mine().RMSNorm, 12), "RMSNorm(12)", {"weight": torch.ones(12)})


def expect_parameters(module, what, want):
    have = dict(module.named_parameters())
    if set(have) != set(want):
        cause = None
        if "bias" in have and "bias" not in want:
            cause = f"{what} has a bias parameter; with bias=False self.bias is None"
        elif "bias" in want and "bias" not in have and "weight" in have:
            cause = f"{what} has no bias parameter; with bias=True self.bias = nn.Parameter(torch.zeros(ndim))"
        fail(MODULE, f"{what} has parameters {sorted(have)}, expected {sorted(want)} "
                     f"(nn.Parameter attributes; a bias of None when bias=False).", cause=cause)
    for name, value in want.items():
        if have[name].shape != value.shape or not torch.equal(have[name].detach(), value):
            start = "ones" if value.sum() else "zeros"
            fail(MODULE, f"Start it as torch.{start}(ndim).",
                 cause=f"{what}.{name} does not start as {start} of shape {tuple(value.shape)}")
    if set(module.state_dict()) != set(want):
        extra = sorted(set(module.state_dict()) - set(want))
        fail(MODULE, f"{what}'s state_dict has keys {sorted(module.state_dict())}, expected {sorted(want)}.",
             cause=f"{what} keeps persistent buffers ({', '.join(extra)}): a norm holds its parameters only"
                   if extra else None)


def test_layer_norm_module_default_eps_is_1e_5():
    x = randn(2, 3, 4, seed=45, scale=1e-3)  # variance ~1e-6, below eps: the eps used decides the output
    want = F.layer_norm(x, (4,), eps=1e-5)
    expect_close(run(run(mine().LayerNorm, 4, eps=1e-5), x), want, "LayerNorm(4, eps=1e-5)", module=MODULE,
                 inputs=dict(x=x), likely=layer_norm_mistakes(x, None, None, 1e-5))
    expect_close(run(run(mine().LayerNorm, 4), x), want, "LayerNorm(4)", module=MODULE, inputs=dict(x=x),
                 cause=default_eps_cause("LayerNorm(4)", "1e-5", "def __init__(self, ndim, bias=True, eps=1e-5)"))


def test_rms_norm_module_default_eps_is_1e_6():
    x = randn(2, 3, 4, seed=46, scale=1e-3)  # mean(x²) ~1e-6, the size of eps: the eps used decides the output
    want = F.rms_norm(x, (4,), eps=1e-6)
    expect_close(run(run(mine().RMSNorm, 4, eps=1e-6), x), want, "RMSNorm(4, eps=1e-6)", module=MODULE,
                 inputs=dict(x=x), likely=rms_norm_mistakes(x, None, 1e-6))
    expect_close(run(run(mine().RMSNorm, 4), x), want, "RMSNorm(4)", module=MODULE, inputs=dict(x=x),
                 cause=default_eps_cause("RMSNorm(4)", "1e-6", "def __init__(self, ndim, eps=1e-6)"))


def module_eps_mistake(fn, default):
    """forward calls the function without eps=self.eps, so the function's default is used."""
    return (f"forward does not pass the module's eps: it calls {fn} without eps=self.eps, so {fn}'s default "
            f"{default} is used instead of the eps given to the module")


MODULE_EPS = 0.25  # large, so that a module that drops its eps is far off


@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm_module_matches_reference(bias):
    ref = perturb_parameters(reference(MODULE).LayerNorm(16, bias=bias, eps=MODULE_EPS), seed=41)
    ln = load_reference_weights(run(mine().LayerNorm, 16, bias=bias, eps=MODULE_EPS), ref, "LayerNorm", module=MODULE)
    x = randn(2, 5, 16, seed=42, scale=2.0) + 1.0
    w, b = ref.weight.detach(), ref.bias.detach() if bias else None
    ln_ = reference(MODULE).layer_norm
    likely = [
        (module_eps_mistake("layer_norm", "1e-5"), lambda: ln_(x, w, b)),
        *layer_norm_mistakes(x, w, b, MODULE_EPS),
    ]
    expect_close(run(ln, x), ref(x), f"LayerNorm(16, bias={bias}, eps={MODULE_EPS})", module=MODULE,
                 inputs=dict(x=x), likely=likely)


def test_rms_norm_module_matches_reference():
    ref = perturb_parameters(reference(MODULE).RMSNorm(16, eps=MODULE_EPS), seed=43)
    rn = load_reference_weights(run(mine().RMSNorm, 16, eps=MODULE_EPS), ref, "RMSNorm", module=MODULE)
    x = randn(2, 5, 16, seed=44, scale=2.0)
    w = ref.weight.detach()
    rms_ = reference(MODULE).rms_norm
    likely = [
        (module_eps_mistake("rms_norm", "1e-6"), lambda: rms_(x, w)),
        *rms_norm_mistakes(x, w, MODULE_EPS),
    ]
    expect_close(run(rn, x), ref(x), f"RMSNorm(16, eps={MODULE_EPS})", module=MODULE, inputs=dict(x=x), likely=likely)


@pytest.mark.parametrize("cls", ["LayerNorm", "RMSNorm"])
def test_gradients_reach_every_parameter_and_the_input(cls):
    module = perturb_parameters(run(getattr(mine(), cls), 8), seed=51)
    x = randn(3, 8, seed=52).requires_grad_()
    out = run(module, x)
    loss = (out * randn(3, 8, seed=53)).sum()
    expect_gradients_everywhere(module, loss, cls, module=MODULE)
    if x.grad is None or not torch.any(x.grad != 0):
        fail(MODULE, "Keep the computation in autograd (no .detach(), .item() or .numpy()).",
             cause=f"{cls}: no gradient reaches the input x")


def test_layer_norm_adds_a_bias_without_a_weight():
    x = randn(2, 5, 16, seed=41, scale=3.0) + 2.0
    b = randn(16, seed=42)
    out = run(mine().layer_norm, x, None, b, eps=1e-1)
    expect_close(out, reference(MODULE).layer_norm(x, None, b, eps=1e-1), "layer_norm(x, weight=None, bias=b)",
                 module=MODULE, inputs=dict(x=x, bias=b, eps=1e-1),
                 likely=[("the bias is not added when no weight is given; weight and bias are independent",
                          lambda: reference(MODULE).layer_norm(x, None, None, eps=1e-1)),
                         *(m for m in layer_norm_mistakes(x, None, b, 1e-1) if "bias is not added" not in m[0])])
