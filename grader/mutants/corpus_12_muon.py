"""Mistakes learners make in 12 muon."""

from . import Mutant

NORMALISE = "    X = X / (X.norm() + eps)\n"
LOOP_END = "        X = torch.addmm(X, B, X, beta=a)  # a * X + B @ X\n"
BUF = "    buf.lerp_(grad, 1 - momentum)\n"
NESTEROV = '    update = grad.lerp(buf, momentum) if group["nesterov"] else buf\n'
DECAY = "    p.mul_(1 - lr * weight_decay)\n"
UPDATE = "    p.add_(update, alpha=-lr * math.sqrt(max(1, rows / cols)))\n"
HIDDEN = 'hidden = [p for name, p in named if name.startswith("transformer.h.") and p.dim() == 2]'

MUTANTS = [
    Mutant(
        "12-ns-no-transpose", "muon",
        "newton_schulz never transposes, so a tall G gets its Gram matrix X Xᵀ on the long side.",
        (("    tall = G.size(0) > G.size(1)\n", "    tall = False\n"),),
        ("long side",),
    ),
    Mutant(
        "12-ns-transposes-wide", "muon",
        "newton_schulz transposes when G has more columns than rows (the condition inverted).",
        (("    tall = G.size(0) > G.size(1)\n", "    tall = G.size(0) < G.size(1)\n"),),
        ("long side",),
    ),
    Mutant(
        "12-ns-no-normalisation", "muon",
        "newton_schulz iterates on G itself, without dividing by its Frobenius norm.",
        ((NORMALISE, ""),),
        ("not normalised",),
    ),
    Mutant(
        "12-ns-normalise-after", "muon",
        "newton_schulz divides by the Frobenius norm after the iteration instead of before it.",
        ((NORMALISE, ""), (LOOP_END, LOOP_END + NORMALISE)),
        ("after the iteration",),
    ),
    Mutant(
        "12-ns-no-transpose-back", "muon",
        "newton_schulz transposes a tall G but returns the transposed result.",
        (("    if tall:\n        X = X.mT\n    return X.to(G.dtype)", "    return X.to(G.dtype)"),),
        ("transposed back",),
    ),
    Mutant(
        "12-ns-ignores-steps", "muon",
        "newton_schulz always runs 5 steps, whatever steps says.",
        (("    for _ in range(steps):\n", "    for _ in range(5):\n"),),
        ("steps argument",),
    ),
    Mutant(
        "12-ns-ignores-dtype", "muon",
        "newton_schulz iterates in G's own dtype, never converting to dtype (bfloat16 by default).",
        (("    X = G.to(dtype)\n", "    X = G.clone()\n"),),
        ("did not run in the default dtype",),
        also=(("dtype argument was not used",),),
    ),
    Mutant(
        "12-ns-no-eps", "muon",
        "newton_schulz divides by ||G||_F alone, so a zero G gives 0/0.",
        ((NORMALISE, "    X = X / X.norm()\n"),),
        ("eps in the denominator",),
        also=(("eps was ignored",),),
    ),
    Mutant(
        "12-ns-returns-bfloat16", "muon",
        "newton_schulz returns the iteration's dtype instead of converting back to G's.",
        (("    return X.to(G.dtype)\n", "    return X\n"),),
        ("G's dtype",),
    ),
    Mutant(
        "12-no-nesterov", "muon",
        "Muon steps along the momentum buffer, never applying the Nesterov look-ahead.",
        ((NESTEROV, "    update = buf\n"),),
        ("nesterov look-ahead is missing",),
    ),
    Mutant(
        "12-nesterov-twice", "muon",
        "Muon applies the Nesterov look-ahead twice (once more on the already looked-ahead update).",
        ((NESTEROV, NESTEROV + '    update = grad.lerp(update, momentum) if group["nesterov"] else update\n'),),
        ("applied twice",),
    ),
    Mutant(
        "12-nesterov-flag-ignored", "muon",
        "Muon always uses the Nesterov update, even with nesterov=False.",
        ((NESTEROV, "    update = grad.lerp(buf, momentum)\n"),),
        ("nesterov=false was ignored",),
    ),
    Mutant(
        "12-buffer-updated-after-use", "muon",
        "Muon computes the update from the old momentum buffer and updates the buffer afterwards.",
        ((BUF + NESTEROV, NESTEROV + BUF),),
        ("after it was used",),
    ),
    Mutant(
        "12-lerp-weight-swapped", "muon",
        "The momentum buffer moves towards the gradient by momentum (0.95) instead of 1 - momentum.",
        ((BUF, "    buf.lerp_(grad, momentum)\n"),),
        ("instead of 1 - momentum",),
    ),
    Mutant(
        "12-classic-buffer-with-lerp-nesterov", "muon",
        "The buffer is the classic momentum * buf + grad, but the Nesterov step is still grad.lerp(buf, momentum).",
        ((BUF, "    buf.mul_(momentum).add_(grad)\n"),),
        ("classic",),
    ),
    Mutant(
        "12-grad-modified-in-place", "muon",
        "The Nesterov update is computed with grad.lerp_, overwriting p.grad.",
        ((NESTEROV, '    update = grad.lerp_(buf, momentum) if group["nesterov"] else buf\n'),),
        ("in place",),
    ),
    Mutant(
        "12-lr-not-scaled", "muon",
        "Muon applies the plain lr to every matrix, without the sqrt(max(1, rows / cols)) factor.",
        ((UPDATE, "    p.add_(update, alpha=-lr)\n"),),
        ("not scaled",),
    ),
    Mutant(
        "12-lr-scale-no-max", "muon",
        "Muon scales the lr by sqrt(rows / cols), shrinking it for wide matrices.",
        ((UPDATE, "    p.add_(update, alpha=-lr * math.sqrt(rows / cols))\n"),),
        ("max(1",),
    ),
    Mutant(
        "12-decay-coupled", "muon",
        "Muon adds weight_decay * p to the gradient (coupled, L2) instead of decaying p itself.",
        (("    grad = p.grad\n", '    grad = p.grad.add(p, alpha=group["weight_decay"])\n'), (DECAY, "")),
        ("coupled",),
    ),
    Mutant(
        "12-decay-with-scaled-lr", "muon",
        "Muon decays with the shape-scaled lr instead of the group's lr.",
        ((DECAY, "    p.mul_(1 - lr * math.sqrt(max(1, rows / cols)) * weight_decay)\n"),),
        ("scaled lr",),
    ),
    Mutant(
        "12-decay-after-update", "muon",
        "Muon decays the parameter after subtracting the update instead of before.",
        ((DECAY, ""), (UPDATE, UPDATE + DECAY)),
        ("after the update",),
    ),
    Mutant(
        "12-step-uses-defaults", "muon",
        "Muon.step hands self.defaults to the update instead of each group's settings.",
        (("                    muon_update(p, self.state[p], group)\n        return loss",
          "                    muon_update(p, self.state[p], self.defaults)\n        return loss"),),
        ("group[",),
    ),
    Mutant(
        "12-accepts-1d", "muon",
        "Muon's 2-D check only refuses parameters with more than 2 dims, so biases and scalars slip through.",
        (("            if p.dim() != 2:\n", "            if p.dim() > 2:\n"),),
        ("raise ValueError",),
    ),
    Mutant(
        "12-uses-torch-muon-iteration", "muon",
        "Muon calls torch.optim.Muon's Newton-Schulz helper instead of its own.",
        (('    update = newton_schulz(update, steps=group["ns_steps"], dtype=group["ns_dtype"])\n',
          "    from torch.optim._muon import _zeropower_via_newtonschulz\n"
          '    update = _zeropower_via_newtonschulz(update, NS_COEFFICIENTS, group["ns_steps"], 1e-7).to(p.dtype)\n'),),
        ("off limits",),
    ),
    Mutant(
        "12-embeddings-to-muon", "muon",
        "configure_muon sends every 2-D parameter to Muon, embeddings and lm_head included.",
        ((HIDDEN, "hidden = [p for name, p in named if p.dim() == 2]"),),
        ("embeddings", "muon group"),
    ),
    Mutant(
        "12-untied-lm-head-to-muon", "muon",
        "configure_muon keeps wte and wpe out of Muon by name but forgets an untied lm_head.",
        ((HIDDEN, 'hidden = [p for name, p in named if "wte" not in name and "wpe" not in name and p.dim() == 2]'),),
        ("lm_head", "muon group"),
    ),
    Mutant(
        "12-tied-counted-twice", "muon",
        "configure_muon walks named_parameters(remove_duplicate=False), listing the tied embedding twice.",
        (("named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]",
          "named = [(name, p) for name, p in model.named_parameters(remove_duplicate=False) if p.requires_grad]"),),
        ("tied", "twice"),
    ),
    Mutant(
        "12-adamw-group-decayed", "muon",
        "configure_muon gives the AdamW group the weight_decay too.",
        (("betas=betas, eps=eps, weight_decay=0.0)", "betas=betas, eps=eps, weight_decay=weight_decay)"),),
        ("adamw group", "weight_decay"),
    ),
    Mutant(
        "12-no-initial-lr", "muon",
        "configure_muon's groups have no initial_lr, so the training loop cannot scale them.",
        (("use_muon=True, lr=muon_lr, initial_lr=muon_lr,", "use_muon=True, lr=muon_lr,"),
         ("use_muon=False, lr=adam_lr, initial_lr=adam_lr,", "use_muon=False, lr=adam_lr,")),
        ("initial_lr",),
    ),
]
