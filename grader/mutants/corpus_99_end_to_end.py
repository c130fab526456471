"""Mistakes that the end-to-end test (99) must catch: one bug anywhere in the pipeline, the rest correct.

Each edits one reference module; test 99 then trains the whole model with it.
"""

from . import Mutant

E2E = ("99",)

MUTANTS = [
    Mutant(
        "99-mask-missing", "attention",
        "causal_attention computes the mask but never applies it: every position sees the whole window.",
        (('    scores = scores.masked_fill(~visible, float("-inf"))\n', ""),),
        ("sees the future",), E2E,
    ),
    Mutant(
        "99-mask-upper-triangle", "attention",
        "causal_attention keeps the upper triangle (triu): each position sees itself and the future.",
        (("dtype=torch.bool, device=q.device).tril(diagonal=Tk - Tq)",
          "dtype=torch.bool, device=q.device).triu(diagonal=Tk - Tq)"),),
        ("sees the future",), E2E,
    ),
    Mutant(
        "99-mask-only-self", "attention",
        "causal_attention lets each position see only itself (the diagonal): no context beyond the last token.",
        (("dtype=torch.bool, device=q.device).tril(diagonal=Tk - Tq)",
          "dtype=torch.bool, device=q.device).tril(diagonal=Tk - Tq).triu(diagonal=Tk - Tq)"),),
        ("last character only",), E2E,
    ),
    Mutant(
        "99-adamw-never-updates", "optim",
        "AdamW updates m and v but never moves the parameters by them.",
        (('                p.addcdiv_(m_hat, v_hat.sqrt().add_(group["eps"]), value=-lr)\n', ""),),
        ("did not learn",), E2E,
    ),
    Mutant(
        "99-adamw-sign-flipped", "optim",
        "AdamW adds the update instead of subtracting it (gradient ascent).",
        (('v_hat.sqrt().add_(group["eps"]), value=-lr)', 'v_hat.sqrt().add_(group["eps"]), value=lr)'),),
        ("did not learn",), E2E,
    ),
    Mutant(
        "99-adamw-ignores-lr", "optim",
        "AdamW leaves lr out of the step: p -= m_hat / (sqrt(v_hat) + eps).",
        (('v_hat.sqrt().add_(group["eps"]), value=-lr)', 'v_hat.sqrt().add_(group["eps"]), value=-1.0)'),),
        ("did not learn",), E2E,
    ),
    Mutant(
        "99-train-step-no-backward", "train",
        "train_step computes the loss but never calls backward, so there are no gradients.",
        (("        (loss / len(micro_batches)).backward()\n", ""),),
        ("did not learn",), E2E,
    ),
    Mutant(
        "99-train-step-no-optimizer-step", "train",
        "train_step computes the gradients but never calls optimizer.step().",
        (("    optimizer.step()\n    return float(", "    return float("),),
        ("did not learn",), E2E,
    ),
    Mutant(
        "99-get-batch-y-is-x", "train",
        "get_batch returns the window itself as the targets, not the window moved one token on.",
        (("x, y = windows[:, :-1], windows[:, 1:]", "x, y = windows[:, :-1], windows[:, :-1]"),),
        ("get_batch", "moved one token to the right"), E2E,
    ),
    Mutant(
        "99-loss-shifts-targets-again", "gpt",
        "GPT.forward shifts logits and targets once more, though targets are already shifted: it learns the "
        "token after next.",
        (("F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)",
          "F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), targets[:, 1:].reshape(-1), "
          "ignore_index=-1)"),),
        ("shifts the targets again",), E2E,
    ),
    Mutant(
        "99-init-std-1", "gpt",
        "init_weights draws every Linear and Embedding weight with std 1.0 instead of 0.02.",
        (("nn.init.normal_(module.weight, mean=0.0, std=0.02)", "nn.init.normal_(module.weight, mean=0.0, std=1.0)"),),
        ("initial loss", "init_weights"), E2E,
    ),
    Mutant(
        "99-generate-first-position", "generate",
        "generate samples from the logits of the first position instead of the last.",
        (("\n                next_token = sample_next_token(logits[:, -1, :], temperature",
          "\n                next_token = sample_next_token(logits[:, 0, :], temperature"),),
        ("first position",), E2E,
    ),
    Mutant(
        "99-generate-crops-the-start", "generate",
        "generate crops the context to its first block_size tokens instead of its last.",
        (("context = idx[:, -model.config.block_size :]", "context = idx[:, : model.config.block_size]"),),
        ("first block_size tokens",), E2E,
    ),
    Mutant(
        "99-generate-ignores-temperature", "generate",
        "generate does not pass temperature (or top_k, top_p) on, so temperature 0 samples at temperature 1.",
        (("\n                next_token = sample_next_token(logits[:, -1, :], temperature, top_k, top_p, generator)",
          "\n                next_token = sample_next_token(logits[:, -1, :], generator=generator)"),),
        ("argmax",), E2E,
    ),
    Mutant(
        "99-generate-prepends", "generate",
        "generate puts each new token in front of the sequence instead of after it.",
        (("\n                idx = torch.cat((idx, next_token), dim=1)", "\n                idx = torch.cat((next_token, idx), dim=1)"),),
        ("prompt",), E2E,
    ),
    Mutant(
        "99-train-step-reports-mean-over-k", "train",
        "train_step adds up each micro-batch's loss already divided by their number, then divides again: it "
        "reports the mean loss divided by the number of micro-batches.",
        (("        total_loss += loss.detach()\n", "        total_loss += (loss / len(micro_batches)).detach()\n"),),
        ("does not return the mean loss",), E2E,
    ),
]
