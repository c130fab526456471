"""Mistakes learners make in 07 optim."""

from . import Mutant

DECAY = '                p.mul_(1 - lr * group["weight_decay"])\n'
UPDATE = '                p.addcdiv_(m_hat, v_hat.sqrt().add_(group["eps"]), value=-lr)\n'
CLOSURE = "        if closure is not None:\n            with torch.enable_grad():\n                loss = closure()\n"
GROUP_LR = 'lr, (beta1, beta2) = group["lr"], group["betas"]'

MUTANTS = [
    Mutant(
        "07-l2-instead-of-decoupled", "optim",
        "AdamW adds weight_decay * p to the gradient (Adam with L2) instead of decaying p itself.",
        ((DECAY, '                grad = p.grad.add(p, alpha=group["weight_decay"])\n'),
         ("m.mul_(beta1).add_(p.grad, alpha=1 - beta1)", "m.mul_(beta1).add_(grad, alpha=1 - beta1)"),
         ("v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)",
          "v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)")),
        ("l2",),
    ),
    Mutant(
        "07-no-bias-correction", "optim",
        "AdamW steps along m / (sqrt(v) + eps) without dividing by 1 - beta^t.",
        (("m_hat = m / (1 - beta1**t)", "m_hat = m"), ("v_hat = v / (1 - beta2**t)", "v_hat = v")),
        ("no bias correction",),
    ),
    Mutant(
        "07-t-starts-at-0", "optim",
        "The step count is incremented after the update, so the first bias correction divides by 1 - beta^0 = 0.",
        (('                state["step"] += 1\n', ""),
         (UPDATE, UPDATE + '                state["step"] += 1\n')),
        ("t = 0",),
    ),
    Mutant(
        "07-eps-inside-sqrt", "optim",
        "eps is added to v̂ under the square root.",
        (('v_hat.sqrt().add_(group["eps"])', '(v_hat + group["eps"]).sqrt()'),),
        ("eps", "inside the square root"),
    ),
    Mutant(
        "07-decay-without-lr", "optim",
        "The decoupled decay multiplies p by 1 - weight_decay, forgetting the learning rate.",
        ((DECAY, '                p.mul_(1 - group["weight_decay"])\n'),),
        ("not multiplied by lr",),
    ),
    Mutant(
        "07-betas-swapped", "optim",
        "beta2 is used for the first moment and beta1 for the second.",
        (('lr, (beta1, beta2) = group["lr"], group["betas"]', 'lr, (beta2, beta1) = group["lr"], group["betas"]'),),
        ("swapped",),
    ),
    Mutant(
        "07-decay-after-update", "optim",
        "The weight decay is applied after the Adam update instead of before it.",
        ((DECAY, ""), (UPDATE, UPDATE + DECAY)),
        ("after the adam update",),
    ),
    Mutant(
        "07-lr-from-defaults", "optim",
        "step() reads the lr from self.defaults, so groups' own lr and schedulers' changes are ignored.",
        (('lr, (beta1, beta2) = group["lr"], group["betas"]', 'lr, (beta1, beta2) = self.defaults["lr"], group["betas"]'),),
        ("group['lr']",),
    ),
    Mutant(
        "07-shared-step-count", "optim",
        "One step counter for the whole optimizer, instead of one per parameter in self.state[p].",
        (("        for group in self.param_groups:\n            lr, (beta1, beta2)",
          "        self.t = getattr(self, 't', 0) + 1\n        for group in self.param_groups:\n"
          "            lr, (beta1, beta2)"),
         ('t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]',
          't, m, v = self.t, state["exp_avg"], state["exp_avg_sq"]')),
        ("per parameter",),
        # the resume test (your AdamW against itself) sees the same mistake as state kept outside self.state
        also=(("outside self.state",),),
    ),
    Mutant(
        "07-decays-params-without-grad", "optim",
        "The decay runs before the check for a missing gradient, so frozen/unused parameters shrink.",
        ((DECAY, ""),
         ("            for p in group[\"params\"]:\n                if p.grad is None:",
          "            for p in group[\"params\"]:\n" + DECAY + "                if p.grad is None:")),
        ("without a gradient",),
    ),
    Mutant(
        "07-step-forgets-closure-loss", "optim",
        "step() returns nothing, dropping the closure's loss.",
        (("        return loss\n        ### END SOLUTION", "        ### END SOLUTION"),),
        ("closure",),
    ),
    Mutant(
        "07-groups-dim-equals-2", "optim",
        "param_groups decays p.dim() == 2 only, so conv kernels (dim 3) are not decayed.",
        (('{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay}',
          '{"params": [p for p in params if p.dim() == 2], "weight_decay": weight_decay}'),
         ('{"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}',
          '{"params": [p for p in params if p.dim() != 2], "weight_decay": 0.0}')),
        ("dim 3", "is not decayed"),
    ),
    Mutant(
        "07-groups-by-name", "optim",
        "param_groups decides by name (no decay for biases), so norm weights are decayed.",
        (('{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay}',
          '{"params": [p for n, p in model.named_parameters() if not n.endswith("bias")], '
          '"weight_decay": weight_decay}'),
         ('{"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}',
          '{"params": [p for n, p in model.named_parameters() if n.endswith("bias")], "weight_decay": 0.0}')),
        ("is decayed", "not by the name"),
    ),
    Mutant(
        "07-groups-list-tied-twice", "optim",
        "param_groups walks named_parameters(remove_duplicate=False), listing the tied embedding twice.",
        (("params = [p for p in model.parameters() if p.requires_grad]",
          "params = [p for _, p in model.named_parameters(remove_duplicate=False)]"),),
        ("tied", "once"),
    ),
    Mutant(
        "07-groups-no-decay-key", "optim",
        "The no-decay group has no weight_decay key, so AdamW's default 0.01 applies to it.",
        (('{"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}',
          '{"params": [p for p in params if p.dim() < 2]}'),),
        ("weight_decay",),
    ),
    Mutant(
        "07-configure-drops-betas", "optim",
        "configure_optimizers does not pass betas on, so AdamW's (0.9, 0.999) is used.",
        (("return AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps)",
          "return AdamW(param_groups(model, weight_decay), lr=lr, eps=eps)"),),
        ("betas",),
    ),
    Mutant(
        "07-warmup-off-by-one", "optim",
        "The warmup is max_lr * step / warmup_steps, so step 0 has lr 0.",
        (("return max_lr * (step + 1) / warmup_steps", "return max_lr * step / warmup_steps"),),
        ("off by one",),
    ),
    Mutant(
        "07-cosine-not-offset", "optim",
        "The cosine's progress is step / max_steps, ignoring the warmup.",
        (("progress = (step - warmup_steps) / (max_steps - warmup_steps)", "progress = step / max_steps"),),
        ("not offset by the warmup",),
    ),
    Mutant(
        "07-linear-decay", "optim",
        "The decay after the warmup is linear instead of a cosine.",
        (("return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)",
          "return min_lr + (1.0 - progress) * (max_lr - min_lr)"),),
        ("linear",),
    ),
    Mutant(
        "07-decay-to-zero", "optim",
        "The cosine decays to 0 instead of min_lr.",
        (("return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)",
          "return 0.5 * (1.0 + math.cos(math.pi * progress)) * max_lr"),),
        ("decays to 0",),
    ),
    Mutant(
        "07-configure-returns-torch-adamw", "optim",
        "configure_optimizers takes the shortcut and returns torch.optim.AdamW.",
        (("return AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps)",
          "return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps)"),),
        ("off limits",),
    ),
    Mutant(
        "07-only-m-corrected", "optim",
        "Only m is bias corrected; v is used as it is.",
        (("v_hat = v / (1 - beta2**t)", "v_hat = v"),),
        ("only m is bias corrected",),
    ),
    Mutant(
        "07-only-v-corrected", "optim",
        "Only v is bias corrected; m is used as it is.",
        (("m_hat = m / (1 - beta1**t)", "m_hat = m"),),
        ("only v is bias corrected",),
    ),
    Mutant(
        "07-eps-before-correction", "optim",
        "eps is added to sqrt(v) before the bias correction (the Adam paper's 'efficient' form, as in TensorFlow).",
        ((UPDATE, '                p.addcdiv_(m_hat, (v.sqrt() + group["eps"]) / (1 - beta2**t) ** 0.5, value=-lr)\n'),),
        ("before the bias correction",),
    ),
    Mutant(
        "07-no-weight-decay", "optim",
        "The decoupled weight decay is left out (Adam, not AdamW).",
        ((DECAY, ""),),
        ("no weight decay",),
    ),
    Mutant(
        "07-state-not-kept", "optim",
        "The state is created afresh at every step, so m, v and t start again from zero each time.",
        (("                if not state:\n", "                if True:\n"),),
        ("state was not kept",),
    ),
    Mutant(
        "07-settings-from-defaults", "optim",
        "step() reads lr, betas, eps and weight_decay from self.defaults, ignoring each group's own.",
        ((GROUP_LR, 'group = {**group, **self.defaults}\n            ' + GROUP_LR),),
        ("not used",),
    ),
    Mutant(
        "07-closure-called-late", "optim",
        "step() calls the closure after the update, so the update uses the gradients from before it.",
        ((CLOSURE, ""), ("        return loss\n        ### END SOLUTION", CLOSURE + "        return loss\n        ### END SOLUTION")),
        ("call the closure first",),
    ),
    Mutant(
        "07-closure-without-enable-grad", "optim",
        "step() calls the closure under its own torch.no_grad(), so the closure's backward has no graph.",
        ((CLOSURE, "        if closure is not None:\n            loss = closure()\n"),),
        ("enable_grad",),
    ),
    Mutant(
        "07-default-weight-decay-0", "optim",
        "AdamW's default weight_decay is 0 (torch.optim.Adam's), not 0.01.",
        (("def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):",
          "def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):"),),
        ("defaults are not the contract's",),
    ),
    Mutant(
        "07-configure-default-weight-decay", "optim",
        "configure_optimizers defaults to weight_decay=0.01 (AdamW's) instead of 0.1.",
        (("def configure_optimizers(model, lr, weight_decay=0.1,", "def configure_optimizers(model, lr, weight_decay=0.01,"),),
        ("weight_decay",),
    ),
    Mutant(
        "07-configure-drops-lr", "optim",
        "configure_optimizers does not pass lr on, so AdamW's 1e-3 is used.",
        (("return AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps)",
          "return AdamW(param_groups(model, weight_decay), betas=betas, eps=eps)"),),
        ("pass lr on",),
    ),
    Mutant(
        "07-warmup-plus-one", "optim",
        "The warmup divides by warmup_steps + 1, so it never quite reaches max_lr.",
        (("return max_lr * (step + 1) / warmup_steps", "return max_lr * (step + 1) / (warmup_steps + 1)"),),
        ("warmup_steps + 1",),
    ),
    Mutant(
        "07-no-floor", "optim",
        "After max_steps the cosine goes on (and rises again) instead of staying at min_lr.",
        (("    if step >= max_steps:\n        return min_lr\n", ""),),
        ("after max_steps",),
    ),
]
