"""What every kata test shares: which implementation is under test, seeded inputs,
small configs, and comparisons whose failure messages say what is wrong.

    mine = learner("attention")      # exercises.attention (or solutions.attention with --impl solutions)
    ref = reference("attention")     # always solutions.attention
    expect_close(out, want, "causal_attention", inputs=dict(q=q, k=k, v=v),
                 likely=[("the scores were not divided by sqrt(D)", lambda: ...)])

A failure leads with its cause when the test established one (the wrong output
equals one of the `likely` mistakes computed from the reference, or the property
the test isolates failed), then names the call (shapes, dtypes, config), then the
numbers (the largest difference and where it is). The cause travels with the
exception as `Mismatch.cause`; the plugin records it, and the mutant runner counts
a cause that does not describe the mutant as a wrong claim. A sentence that only
*might* explain a failure is never a cause: say what the test isolates instead.
"""

import contextlib
import importlib
import math
import os
import re

import torch

from grader.registry import BY_NAME


def impl() -> str:
    return os.environ.get("KATA_IMPL", "exercises")


def learner(module: str):
    """The module under test: exercises.<module> (swaps applied) or solutions.<module>."""
    return importlib.import_module(f"{impl()}.{module}")


def reference(module: str):
    return importlib.import_module(f"solutions.{module}")


def label(module: str) -> str:
    """'03 attention' for 'attention'."""
    return BY_NAME[module].label


# --- tolerances -----------------------------------------------------------------------------
# (atol, rtol) for comparing an implementation against the reference on O(1) values.
# Two correct implementations differ only in the order and grouping of their arithmetic,
# so the tolerance is a few roundings of the dtype deep; every mistake the tests look for
# changes the values by far more (usually > 1e-2).
TOLERANCE = {
    torch.float64: (1e-10, 1e-8),  # 53-bit mantissa: 1e-16 per operation, thousands of operations
    torch.float32: (2e-5, 1e-4),  # 24 bits: 6e-8 per operation; sums over C channels reorder freely
    torch.float16: (4e-3, 4e-3),  # 11 bits: 5e-4 per rounding, a few roundings apart
    torch.bfloat16: (3e-2, 3e-2),  # 8 bits: 4e-3 per rounding, implementations round at different steps
}
# A whole model (several blocks, embeddings, vocabulary projection) stacks many more
# operations; float32 agreement with Hugging Face is asked to 1e-4 (the contract's figure).
MODEL_TOLERANCE = {torch.float32: (1e-4, 1e-4), torch.float64: (1e-9, 1e-7)}


def tolerance(dtype, model=False):
    table = MODEL_TOLERANCE if model and dtype in MODEL_TOLERANCE else TOLERANCE
    return table[dtype]


# --- inputs ---------------------------------------------------------------------------------


def randn(*shape, seed=0, dtype=torch.float32, scale=1.0, device="cpu"):
    """Seeded normal values that do not disturb torch's global RNG."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype=dtype, device=device)


def randint(high, *shape, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(high, shape, generator=g).to(device)


@contextlib.contextmanager
def seeded(seed):
    """Inside, torch's global RNG starts from seed (and is restored after): a module built here gets the same
    initial weights in every run, whatever ran before, so a test's verdict cannot change between runs.
        with seeded(3): ref = reference("block").Block(config)"""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def perturb_parameters(module, seed=0, scale=0.1):
    """Add seeded noise to every parameter, moving biases off 0 and norm weights off 1,
    so that a dropped bias or an ignored weight shows in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype) * scale)
    return module


def small_config(**overrides):
    """A tiny GPTConfig (from the reference's config.py) for fast tests."""
    GPTConfig = reference("config").GPTConfig
    fields = dict(vocab_size=61, block_size=16, n_layer=2, n_head=4, n_embd=32)
    fields.update(overrides)
    return GPTConfig(**fields)


# Named configs that cover the axes of the contract. Parametrize module tests over these.
CONFIG_VARIANTS = {
    "gpt2": dict(),  # layernorm, learned positions, gelu, bias, tied: multi-head
    "gqa-rope-swiglu": dict(n_kv_head=2, pos_emb="rope", norm="rmsnorm", norm_eps=1e-6, mlp="swiglu",
                            mlp_hidden=48, bias=False, tie_embeddings=False),
    "mqa-qknorm-relu2": dict(n_kv_head=1, pos_emb="rope", norm="rmsnorm", qk_norm=True, mlp="relu2",
                             bias=False, tie_embeddings=False, logit_softcap=15.0),
    "mha-rope-bias": dict(pos_emb="rope", norm_eps=1e-3, mlp="relu2", bias=True),
}


def variant_config(name, **overrides):
    fields = dict(CONFIG_VARIANTS[name])
    fields.update(overrides)
    return small_config(**fields)


def describe_config(config) -> str:
    keys = ("n_head", "n_kv_head", "n_embd", "norm", "pos_emb", "mlp", "bias", "qk_norm", "tie_embeddings",
            "logit_softcap")
    return "config(" + ", ".join(f"{k}={getattr(config, k)!r}" for k in keys) + ")"


# --- describing and comparing ---------------------------------------------------------------


def describe(value) -> str:
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).replace("torch.", "")
        return f"{tuple(value.shape)} {dtype}"
    if hasattr(value, "n_embd"):
        return describe_config(value)
    return repr(value)


def call_text(what, inputs) -> str:
    if not inputs:
        return what
    args = ", ".join(f"{k} {describe(v)}" if isinstance(v, torch.Tensor) else f"{k}={describe(v)}"
                     for k, v in inputs.items())
    return f"{what} with {args}" if what.endswith(")") else f"{what}({args})"  # "f(x, eps=0.1) with x (2, 5) ..."


class Mismatch(AssertionError):
    """A kata assertion: its message is the whole teaching text; `cause` the mistake it names, if any."""

    def __init__(self, message: str, cause: str | None = None):
        super().__init__(message)
        self.cause = cause


def sentence(text: str) -> str:
    """text as a sentence: a capital first letter and a full stop (kept when it ends in ., ! or ?).

    A first word that is code (rotary_cos_sin(...), x², q) keeps its case."""
    text = text.strip()
    if not text:
        return text
    first = text.split()[0]
    if re.fullmatch(r"[a-z]+[,:;]?", first) and (len(first.rstrip(",:;")) > 1 or first == "a"):
        text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def fail(module: str, text: str, cause: str | None = None, looks_like: bool = False):
    """Fail the test with a teaching message: the cause first (when established), then text.

    cause: the mistake, named only when this test established it: the property it isolates
    failed, or (looks_like=True) the learner's output equals that mistake's output.
    """
    lead = ""
    if cause:
        lead = f"This looks like: {cause.rstrip('.')}. " if looks_like else sentence(cause) + " "
    raise Mismatch(f"{label(module)}: {lead}{text}", cause=cause)


def _close(a, b, atol, rtol):
    if a.shape != b.shape:
        return False
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return bool(torch.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True))


def _candidates(likely):
    """(sentence, tensor) for each `likely` mistake that can be computed for these inputs."""
    for sentence, make in likely:
        try:
            candidate = make() if callable(make) else make
        except Exception:  # a candidate that cannot be computed for these inputs just does not match
            continue
        if isinstance(candidate, torch.Tensor):
            yield sentence, candidate


def _same(a, b, atol, rtol):
    """a and b agree within the tolerance, whichever is taken as the reference."""
    return _close(a, b, atol, rtol) or _close(b, a, atol, rtol)


def diagnose(actual, likely, atol, rtol, expected=None) -> str | None:
    """The `likely` mistakes whose output equals `actual`, as one sentence; else None.

    A candidate that equals `expected` is skipped: on this input it cannot be told from the right answer.
    When mistakes with different sentences all give `actual`, this input cannot tell them apart, so the
    sentence names every one of them (choose inputs that separate them; KATA_AUDIT_LIKELY finds such pairs).
    """
    found = []
    for sentence, candidate in _candidates(likely):
        if expected is not None and _same(candidate, expected, atol, rtol):
            continue
        if _close(actual, candidate, atol, rtol) and sentence not in found:
            found.append(sentence)
    if len(found) > 1:
        return ("one of these mistakes, which give the same output on this input: "
                + "; or: ".join(s.rstrip(".") for s in found))
    return found[0] if found else None


AUDIT_ENV = "KATA_AUDIT_LIKELY"


def audit_likely(expected, likely, atol, rtol, what):
    """With KATA_AUDIT_LIKELY=FILE set, append to FILE every pair of `likely` mistakes (different sentences)
    that give the same output on this test's input, one line each: the test, the call and the two sentences;
    and every candidate that raises instead of giving an output (it can never be named).

    Such a pair means this input cannot tell the two mistakes apart; a developer's check, silent otherwise:
        KATA_AUDIT_LIKELY=/tmp/pairs.txt python -m pytest tests/test_03_attention.py --impl=solutions
    """
    path = os.environ.get(AUDIT_ENV)
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" (", 1)[0]
    lines = []
    for sentence, make in likely:  # a candidate that raises never matches: worth a look (a NameError is a bug)
        try:
            make() if callable(make) else make
        except Exception as error:  # noqa: BLE001
            lines.append(f"{test}\t{what}\t{sentence[:70]!r} RAISES {type(error).__name__}: {error}\n")
    candidates = [(s, c) for s, c in _candidates(likely) if not _same(c, expected, atol, rtol)]
    for i, (first, a) in enumerate(candidates):
        for second, b in candidates[i + 1:]:
            if first != second and _same(a, b, atol, rtol):
                lines.append(f"{test}\t{what}\t{first[:70]!r} == {second[:70]!r}\n")
    if lines:
        with open(path, "a", encoding="utf-8") as out:
            out.writelines(lines)


def largest_difference(actual, expected):
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    diff = (a - e).abs()
    both_nan = a.isnan() & e.isnan()
    diff = torch.where(both_nan, torch.zeros_like(diff), diff)
    diff = torch.where(diff.isnan(), torch.full_like(diff, math.inf), diff)
    flat = int(diff.argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape)) if diff.dim() else ()
    rel = (diff / e.abs().clamp_min(1e-12)).max().item() if diff.numel() else 0.0
    return diff.max().item(), index, a[index].item(), e[index].item(), rel


def expect_close(actual, expected, what, *, module, inputs=None, atol=None, rtol=None, likely=(),
                 hint=None, model=False, cause=None):
    """Assert actual matches expected (shape, dtype, device, values) or fail with a teaching message.

    module: the exercise's module name ("attention"), for the message's label.
    likely: (sentence, tensor or callable returning a tensor) pairs: outputs of known mistakes. The one whose
        output equals actual leads the message ("This looks like: ...") and is its cause (all of them, when
        several different ones do; candidates that equal expected are skipped).
    hint: a sentence added to a value mismatch that matches no likely mistake. It is not a cause: it may
        only say what this test isolates ("this call passes no eps, so the default is used"), never guess
        at a mistake the test did not establish.
    cause: the mistake a value mismatch means, when the test has isolated it (the same call with an explicit
        eps matched, so a mismatch without it can only be the default eps). Used when no likely mistake
        matches; it leads the message like fail(cause=...).
    """
    call = call_text(what, inputs)
    if not isinstance(actual, torch.Tensor):
        fail(module, f"{call} returned {type(actual).__name__}, expected a tensor of shape {tuple(expected.shape)}.")
    d_atol, d_rtol = tolerance(expected.dtype, model)
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol
    audit_likely(expected, likely, atol, rtol, what)
    if actual.shape != expected.shape:
        found = diagnose(actual, likely, atol, rtol)
        fail(module, f"{call} returned shape {tuple(actual.shape)}, expected {tuple(expected.shape)}.",
             cause=found, looks_like=True)
    if actual.dtype != expected.dtype:
        fail(module, f"{call} returned dtype {str(actual.dtype).replace('torch.', '')}, expected "
                     f"{str(expected.dtype).replace('torch.', '')}.")
    if actual.device.type != expected.device.type:
        fail(module, f"{call} returned a tensor on {actual.device}, expected {expected.device} (the input's device).")
    if _close(actual, expected, atol, rtol):
        return
    max_abs, index, got, want, max_rel = largest_difference(actual, expected)
    text = (f"{call} differs from the expected output: max abs diff {max_abs:.3g} at {list(index)} "
            f"(yours {got:.6g}, expected {want:.6g}), max rel diff {max_rel:.3g}; "
            f"tolerance atol={atol:g}, rtol={rtol:g}.")
    if actual.isnan().any() and not expected.isnan().any():
        text += " Your output has NaN where the expected output has none."
    found = diagnose(actual, likely, atol, rtol, expected)
    if not found and hint:
        text += f" {hint}"
    if not found and cause:
        fail(module, text, cause=cause)
    fail(module, text, cause=found, looks_like=True)


def expect_unchanged(before: dict, after: dict, what, *, module):
    """Inputs must not be modified in place."""
    for name, tensor in before.items():
        if not torch.equal(tensor, after[name]):
            fail(module, "Compute on a new tensor instead.",
                 cause=f"{what} modified its input {name!r} in place")


_BROADCAST = re.compile(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) "
                        r"at non-singleton dimension (\d+)")


def keepdim_cause(error, x) -> str | None:
    """The cause of a broadcasting RuntimeError raised while computing on x (..., T, C), when the error's
    sizes show a value reduced over x's last dim that lost its size-1 axis (x.mean(-1) without keepdim=True):
    the mismatch is at x's last dim, between C and T. Otherwise None (the error stays as it is)."""
    match = _BROADCAST.search(str(error))
    if not match or not isinstance(x, torch.Tensor) or x.dim() < 2:
        return None
    sizes, dim = {int(match[1]), int(match[2])}, int(match[3])
    C, T = x.shape[-1], x.shape[-2]
    if C == T or sizes != {C, T} or dim != x.dim() - 1:
        return None
    reduced = tuple(x.shape[:-1])
    return (f"a value reduced over the last dim (a mean, a variance) lost its size-1 axis: x.mean(dim=-1) has "
            f"shape {reduced}, which does not line up with x {tuple(x.shape)}; pass keepdim=True to get "
            f"{reduced + (1,)}, which broadcasts over the {C} channels")


# --- modules --------------------------------------------------------------------------------


def load_reference_weights(mine, ref, what, *, module):
    """Load ref's state dict into mine strictly; fail with the differing keys and shapes."""
    ours, theirs = mine.state_dict(), ref.state_dict()
    missing = [k for k in theirs if k not in ours]
    unexpected = [k for k in ours if k not in theirs]
    shapes = [f"{k} is {tuple(ours[k].shape)} but the contract's is {tuple(theirs[k].shape)}"
              for k in theirs if k in ours and ours[k].shape != theirs[k].shape]
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing))
    if unexpected:
        problems.append("not in the contract " + ", ".join(unexpected))
    if shapes:
        problems.append("; ".join(shapes))
    if problems:
        text = f"{what}'s parameters differ from the contract's: " + "; ".join(problems) + "."
        transposed = [k for k in theirs if k in ours and ours[k].dim() == 2 and ours[k].shape != theirs[k].shape
                      and tuple(ours[k].shape) == tuple(reversed(theirs[k].shape))]
        cause = None
        if transposed:  # established: the shape is exactly the contract's, reversed
            cause = (f"{', '.join(transposed)} {'is' if len(transposed) == 1 else 'are'} transposed: "
                     f"nn.Linear(in, out).weight has shape (out, in)")
        fail(module, text, cause=cause)
    mine.load_state_dict(theirs, strict=True)
    return mine


def expect_gradients_everywhere(mod, loss, what, *, module):
    """Backward through loss reaches every parameter with a non-zero gradient."""
    mod.zero_grad(set_to_none=True)
    loss.backward()
    dead = [name for name, p in mod.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    if dead:
        fail(module, f"{what}: no gradient reaches {', '.join(dead)}; the output does not depend on "
                     f"{'it' if len(dead) == 1 else 'them'} (detached, unused, or computed without autograd).")


@contextlib.contextmanager
def substitute(module, **attributes):
    """While active, module.<name> is the given object (then restored): a learner module's reference to
    another exercise's function, swapped for the reference's, so that a test checks this exercise's own code:
        with substitute(learner("attention"), apply_rotary=reference("rotary").apply_rotary): ...
    Code that reaches the function another way is unaffected (and then checked as it is)."""
    missing = object()
    saved = {name: getattr(module, name, missing) for name in attributes}
    for name, value in attributes.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                delattr(module, name)
            else:
                setattr(module, name, value)


# --- built-ins that are off limits inside an exercise ---------------------------------------


class OffLimits(AssertionError):
    pass


@contextlib.contextmanager
def forbid(module: str, message: str, targets, learner_module=None):
    """While active, calling any of targets ((owner, attribute) pairs) raises OffLimits(message).

    Aliases of the forbidden objects in the learner's module namespace (from torch.nn.functional
    import scaled_dot_product_attention) are replaced as well.
    """
    text = f"{label(module)}: {message}"

    def refuse(*args, **kwargs):
        raise OffLimits(text)

    with replaced(targets, refuse, learner_module):
        yield


@contextlib.contextmanager
def replaced(targets, replacement, learner_module=None):
    """While active, each of targets ((owner, attribute) pairs; absent ones skipped) is replacement, and so
    is every alias of them in the learner's module namespace (from os import replace)."""
    saved = []
    originals = []
    for owner, name in targets:
        original = getattr(owner, name, None)
        if original is None:
            continue
        originals.append(original)
        saved.append((owner, name, original))
        setattr(owner, name, replacement)
    if learner_module is not None:
        for name, value in list(vars(learner_module).items()):
            if any(value is o for o in originals):
                saved.append((learner_module, name, value))
                setattr(learner_module, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def devices() -> list[str]:
    """The devices to run device tests on: cpu, plus cuda and mps where present."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found
