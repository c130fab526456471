"""07 optim: AdamW, param_groups, configure_optimizers, lr_at (exercises/optim.py).

AdamW is fed the same gradients as torch.optim.AdamW (off limits inside the
exercise) and compared after every step; a mismatch is named by replaying known
mistakes in a small AdamW simulator below. The schedule is compared with the
reference at every step. Models come from the reference GPT (or a tiny module
here), never the learner's, so 07 can be done before 06.
"""

import copy
import importlib
import math
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn as nn

from harness import TOLERANCE, expect_close, fail, forbid, learner, randn, reference, small_config, variant_config

ADAM = importlib.import_module("torch.optim.adam")
ADAMW = importlib.import_module("torch.optim.adamw")
FUNCTIONAL = importlib.import_module("torch.optim._functional")

MODULE = "optim"
OFF_LIMITS = "write the update yourself; torch.optim.Adam, torch.optim.AdamW and their functional forms are off limits here."
BUILTINS = [
    (torch.optim, "Adam"), (torch.optim, "AdamW"), (torch.optim.Adam, "step"),
    (ADAM, "adam"), (ADAM, "_single_tensor_adam"), (ADAM, "_multi_tensor_adam"), (ADAM, "_fused_adam"),
    (ADAMW, "adamw"), (FUNCTIONAL, "adam"), (FUNCTIONAL, "adamw"), (torch, "_fused_adam_"), (torch, "_fused_adamw_"),
]
DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)  # the contract's AdamW defaults
STEPS = 20


def mine():
    return learner(MODULE)


def run(fn, *args, **kwargs):
    """Call the learner's code with torch's Adam/AdamW refusing to run."""
    with forbid(MODULE, OFF_LIMITS, BUILTINS, learner_module=mine()):
        return fn(*args, **kwargs)


# --- AdamW: scenarios fed identically to the learner's AdamW, torch.optim.AdamW and the simulator -----------

SHAPES = [(4, 3), (5,), (2, 2, 3)]


def gradient(step, i, shape, dtype):
    """A seeded gradient whose entries range over six orders of magnitude (1e-6 .. 1): on the small
    ones eps matters (so where eps goes shows), and L2 decay swamps them (so L2 vs decoupled shows)."""
    scale = 10.0 ** (-6.0 * (randn(*shape, seed=500 + i).abs().clamp(max=2.0) / 2.0))
    return ((randn(*shape, seed=1000 * step + i) + 0.3) * scale).to(dtype)


@dataclass
class Scenario:
    kwargs: dict = field(default_factory=dict)  # AdamW(params, **kwargs); {} means the defaults
    groups: list | None = None  # [(param indices, group options)], or None for one plain list of parameters
    dtype: torch.dtype = torch.float64
    grads: object = None  # (step, i) -> True (a gradient) / False (grad None); None: always a gradient
    lr_changes: dict = field(default_factory=dict)  # {step: {group index: new lr}} written before that step
    steps: int = STEPS
    isolates: str = ""  # what this scenario tests: said when the learner's AdamW leaves torch's and no mistake matches

    def initial(self):
        return [randn(*s, seed=10 + i, dtype=self.dtype) for i, s in enumerate(SHAPES)]

    def grad(self, step, i):
        if self.grads is not None and not self.grads(step, i):
            return None
        return gradient(step, i, SHAPES[i], self.dtype)

    def layout(self, params):
        if self.groups is None:
            return list(params)
        return [dict(params=[params[i] for i in idx], **opts) for idx, opts in self.groups]

    def describe(self):
        parts = [f"{k}={v!r}" for k, v in self.kwargs.items()] or ["defaults"]
        if self.groups:
            parts.append("groups " + ", ".join(repr(opts) for _, opts in self.groups))
        return f"AdamW({', '.join(parts)}, {str(self.dtype)[6:]} parameters)"


def snapshot(params):
    return torch.cat([p.detach().reshape(-1) for p in params]).clone()


def drive(make_optimizer, sc, wrap=lambda fn: fn()):
    """Run sc's steps with the optimizer make_optimizer(layout) builds; the parameters after each step."""
    params = [nn.Parameter(t) for t in sc.initial()]
    opt = wrap(lambda: make_optimizer(sc.layout(params)))
    history = []
    for step in range(sc.steps):
        for g, lr in sc.lr_changes.get(step, {}).items():
            opt.param_groups[g]["lr"] = lr
        for i, p in enumerate(params):
            p.grad = sc.grad(step, i)
        wrap(opt.step)
        history.append(snapshot(params))
    return history


def learner_history(sc):
    return drive(lambda layout: mine().AdamW(layout, **sc.kwargs), sc, wrap=lambda fn: run(fn))


def torch_history(sc):
    return drive(lambda layout: torch.optim.AdamW(layout, **{**DEFAULTS, **sc.kwargs}, foreach=False), sc)


def simulate(sc, mistake=None):
    """AdamW written out once more, optionally with one known mistake; the parameters after each step."""
    defaults = {**DEFAULTS, **sc.kwargs}
    params = sc.initial()
    groups = [(list(range(len(params))), {})] if sc.groups is None else copy.deepcopy(sc.groups)
    groups = [(idx, {**defaults, **opts}) for idx, opts in groups]
    initial_lrs = [opts["lr"] for _, opts in groups]
    state, history = {}, []
    for step in range(sc.steps):
        for g, lr in sc.lr_changes.get(step, {}).items():
            groups[g][1]["lr"] = lr
        for g, (idx, opts) in enumerate(groups):
            lr, wd, eps, (b1, b2) = opts["lr"], opts["weight_decay"], opts["eps"], opts["betas"]
            if mistake == "lr-fixed":
                lr = initial_lrs[g]
            if mistake in ("lr-defaults", "group-defaults"):
                lr = defaults["lr"]
            if mistake in ("wd-defaults", "group-defaults"):
                wd = defaults["weight_decay"]
            if mistake in ("betas-eps-defaults", "group-defaults"):
                eps, (b1, b2) = defaults["eps"], defaults["betas"]
            if mistake == "betas-swapped":
                b1, b2 = b2, b1
            for i in idx:
                p, grad = params[i], sc.grad(step, i)
                if grad is None:
                    if mistake == "decay-without-grad":
                        params[i] = p * (1 - lr * wd)
                    continue
                grad = grad.double()
                t, m, v = state.get(i, (0, torch.zeros_like(grad), torch.zeros_like(grad)))
                if mistake == "no-state":
                    t, m, v = 0, torch.zeros_like(grad), torch.zeros_like(grad)
                t = step + 1 if mistake == "shared-step" else t + 1
                if mistake == "l2":
                    grad = grad + wd * p.double()
                m = b1 * m + (1 - b1) * grad
                v = b2 * v + (1 - b2) * grad * grad
                state[i] = (t, m, v)
                tc = t - 1 if mistake == "t-from-0" else t
                m_hat = m if mistake in ("no-bias-correction", "only-v-corrected") else m / (1 - b1**tc)
                v_hat = v if mistake in ("no-bias-correction", "only-m-corrected") else v / (1 - b2**tc)
                if mistake == "eps-inside-sqrt":
                    update = m_hat / torch.sqrt(v_hat + eps)
                elif mistake == "eps-before-correction":
                    update = m_hat / ((v.sqrt() + eps) / math.sqrt(1 - b2**tc))
                else:
                    update = m_hat / (v_hat.sqrt() + eps)
                x = p.double()
                if mistake == "decay-without-lr":
                    x = x * (1 - wd)
                elif mistake not in ("l2", "decay-after-update", "no-decay"):
                    x = x * (1 - lr * wd)
                x = x - lr * update
                if mistake == "decay-after-update":
                    x = x * (1 - lr * wd)
                params[i] = x.to(sc.dtype)
        history.append(snapshot(params))
    return history


MISTAKES = [
    ("weight decay was added to the gradient (Adam with L2); AdamW decays the parameter itself, "
     "p.mul_(1 - lr * weight_decay), outside the moment estimates", "l2"),
    ("no bias correction: divide m by (1 - beta1^t) and v by (1 - beta2^t)", "no-bias-correction"),
    ("only m is bias corrected; v needs v / (1 - beta2^t) as well", "only-m-corrected"),
    ("only v is bias corrected; m needs m / (1 - beta1^t) as well", "only-v-corrected"),
    ("the bias correction used t = 0 on the first step (1 - beta^0 = 0 divides by zero): increment the step "
     "count before using it, so t counts from 1", "t-from-0"),
    ("eps was added inside the square root; the update is m̂ / (sqrt(v̂) + eps)", "eps-inside-sqrt"),
    ("eps was added before the bias correction of v (the Adam paper's 'efficient' form, as in TensorFlow); "
     "torch adds it after: m̂ / (sqrt(v / (1 - beta2^t)) + eps)", "eps-before-correction"),
    ("the state was not kept between steps (every step starts again from m = v = 0, t = 1): keep t, m and v "
     "in self.state[p], which persists across calls", "no-state"),
    ("the weight decay was not multiplied by lr: p.mul_(1 - lr * weight_decay), not 1 - weight_decay",
     "decay-without-lr"),
    ("beta1 and beta2 are swapped: betas = (beta1, beta2), beta1 for m (the gradient), beta2 for v (its square)",
     "betas-swapped"),
    ("the weight decay was applied after the Adam update; decay p first (p.mul_(1 - lr * weight_decay)), "
     "then subtract lr * m̂ / (sqrt(v̂) + eps)", "decay-after-update"),
    ("no weight decay was applied (AdamW's decoupled decay p.mul_(1 - lr * weight_decay) is missing)", "no-decay"),
    ("the step count t is shared (one per optimizer or group); torch counts steps per parameter, in "
     "self.state[p], so a parameter that had no gradient for a while is bias-corrected from its own first step",
     "shared-step"),
    ("each group's lr was not used: read group['lr'] inside step(), not self.defaults or a saved value",
     "lr-defaults"),
    ("each group's weight_decay was not used: read group['weight_decay'] inside step()", "wd-defaults"),
    ("each group's betas and eps were not used: read group['betas'] and group['eps'] inside step()",
     "betas-eps-defaults"),
    ("the group settings were not used (self.defaults instead of group[...]); each group has its own lr, "
     "weight_decay, betas and eps", "group-defaults"),
    ("a change of group['lr'] between steps had no effect: read group['lr'] inside step() every time "
     "(learning-rate schedules write it)", "lr-fixed"),
    ("a parameter without a gradient was decayed; skip it entirely (if p.grad is None: continue)",
     "decay-without-grad"),
]


def first_difference(history, want, sc):
    """The first step (0-based) at which history leaves want, or None when they agree throughout."""
    atol, rtol = tolerance_for(sc)
    for step, (got, expected) in enumerate(zip(history, want)):
        if not (got.shape == expected.shape and torch.allclose(got.double(), expected.double(), atol=atol, rtol=rtol)):
            return step
    return None


def tolerance_for(sc):
    return (1e-6, 0.0) if sc.dtype == torch.float64 else TOLERANCE[sc.dtype]


def compare_with_torch(sc, what, history=None):
    """Fail at the first step where the learner's parameters leave torch.optim.AdamW's."""
    mine_, want = history if history is not None else learner_history(sc), torch_history(sc)
    step = first_difference(mine_, want, sc)
    if step is None:
        return mine_
    atol, rtol = tolerance_for(sc)
    likely = [(sentence, lambda m=m, s=step: simulate(sc, m)[s]) for sentence, m in MISTAKES]
    expect_close(mine_[step], want[step], f"{what}: {sc.describe()}, all parameters flattened, after step {step + 1}",
                 module=MODULE, atol=atol, rtol=rtol, likely=likely,
                 hint=f"This scenario isolates {sc.isolates}." if sc.isolates else None)
    return mine_


def explicit(**settings):
    """Every AdamW setting passed explicitly (the defaults' values unless given): only the defaults test relies
    on the defaults, so a wrong default is named there and nowhere else."""
    return {**DEFAULTS, **settings}


def test_adamw_defaults_match_torch():
    # Each default moves the trajectory far past atol=1e-6 when wrong: lr 1e-3 and weight_decay 0.01 change every
    # step by ~1e-3 and ~1e-5; the gradients reach down to 1e-6, where eps=1e-8 and beta2=0.999 matter.
    sc = Scenario(isolates="AdamW's defaults (lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01) and "
                           "the update itself")
    history, want = learner_history(sc), torch_history(sc)
    if first_difference(history, want, sc) is not None:
        spelled = Scenario(kwargs=explicit())
        if first_difference(learner_history(spelled), torch_history(spelled), spelled) is None:
            opt = run(mine().AdamW, [nn.Parameter(torch.zeros(2))])
            defaults = getattr(opt, "defaults", {})
            wrong = [f"{k}={defaults[k]!r} (expected {v!r})" for k, v in DEFAULTS.items()
                     if k in defaults and _differs(defaults[k], v)]
            fail(MODULE, "AdamW(params) steps differently from AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, "
                         "weight_decay=0.01), which matches torch.optim.AdamW"
                         + (f"; its defaults hold {', '.join(wrong)}." if wrong else "."),
                         cause="AdamW's defaults are not the contract's (lr=1e-3, betas=(0.9, 0.999), eps=1e-8, "
                               "weight_decay=0.01, as torch.optim.AdamW)")
    compare_with_torch(sc, "AdamW with its defaults vs torch.optim.AdamW", history=history)


def _differs(a, b):
    try:
        return tuple(a) != tuple(b) if isinstance(b, tuple) else float(a) != float(b)
    except (TypeError, ValueError):
        return True


def test_adamw_custom_settings_match_torch():
    # A large lr and weight decay, so that the order of decay and update shows; a large eps.
    sc = Scenario(kwargs=dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.3),
                  isolates="the settings passed to AdamW(...) (each far from its default) and the update itself")
    compare_with_torch(sc, "AdamW vs torch.optim.AdamW")


def test_adamw_float32_matches_torch():
    # float32: two correct implementations round differently; atol 2e-5, rtol 1e-4 (harness.TOLERANCE) covers
    # 20 steps of a few roundings of parameters of size ~1 (each 6e-8); every mistake above is far larger.
    sc = Scenario(kwargs=dict(lr=0.02, betas=(0.85, 0.99), eps=1e-8, weight_decay=0.1), dtype=torch.float32,
                  isolates="float32 parameters (the float64 scenarios check the formulas more tightly)")
    history = compare_with_torch(sc, "AdamW (float32) vs torch.optim.AdamW")
    if history[-1].dtype != torch.float32:
        fail(MODULE, f"After AdamW's steps the float32 parameters are {str(history[-1].dtype)[6:]}.",
             cause="AdamW changed the dtype of float32 parameters; keep m and v like p (torch.zeros_like(p))")


def test_adamw_uses_each_groups_settings():
    sc = Scenario(
        kwargs=dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
        groups=[([0, 2], dict(lr=2e-2, weight_decay=0.2)),
                ([1], dict(lr=5e-3, weight_decay=0.0, betas=(0.8, 0.99), eps=1e-6))],
        isolates="the settings of each parameter group (lr, weight_decay, betas, eps), which differ from the "
                 "optimizer's defaults",
    )
    compare_with_torch(sc, "AdamW with two parameter groups vs torch.optim.AdamW")


def test_adamw_leaves_parameters_without_grad_alone():
    sc = Scenario(kwargs=explicit(lr=0.01, weight_decay=0.5), grads=lambda step, i: i != 1,
                  isolates="a parameter whose grad is None at every step (the others as usual)")
    history = compare_with_torch(sc, "AdamW with one parameter whose grad is None")
    start, size = 12, 5  # parameter 1 (shape (5,)) sits after the 12 entries of parameter 0
    before = sc.initial()[1]
    after = history[-1][start:start + size]
    if not torch.equal(after, before):
        fail(MODULE, f"After {sc.steps} steps it is {after.tolist()}, before {before.tolist()}.",
             cause="AdamW changed a parameter whose grad is None; skip it entirely (if p.grad is None: continue), "
                   "weight decay included")


def test_adamw_counts_steps_per_parameter():
    # Parameter 2 gets its first gradient at step 6: its bias correction starts there (t = 1), as in torch.
    sc = Scenario(kwargs=explicit(lr=0.01), grads=lambda step, i: i != 2 or step >= 5,
                  isolates="the step count t of a parameter whose first gradient comes at step 6 (its bias "
                           "correction starts from t = 1 there)")
    compare_with_torch(sc, "AdamW with a parameter that gets gradients from step 6 on")


def test_adamw_reads_the_groups_lr_at_every_step():
    sc = Scenario(kwargs=explicit(lr=1e-2), lr_changes={5: {0: 5e-2}, 12: {0: 2e-4}},
                  isolates="a group['lr'] written between steps (as a learning-rate schedule does)")
    compare_with_torch(sc, "AdamW whose group['lr'] changes after steps 5 and 12")


CLOSURE_TARGET = 70


def closure_setup():
    """A parameter and a closure that zeroes the grads, computes a loss, runs backward and records the loss."""
    target = randn(4, 3, seed=CLOSURE_TARGET, dtype=torch.float64)
    p = nn.Parameter(randn(4, 3, seed=71, dtype=torch.float64))
    losses = []

    def closure():
        p.grad = None
        loss = ((p - target) ** 2).sum()
        loss.backward()
        losses.append(loss)
        return loss
    return p, closure, losses


def step_with_closure(p, closure):
    """The learner's AdamW([p], lr=0.1).step(closure); a crash that shows the closure ran without grad is named."""
    opt = run(mine().AdamW, [p], lr=0.1)
    try:
        return run(opt.step, closure)
    except RuntimeError as error:
        if "does not require grad" not in str(error):
            raise
        fail(MODULE, f"AdamW.step(closure) raised RuntimeError: {error}",
             cause="the closure ran under step's torch.no_grad(), so its backward has no graph: call it inside "
                   "with torch.enable_grad(): loss = closure()")


def test_adamw_step_with_closure_returns_its_loss():
    p, closure, losses = closure_setup()
    returned = step_with_closure(p, closure)
    if not losses:
        fail(MODULE, "AdamW([p], lr=0.1).step(closure) returned without calling it.",
             cause="AdamW.step(closure) did not call the closure")
    if returned is not losses[0]:
        fail(MODULE, f"AdamW([p], lr=0.1).step(closure) returned {returned!r}; the closure returned "
                     f"{losses[0]!r}.",
             cause="AdamW.step(closure) did not return the closure's loss: return loss at the end of step (None "
                   "when there is no closure)")


def test_adamw_step_with_closure_uses_its_gradients():
    # Your own AdamW twice: step(closure), and step() after the same closure was called by hand. Whatever your
    # update, the two must agree: this isolates when step calls the closure, not the update.
    p, closure, _ = closure_setup()
    step_with_closure(p, closure)
    q, by_hand, _ = closure_setup()
    opt = run(mine().AdamW, [q], lr=0.1)
    by_hand()
    run(opt.step)
    if not torch.allclose(p.detach(), q.detach(), atol=1e-12, rtol=0, equal_nan=True):
        moved = not torch.equal(p.detach(), randn(4, 3, seed=71, dtype=torch.float64))
        fail(MODULE, f"AdamW([p], lr=0.1).step(closure) left p at {p.detach()[0].tolist()} (first row); "
                     f"calling the closure first and then step() gives {q.detach()[0].tolist()}"
                     + ("" if moved else " (step(closure) did not move p at all)") + ".",
             cause="AdamW.step(closure) did not use the gradients the closure computed: call the closure first, "
                   "then read p.grad")


def test_adamw_is_a_torch_optimizer():
    p = nn.Parameter(torch.zeros(3))
    opt = run(mine().AdamW, [p])
    p.grad = torch.ones(3)
    run(opt.step)  # an unwritten step stops here: not started
    if not isinstance(opt, torch.optim.Optimizer):
        fail(MODULE, f"AdamW(params) is a {type(opt).__name__} with bases "
                     f"{[c.__name__ for c in type(opt).__mro__[1:]]}.",
             cause="AdamW is not a torch.optim.Optimizer: class AdamW(torch.optim.Optimizer), with "
                   "super().__init__(params, defaults)")


def test_adamw_state_dict_resumes_the_same_trajectory():
    # Your own AdamW against itself: 6 steps in one go, or 3 steps, state_dict(), a new AdamW that loads it,
    # 3 more. This isolates where the state lives, not the update.
    sc = Scenario(kwargs=dict(lr=0.02, weight_decay=0.1), steps=6)
    params = [nn.Parameter(t) for t in sc.initial()]
    opt = run(mine().AdamW, params, **sc.kwargs)
    for step in range(3):
        for i, p in enumerate(params):
            p.grad = sc.grad(step, i)
        run(opt.step)
    saved = copy.deepcopy(opt.state_dict())
    clones = [nn.Parameter(p.detach().clone()) for p in params]
    resumed = run(mine().AdamW, clones, **sc.kwargs)
    run(resumed.load_state_dict, saved)
    for step in range(3, 6):
        for i, (p, c) in enumerate(zip(params, clones)):
            p.grad, c.grad = sc.grad(step, i), sc.grad(step, i)
        run(opt.step)
        run(resumed.step)
    if not torch.allclose(snapshot(clones), snapshot(params), atol=1e-12, rtol=0, equal_nan=True):
        diff = (snapshot(clones) - snapshot(params)).abs().max().item()
        fail(MODULE, f"AdamW({sc.describe()[6:-1]}): 3 steps, state_dict(), a new AdamW loads it, 3 more steps: "
                     f"the parameters differ from 6 uninterrupted steps by up to {diff:.3g}.",
             cause="AdamW keeps some of its state outside self.state[p] (or the param groups), so state_dict() does "
                   "not save it: keep each parameter's step count, m and v in self.state[p]")


# --- param_groups and configure_optimizers --------------------------------------------------------------------


class TinyNet(nn.Module):
    """Parameters of every rank: a 3-D conv weight, 2-D embedding/linear weights (tied), 1-D, and a 0-D scalar."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 6)
        self.conv = nn.Conv1d(6, 6, 3)
        self.norm = nn.LayerNorm(6)
        self.head = nn.Linear(6, 10, bias=False)
        self.head.weight = self.emb.weight
        self.temperature = nn.Parameter(torch.tensor(1.0))


MODELS = {
    "gpt2-tied": lambda: reference("gpt").GPT(small_config()),
    "modern-untied": lambda: reference("gpt").GPT(variant_config("gqa-rope-swiglu")),
    "conv-scalar-tied": TinyNet,
}


def model(name):
    torch.manual_seed(0)
    return MODELS[name]()


def names_of(model_):
    """Parameter -> every name it has (a tied Parameter has two)."""
    names = {}
    for name, p in model_.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    return names


def split_groups(groups, weight_decay, what):
    """The (decayed, not decayed) parameter lists of two groups told apart by their weight_decay."""
    groups = list(groups) if not isinstance(groups, dict) else [groups]
    if len(groups) != 2 or not all(isinstance(g, dict) and "params" in g for g in groups):
        fail(MODULE, f"{what} gave {len(groups)} item(s); expected a list of two dicts, "
                     f"{{'params': [...], 'weight_decay': ...}}: one decayed, one not.",
             cause="the parameter groups are not two dicts with 'params' (one decayed, one not)")
    for g in groups:
        if "weight_decay" not in g:
            fail(MODULE, f"{what}: give both groups one ({weight_decay} and 0.0), or the optimizer's default "
                         f"weight_decay applies to the group that must not decay.",
                 cause="a parameter group has no 'weight_decay' key")
    decays = sorted(float(g["weight_decay"]) for g in groups)
    if decays != sorted([0.0, float(weight_decay)]):
        fail(MODULE, f"{what}: {weight_decay} for the parameters with dim >= 2 and 0.0 for the others.",
             cause=f"the groups' weight_decay values are {decays}, not [0.0, {weight_decay}]")
    params = lambda g: [g["params"]] if isinstance(g["params"], torch.Tensor) else list(g["params"])  # noqa: E731
    decayed = next(g for g in groups if float(g["weight_decay"]) == float(weight_decay))
    other = next(g for g in groups if g is not decayed)
    return params(decayed), params(other)


def test_param_groups_two_groups_with_their_weight_decay():
    split_groups(run(mine().param_groups, model("gpt2-tied"), 0.1), 0.1, "param_groups(model, 0.1)")


NAME_RULES = [  # how learners split by name instead of by p.dim(): (the rule, names that are NOT decayed)
    ("biases are not decayed", lambda n: n.endswith("bias")),
    ("biases and norm weights are not decayed",
     lambda n: n.endswith("bias") or any(w in n for w in ("norm", "ln_", "ln_f", "layernorm"))),
]


@pytest.mark.parametrize("name", list(MODELS))
def test_param_groups_decays_exactly_the_parameters_with_dim_at_least_2(name):
    m = model(name)
    decayed, other = split_groups(run(mine().param_groups, m, 0.1), 0.1, "param_groups(model, 0.1)")
    names = names_of(m)
    label = lambda p: f"{'/'.join(names.get(id(p), ['(not a parameter of the model)']))} (dim {p.dim()})"  # noqa: E731
    wrong = [f"{label(p)} is decayed" for p in decayed if p.dim() < 2]
    wrong += [f"{label(p)} is not decayed" for p in other if p.dim() >= 2]
    if not wrong:
        return
    got = {id(p) for p in decayed}
    by_name = next((rule for rule, exempt in NAME_RULES
                    if got == {id(p) for n, p in m.named_parameters() if not exempt(n)}), None)
    if by_name:
        cause = (f"the groups were decided by the name ({by_name}), so {'; '.join(wrong)}: decide by "
                 f"p.dim() >= 2, not by the name")
    elif got == {id(p) for p in m.parameters() if p.dim() == 2}:
        cause = f"only parameters with dim == 2 are decayed, so {'; '.join(wrong)}: decay every p with p.dim() >= 2"
    else:
        cause = "; ".join(wrong)
    fail(MODULE, f"param_groups({name} model, 0.1): decay every parameter with p.dim() >= 2 (matrices, embeddings, "
                 f"conv kernels), and none of the rest (biases, norm weights, scalars).", cause=cause)


@pytest.mark.parametrize("name", ["gpt2-tied", "conv-scalar-tied"])
def test_param_groups_lists_a_tied_parameter_once(name):
    m = model(name)
    decayed, other = split_groups(run(mine().param_groups, m, 0.1), 0.1, "param_groups(model, 0.1)")
    names = names_of(m)
    listed = [id(p) for p in decayed + other]
    for key, all_names in names.items():
        count = listed.count(key)
        if count > 1 and len(all_names) > 1:
            fail(MODULE, f"param_groups({name} model): model.parameters() already skips repeats; "
                         f"named_parameters(remove_duplicate=False) and state_dict() do not.",
                 cause=f"the tied Parameter {' / '.join(all_names)} is listed {count} times in the groups; list "
                       f"every Parameter once")


@pytest.mark.parametrize("name", list(MODELS))
def test_param_groups_cover_every_parameter_exactly_once(name):
    m = model(name)
    decayed, other = split_groups(run(mine().param_groups, m, 0.1), 0.1, "param_groups(model, 0.1)")
    listed = [id(p) for p in decayed + other]
    names = names_of(m)
    missing = [" / ".join(all_names) for key, all_names in names.items() if key not in listed]
    strangers = [p for p in decayed + other if id(p) not in names]
    repeated = [" / ".join(all_names) + (" (one tied Parameter)" if len(all_names) > 1 else "")
                for key, all_names in names.items() if listed.count(key) > 1]
    if missing:
        fail(MODULE, f"param_groups({name} model): every parameter of the model goes in exactly one group.",
             cause=f"the groups leave out {', '.join(missing)}")
    if strangers:
        fail(MODULE, f"param_groups({name} model): list the Parameters themselves, from model.parameters().",
             cause=f"the groups hold {len(strangers)} tensor(s) that are not the model's parameters")
    if repeated:
        fail(MODULE, f"param_groups({name} model): each parameter goes in exactly one group, once.",
             cause=f"the groups list {', '.join(repeated)} more than once")


ADAMW_DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8)  # what AdamW falls back to when a setting is not passed


def check_optimizer(opt, m, what, lr, weight_decay, betas, eps, defaults_of_configure=False):
    if not isinstance(opt, mine().AdamW):
        fail(MODULE, f"{what} returned a {type(opt).__module__}.{type(opt).__name__}: "
                     f"AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps).",
             cause="your configure_optimizers does not return your AdamW")
    decayed, other = split_groups(opt.param_groups, weight_decay, f"{what}.param_groups")
    # Your own param_groups decides which parameters decay (its tests check that): here only that it is used.
    theirs = run(mine().param_groups, m, weight_decay)
    as_sets = lambda groups: sorted((float(g.get("weight_decay", -1)), sorted(id(p) for p in g["params"]))  # noqa: E731
                                    for g in groups)
    if as_sets(opt.param_groups) != as_sets(theirs):
        fail(MODULE, f"{what}: build them with your param_groups(model, weight_decay).",
             cause=f"the optimizer's groups are not your param_groups(model, {weight_decay})")
    want = dict(lr=lr, betas=tuple(betas), eps=eps)
    for g in opt.param_groups:
        got = dict(lr=g.get("lr"), betas=tuple(g.get("betas", ())), eps=g.get("eps"))
        for key in want:
            if got[key] == want[key]:
                continue
            if defaults_of_configure:
                cause = (f"with no {key} given, configure_optimizers's groups have {key}={got[key]!r}; its default "
                         f"is {want[key]!r}")
            elif got[key] == ADAMW_DEFAULTS[key]:
                cause = f"your configure_optimizers does not pass {key} on to AdamW (the group has AdamW's default)"
            else:
                cause = f"a group has {key}={got[key]!r}, not the {key} given to configure_optimizers"
            fail(MODULE, f"{what}: a group has {key}={got[key]!r}, expected {want[key]!r} (the defaults of "
                         f"configure_optimizers are weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8; AdamW's own "
                         f"differ).", cause=cause)


def test_configure_optimizers_builds_adamw_from_the_groups():
    # Every setting far from both its default in configure_optimizers and AdamW's own.
    m = model("gpt2-tied")
    opt = run(mine().configure_optimizers, m, 3e-4, weight_decay=0.2, betas=(0.85, 0.99), eps=1e-6)
    check_optimizer(opt, m, "configure_optimizers(model, 3e-4, weight_decay=0.2, betas=(0.85, 0.99), eps=1e-6)",
                    3e-4, 0.2, (0.85, 0.99), 1e-6)


def test_configure_optimizers_defaults():
    m = model("modern-untied")
    opt = run(mine().configure_optimizers, m, 1e-3)
    check_optimizer(opt, m, "configure_optimizers(model, 1e-3)", 1e-3, 0.1, (0.9, 0.95), 1e-8,
                    defaults_of_configure=True)


def test_configure_optimizers_optimizer_steps():
    m = model("conv-scalar-tied")
    opt = run(mine().configure_optimizers, m, 1e-2)
    x = randint_tokens(4, 5)
    loss = m.head(m.norm(m.conv(m.emb(x).transpose(1, 2)).transpose(1, 2))).pow(2).mean() * m.temperature
    loss.backward()
    before = {name: p.detach().clone() for name, p in m.named_parameters()}
    run(opt.step)
    frozen = [name for name, p in m.named_parameters() if torch.equal(p.detach(), before[name])]
    if frozen:
        fail(MODULE, "One step of configure_optimizers(conv-scalar-tied model, 1e-2), every parameter with a "
                     "gradient.", cause=f"the optimizer's step left {', '.join(frozen)} unchanged")


def randint_tokens(b, t):
    g = torch.Generator().manual_seed(80)
    return torch.randint(10, (b, t), generator=g)


# --- lr_at ----------------------------------------------------------------------------------------------------


def schedule(step, warmup, max_steps, max_lr, min_lr, mistake=None):
    """The contract's schedule, optionally with one known mistake."""
    if step < warmup:
        if mistake == "warmup-from-0":
            return max_lr * step / warmup
        if mistake == "warmup-plus-1":
            return max_lr * (step + 1) / (warmup + 1)
        return max_lr * (step + 1) / warmup
    if step >= max_steps and mistake not in ("no-floor", "decay-to-0"):
        return min_lr
    progress = step / max_steps if mistake == "not-offset" else (step - warmup) / (max_steps - warmup)
    if mistake in ("decay-to-0", "decay-to-0-then-min-lr"):
        return 0.0 if step >= max_steps else 0.5 * (1 + math.cos(math.pi * progress)) * max_lr
    coeff = 1 - progress if mistake == "linear" else 0.5 * (1 + math.cos(math.pi * progress))
    return min_lr + coeff * (max_lr - min_lr)


SCHEDULE_MISTAKES = [
    ("the warmup is off by one: max_lr * step / warmup_steps gives 0 at step 0; use (step + 1)", "warmup-from-0"),
    ("the warmup divides by warmup_steps + 1; the contract's warmup is max_lr * (step + 1) / warmup_steps, "
     "reaching max_lr at step warmup_steps - 1", "warmup-plus-1"),
    ("the cosine is not offset by the warmup: progress = (step - warmup_steps) / (max_steps - warmup_steps), "
     "0 right after the warmup, 1 at max_steps", "not-offset"),
    ("the decay is linear; it is a cosine, min_lr + 0.5 * (1 + cos(pi * progress)) * (max_lr - min_lr)", "linear"),
    ("the cosine decays to 0 instead of min_lr: min_lr + 0.5 * (1 + cos(pi * progress)) * (max_lr - min_lr)",
     "decay-to-0"),
    ("the cosine decays to 0 instead of min_lr: min_lr + 0.5 * (1 + cos(pi * progress)) * (max_lr - min_lr)",
     "decay-to-0-then-min-lr"),
    ("after max_steps the cosine goes on (and rises again); from max_steps on the lr is min_lr", "no-floor"),
]

SCHEDULES = [  # (warmup_steps, max_steps, max_lr, min_lr)
    (10, 100, 6e-4, 6e-5),
    (0, 40, 1.0, 0.1),
    (1, 12, 3e-3, 0.0),
    (5, 30, 1.0, 0.25),
]


def learner_lr(step, *args):
    try:
        value = mine().lr_at(step, *args)
    except ZeroDivisionError:
        fail(MODULE, f"lr_at({step}, warmup_steps={args[0]}, max_steps={args[1]}, ...) raised ZeroDivisionError. "
                     f"With warmup_steps=0 there is no warmup (step < 0 never holds) and the cosine starts at max_lr "
                     f"at step 0.", cause=f"your lr_at divided by zero with warmup_steps={args[0]}")
    try:
        return float(value)
    except (TypeError, ValueError):
        fail(MODULE, f"lr_at({step}, ...) returned {value!r}.", cause="your lr_at does not return a number")


@pytest.mark.parametrize("warmup,max_steps,max_lr,min_lr", SCHEDULES)
def test_lr_at_matches_reference_at_every_step(warmup, max_steps, max_lr, min_lr):
    steps = range(max_steps + 10)
    args = (warmup, max_steps, max_lr, min_lr)
    got = torch.tensor([learner_lr(s, *args) for s in steps], dtype=torch.float64)
    want = torch.tensor([reference(MODULE).lr_at(s, *args) for s in steps], dtype=torch.float64)
    likely = [(sentence, lambda m=m: torch.tensor([schedule(s, *args, mistake=m) for s in steps],
                                                  dtype=torch.float64)) for sentence, m in SCHEDULE_MISTAKES]
    expect_close(got, want, f"[lr_at(step, {warmup}, {max_steps}, {max_lr}, {min_lr}) for step in "
                            f"0..{max_steps + 9}]", module=MODULE, atol=1e-12 * max_lr, rtol=1e-9, likely=likely)


def expect_lr(step, args, want, why):
    got = learner_lr(step, *args)
    if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-15):
        # at one step several known mistakes can give the same value: name every one that does
        found = list(dict.fromkeys(sentence for sentence, m in SCHEDULE_MISTAKES
                                   if math.isclose(got, schedule(step, *args, mistake=m), rel_tol=1e-9,
                                                   abs_tol=1e-15)))
        fail(MODULE, f"lr_at({step}, warmup_steps={args[0]}, max_steps={args[1]}, max_lr={args[2]}, "
                     f"min_lr={args[3]}) = {got!r}; expected {want!r} ({why}).",
             cause="; or ".join(found) or None, looks_like=True)


def test_lr_at_step_0_is_max_lr_over_warmup_steps():
    expect_lr(0, (10, 100, 6e-4, 6e-5), 6e-5, "max_lr / warmup_steps: the first step already trains")


def test_lr_at_last_warmup_step_is_max_lr():
    expect_lr(9, (10, 100, 6e-4, 6e-5), 6e-4, "the warmup reaches max_lr at step warmup_steps - 1")


def test_lr_at_without_warmup_starts_at_max_lr():
    expect_lr(0, (0, 40, 1.0, 0.1), 1.0, "with warmup_steps=0 the cosine starts at max_lr")


def test_lr_at_is_min_lr_from_max_steps_on():
    for step in (100, 101, 150, 1000):
        expect_lr(step, (10, 100, 6e-4, 6e-5), 6e-5, "the cosine reaches min_lr at max_steps and stays there")
