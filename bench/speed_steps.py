"""Exercise 14's speed-ups, one after another: tokens/s of a training step of a GPT.

    python bench/speed_steps.py                          # the cpu preset's model, on the CPU (and CUDA/MPS if present)
    python bench/speed_steps.py --preset gpu --device cuda --steps 50
    python bench/speed_steps.py --vocab-size 50257       # GPT-2's vocabulary instead of Tiny Shakespeare's 65 characters

Each row adds one change to the row above it, on the same model (the same weights, the same batch):

    1. handwritten attention   03's causal_attention, float32
    2. + SDPA                  attention through 14's flash_attention
    3. + bf16 autocast         forward and loss inside 14's autocast(device) (bfloat16 on CUDA and CPU)
    4. + torch.compile         14's compiled(model)
    5. + padded vocabulary     14's padded_gpt(config): vocab_size rounded up to a multiple of 64

and the table gives tokens/s, the speed-up over the row above and over row 1, and the loss of the first
step (equal in every row up to bfloat16 rounding: the same computation, faster). A row that cannot run on
this device (no bf16 autocast on MPS, torch.compile failing) says why and the next rows go on without it.

How SDPA gets into the model without editing anyone's files: CausalSelfAttention (03) calls the module-level
function causal_attention of its own module (exercises/attention.py or solutions/attention.py), looked up at
call time. While the rows 2-5 run, that module's causal_attention is replaced by one that calls
flash_attention (the contract makes them interchangeable: same arguments, same result; dropout is set to 0
here so that no dropout_p is lost), and put back afterwards. A CausalSelfAttention that computes attention
inline, without calling causal_attention, is detected (no call reaches flash_attention) and its SDPA row says so.

The training step is forward (inside the autocast context for rows 3-5), loss.backward() outside it, then
torch.optim.AdamW's step (torch's, not 07's: the table is about the model; an optimizer written with Python
loops would add the same time to every row). Rows are timed in interleaved rounds after `warmup` steps each
(compilation happens there), so a machine whose load drifts slows every row alike; read the ratios, which
are measured side by side, rather than the absolute figures.

measure(parts, preset_model_config, device, steps, on_progress) is the function `python -m grader speed` will
call; parts is load_parts(impl) below: the modules of one implementation (the reference by default here).
"""

import argparse
import contextlib
import importlib
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

STEPS = ("handwritten attention", "+ SDPA (flash_attention)", "+ bf16 autocast", "+ torch.compile",
         "+ padded vocabulary")
WTE, LM_HEAD = "transformer.wte.weight", "lm_head.weight"


def load_parts(impl="solutions"):
    """The modules measure() uses, from exercises/ (swaps applied) or solutions/."""
    module = lambda name: importlib.import_module(f"{impl}.{name}")  # noqa: E731
    return SimpleNamespace(impl=impl, GPTConfig=module("config").GPTConfig, GPT=module("gpt").GPT,
                           attention=module("attention"), speed=module("speed"))


class Router:
    """Routes an attention module's causal_attention to flash_attention while `with router:` is active.

    The replacement is one function object, made once and free of side effects, so that a compiled model
    (whose guards check the identity of the globals it traced) never recompiles because of it. `probe()`
    tells whether a call reaches it (it swaps in a counting function for one uncompiled forward)."""

    def __init__(self, attention, flash_attention):
        self.attention, self.original = attention, attention.causal_attention

        def routed(q, k, v, *args, **kwargs):
            return flash_attention(q, k, v)

        self.routed = routed

    def __enter__(self):
        self.attention.causal_attention = self.routed

    def __exit__(self, *exc):
        self.attention.causal_attention = self.original

    def probe(self, run):
        calls = []

        def counted(q, k, v, *args, **kwargs):
            calls.append(1)
            return self.routed(q, k, v)

        self.attention.causal_attention = counted
        try:
            run()
        finally:
            self.attention.causal_attention = self.original
        return bool(calls)


def copy_weights(source, target):
    """Load source's GPT weights into target (a GPT or a module holding one), padding rows kept as they are."""
    state = target.state_dict()
    prefix = next(k for k in state if k.endswith(WTE))[: -len(WTE)]
    with torch.no_grad():
        for key, tensor in source.state_dict().items():
            mine = state[prefix + key]
            mine[: tensor.size(0)].copy_(tensor) if key in (WTE, LM_HEAD) else mine.copy_(tensor)


class Row:
    """One row of the table: a model, how to step it, and what was measured."""

    def __init__(self, name, model, ctx, sdpa, note=""):
        self.name, self.model, self.ctx, self.sdpa, self.note = name, model, ctx, sdpa, note
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4) if model is not None else None
        self.seconds, self.timed, self.first_loss = 0.0, 0, None


def measure(parts, preset_model_config, device, steps, on_progress=None, *, batch_size=12, warmup=3, rounds=4,
            seed=0):
    """Tokens/s of a training step for each row of STEPS on device. Returns a list of dicts (one per row):
    step, tokens_per_s (None if the row could not run), speedup (over the previous row that ran), total (over
    row 1), first_loss, note."""
    say = on_progress or (lambda text: None)
    fields = dict(preset_model_config)
    fields["dropout"] = 0.0
    config = parts.GPTConfig(**fields)
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(config.vocab_size, (batch_size, config.block_size), generator=gen).to(device)
    y = torch.randint(config.vocab_size, (batch_size, config.block_size), generator=gen).to(device)
    router = Router(parts.attention, parts.speed.flash_attention)

    def fresh(padded=False):
        torch.manual_seed(seed)
        base = parts.GPT(config)
        if not padded:
            return base.to(device)
        model = parts.speed.padded_gpt(config)
        copy_weights(base, model)
        return model.to(device)

    def step(row):
        with (router if row.sdpa else contextlib.nullcontext()):
            with row.ctx():
                _, loss = row.model(x, y)
            loss.backward()
            row.optimizer.step()
            row.optimizer.zero_grad(set_to_none=True)
        return loss

    null = contextlib.nullcontext
    autocast = lambda: parts.speed.autocast(device)  # noqa: E731
    has_autocast = not isinstance(autocast(), contextlib.nullcontext)
    rows = [Row(STEPS[0], fresh(), null, sdpa=False)]
    sdpa = Row(STEPS[1], fresh(), null, sdpa=True)
    rows.append(sdpa)
    with torch.no_grad():
        use_sdpa = router.probe(lambda: sdpa.model(x[:1], y[:1]))
    if not use_sdpa:
        say("SDPA is not routed: this CausalSelfAttention does not call its module's causal_attention")
        sdpa.note = "not routed: CausalSelfAttention does not call causal_attention"
    amp = autocast if has_autocast else null
    rows.append(Row(STEPS[2], fresh(), amp, use_sdpa, "" if has_autocast else f"no bf16 autocast on {device.type}"))
    say("compiling (the first steps of the compiled rows include the compilation)")
    with router:
        model = parts.speed.compiled(fresh())
    compiled = not isinstance(model, parts.GPT)
    rows.append(Row(STEPS[3], model, amp, use_sdpa, "" if compiled else "torch.compile failed here (see above)"))
    padded = fresh(padded=True)
    with router:
        padded = parts.speed.compiled(padded) if compiled else padded
    vocab = parts.speed.padded_vocab(config.vocab_size)
    rows.append(Row(STEPS[4], padded, amp, use_sdpa, f"vocab {config.vocab_size} -> {vocab}"))

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elif device.type == "mps":
            torch.mps.synchronize()

    for row in rows:
        say(f"warming up: {row.name}")
        for n in range(warmup):
            loss = step(row)
            if n == 0:
                row.first_loss = loss.item()
    per_round = max(1, math.ceil(steps / rounds))
    for r in range(rounds):
        say(f"timing round {r + 1}/{rounds} ({per_round} steps per row)")
        for row in rows:
            sync()
            start = time.perf_counter()
            for _ in range(per_round):
                step(row)
            sync()
            row.seconds += time.perf_counter() - start
            row.timed += per_round
    tokens = batch_size * config.block_size
    results, first, previous = [], None, None
    for row in rows:
        rate = tokens * row.timed / row.seconds if row.seconds else None
        first = first or rate
        results.append(dict(step=row.name, tokens_per_s=rate, speedup=rate / previous if previous else None,
                            total=rate / first if first else None, first_loss=row.first_loss, note=row.note))
        previous = rate
    return results


def table(results, title):
    lines = [title, f"{'step':<28}{'tokens/s':>12}{'speed-up':>10}{'total':>8}{'loss(1)':>10}  note"]
    for r in results:
        rate = f"{r['tokens_per_s']:,.0f}" if r["tokens_per_s"] else "-"
        up = f"x{r['speedup']:.2f}" if r["speedup"] else ""
        total = f"x{r['total']:.2f}" if r["total"] else ""
        loss = f"{r['first_loss']:.4f}" if r["first_loss"] is not None else ""
        lines.append(f"{r['step']:<28}{rate:>12}{up:>10}{total:>8}{loss:>10}  {r['note']}")
    return "\n".join(lines)


def main(argv=None):
    from grader.training.presets import preset

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu", help="the model (and batch size) of a train preset (default cpu)")
    parser.add_argument("--vocab-size", type=int, default=65, help="65: Tiny Shakespeare's characters (the train "
                        "command's default tokenizer); 50257: GPT-2's BPE")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--device", action="append", help="cpu, cuda, mps (repeatable; default: cpu and every "
                        "accelerator present)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per row (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per row first (default 3)")
    parser.add_argument("--impl", default="solutions", choices=("solutions", "exercises"))
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = preset(args.preset)
    model = dict(chosen["model"], vocab_size=args.vocab_size)
    batch_size = args.batch_size or chosen["train"]["batch_size"]
    devices = args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (
        ["mps"] if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else [])
    parts = load_parts(args.impl)
    for device in devices:
        results = measure(parts, model, device, args.steps, lambda text: print(f"  [{device}] {text}", flush=True),
                          batch_size=batch_size, warmup=args.warmup)
        shape = (f"{model['n_layer']} layers x {model['n_embd']}, {model['n_head']} heads, context "
                 f"{model['block_size']}, vocab {args.vocab_size}, batch {batch_size}")
        where = torch.cuda.get_device_name(0) if device == "cuda" else f"{device}, {torch.get_num_threads()} threads"
        print()
        print(table(results, f"{args.preset} preset ({shape}) on {where}, torch {torch.__version__}, {args.impl}; "
                             f"{args.steps} timed steps per row"))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
