"""Does Muon (exercise 12) train the cpu-modern model in fewer steps than AdamW (exercise 07)?

Trains the --preset cpu-modern model (4 layers x 128, context 64, rmsnorm, rope, qk-norm, relu², untied,
softcap 15) on Tiny Shakespeare (characters) twice from the same initial weights on the same batches, with the
reference's parts used directly (solutions.gpt, solutions.optim, solutions.train, solutions.muon):

    adamw   configure_optimizers(model, lr, weight_decay, betas=(beta1, beta2))  (the preset's settings)
            train_step(..., lr=lr_at(step, warmup, steps, lr, min_lr))
    muon    configure_muon(model, muon_lr, adam_lr, muon_weight_decay, betas=(beta1, beta2))
            each group's lr = initial_lr * lr_at(step, warmup, steps, 1, min_lr / lr), then train_step(..., lr=None)

Both follow the preset's schedule shape (warmup, cosine to a tenth), stretched to --steps. The validation loss
is estimated every --eval-interval steps on the same --eval-batches batches (batch 32, fixed seed) for both
runs. Printed: the two curves side by side, AdamW's final validation loss, and the step at which Muon first
reaches it (linearly interpolated between evaluations), as a fraction of the steps. The goal: <= 75 %.

    python bench/muon_speed.py                        # 400 steps each, ~5 minutes on a busy 2-core machine
    python bench/muon_speed.py --steps 1200           # the preset's full length
    python bench/muon_speed.py --muon-lr 0.04 --adam-lr 6e-3

Measured (busy 2-core machine, 1 thread): 400 steps, AdamW's final 2.004 is reached by Muon at step 241 (60 %;
Muon ends at 1.877), 4 min 48 s for both runs; 600 steps: 1.921 at step 370 (62 %; Muon ends at 1.779). Tuning
at 400 steps: --muon-lr 0.04 is worse (ends 1.906, 66 %), --adam-lr 6e-3 the same within noise (1.876, 62 %),
so configure_muon's defaults stay.

Data: $KATA_DATA_DIR/tinyshakespeare/input.txt (or the train command's cache). Wall times are printed too, but
only their ratio means anything on a shared machine (Muon's step costs more: 5 Newton-Schulz iterations per
matrix, in bfloat16).
"""

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from grader.training.corpus import prepare  # noqa: E402
from grader.training.presets import preset  # noqa: E402
from solutions.config import GPTConfig  # noqa: E402
from solutions.gpt import GPT  # noqa: E402
from solutions.muon import configure_muon  # noqa: E402
from solutions.optim import configure_optimizers, lr_at  # noqa: E402
from solutions.train import estimate_loss, get_batch, train_step  # noqa: E402

PRESET = "cpu-modern"
GOAL = 0.75


def parse(argv=None):
    train = preset(PRESET)["train"]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=400, help="optimizer steps per run (the preset has 1200)")
    p.add_argument("--warmup", type=int, default=train["warmup_steps"])
    p.add_argument("--batch-size", type=int, default=train["batch_size"])
    p.add_argument("--lr", type=float, default=train["lr"], help="AdamW's peak lr (the preset's)")
    p.add_argument("--weight-decay", type=float, default=train["weight_decay"], help="AdamW's (the preset's)")
    p.add_argument("--beta2", type=float, default=train["beta2"], help="both runs' AdamW beta2 (the preset's)")
    p.add_argument("--muon-lr", type=float, default=0.02, help="configure_muon's muon_lr (its default)")
    p.add_argument("--adam-lr", type=float, default=3e-3, help="configure_muon's adam_lr (its default)")
    p.add_argument("--muon-weight-decay", type=float, default=0.0, help="configure_muon's weight_decay (its default)")
    p.add_argument("--eval-interval", type=int, default=50)
    p.add_argument("--eval-batches", type=int, default=10, help="validation batches of 32 per estimate")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    p.add_argument("--only", choices=["adamw", "muon"], help="run one optimizer only (for tuning)")
    return p.parse_args(argv)


def train(kind, args, corpus, config):
    """[(step, val_loss)] at every evaluation, and the wall time of the training steps."""
    torch.manual_seed(args.seed)
    model = GPT(config)
    min_ratio = 0.1  # the preset's min_lr = lr / 10
    if kind == "adamw":
        opt = configure_optimizers(model, args.lr, weight_decay=args.weight_decay, betas=(0.9, args.beta2))
    else:
        opt = configure_muon(model, muon_lr=args.muon_lr, adam_lr=args.adam_lr,
                             weight_decay=args.muon_weight_decay, betas=(0.9, args.beta2))
    batches = torch.Generator().manual_seed(args.seed)
    curve, train_seconds = [], 0.0

    def evaluate(step):
        g = torch.Generator().manual_seed(args.seed + 2)  # the same batches at every evaluation, in both runs
        curve.append((step, estimate_loss(model, corpus.val, 32, config.block_size, args.eval_batches, generator=g)))

    for step in range(args.steps):
        if step % args.eval_interval == 0:
            evaluate(step)
        t0 = time.perf_counter()
        factor = lr_at(step, args.warmup, args.steps, 1.0, min_ratio)
        micro = [get_batch(corpus.train, args.batch_size, config.block_size, generator=batches)]
        if kind == "adamw":
            loss = train_step(model, opt, micro, grad_clip=1.0, lr=args.lr * factor)
        else:
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * factor
            loss = train_step(model, opt, micro, grad_clip=1.0, lr=None)
        train_seconds += time.perf_counter() - t0
        if not math.isfinite(loss):
            print(f"[{kind}] the loss is {loss} at step {step}: stopping this run.")
            break
    else:
        evaluate(args.steps)
    return curve, train_seconds


def reach(curve, target):
    """The (interpolated) step at which curve first reaches target, or None."""
    for (s0, v0), (s1, v1) in zip(curve, curve[1:]):
        if v1 <= target:
            return s1 if v0 == v1 else s0 + (v0 - target) / (v0 - v1) * (s1 - s0)
    return None


def main(argv=None):
    args = parse(argv)
    torch.set_num_threads(args.threads)
    corpus = prepare("shakespeare", "char")
    config = GPTConfig(vocab_size=corpus.tokenizer.vocab_size, **preset(PRESET)["model"])
    print(f"{PRESET}: {config.n_layer} layers x {config.n_embd}, context {config.block_size}, batch "
          f"{args.batch_size}, {args.steps} steps (warmup {args.warmup}, cosine to a tenth); {corpus.description}")
    print(f"adamw: configure_optimizers(lr={args.lr:g}, weight_decay={args.weight_decay:g}, betas=(0.9, {args.beta2:g}))")
    print(f"muon:  configure_muon(muon_lr={args.muon_lr:g}, adam_lr={args.adam_lr:g}, "
          f"weight_decay={args.muon_weight_decay:g}, betas=(0.9, {args.beta2:g}))")
    runs = {}
    for kind in ("adamw", "muon"):
        if args.only and kind != args.only:
            continue
        started = time.perf_counter()
        runs[kind] = train(kind, args, corpus, config)
        print(f"[{kind}] done in {time.perf_counter() - started:.0f} s (train steps {runs[kind][1]:.0f} s)", flush=True)
    kinds = list(runs)
    print("\nvalidation loss (the same batches for both)")
    print("  step  " + "".join(f"{k:>9}" for k in kinds))
    steps = sorted({s for k in kinds for s, _ in runs[k][0]})
    for s in steps:
        row = "".join(f"{dict(runs[k][0]).get(s, float('nan')):9.4f}" for k in kinds)
        print(f"{s:6d}  {row}")
    if len(kinds) < 2:
        return 0
    (adamw, adamw_time), (muon, muon_time) = runs["adamw"], runs["muon"]
    target, last = adamw[-1][1], adamw[-1][0]
    at = reach(muon, target)
    print(f"\nAdamW's final validation loss: {target:.4f} (step {last}); Muon's: {muon[-1][1]:.4f}")
    if at is None:
        print(f"Muon does not reach {target:.4f} within {args.steps} steps.")
        return 1
    print(f"Muon reaches {target:.4f} at step {at:.0f}: {at / last:.0%} of AdamW's steps "
          f"(goal <= {GOAL:.0%}: {'met' if at / last <= GOAL else 'NOT met'}).")
    print(f"Time per train step, Muon / AdamW: {muon_time / adamw_time:.2f} "
          f"(so in wall time Muon needs {at / last * muon_time / adamw_time:.0%} of AdamW's).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
