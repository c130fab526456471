"""Exercise 14's speed-ups, one after another, on a GPT: tokens/s of a training step per row.

Each row adds one change to the row above it, on the same model (the same weights, the same batch):

    1. handwritten attention   03's causal_attention, float32
    2. + SDPA                  attention through 14's flash_attention
    3. + bf16 autocast         forward and loss inside 14's autocast(device) (bfloat16 on CUDA and CPU)
    4. + torch.compile         14's compiled(model)
    5. + padded vocabulary     14's padded_gpt(config): vocab_size rounded up to a multiple of 64

measure() returns tokens/s, the speed-up over the row above and over row 1, and the loss of the first step
(equal in every row up to bfloat16 rounding: the same computation, faster). A row that cannot run on this
device (no bf16 autocast on MPS, torch.compile failing) says why and the next rows go on without it.

How SDPA gets into the model without editing anyone's files (Router, also what `train` uses once 14
passes): CausalSelfAttention (03) calls the module-level function causal_attention of its own module
(exercises/attention.py or solutions/attention.py), looked up at call time. While routed, that module's
causal_attention is replaced by one that calls flash_attention (the contract makes them interchangeable:
same arguments, same result) when no attention dropout is asked for, and put back afterwards. A
CausalSelfAttention that computes attention inline, without calling causal_attention, is detected (no call
reaches flash_attention) and its SDPA row says so.

The training step is forward (inside the autocast context for rows 3-5), loss.backward() outside it, then
torch.optim.AdamW's step (torch's, not 07's: the table is about the model). Rows are timed in interleaved
rounds after `warmup` steps each (compilation happens there), so a machine whose load drifts slows every
row alike; read the ratios, which are measured side by side, rather than the absolute figures.

    results = measure(parts, model_fields, device, steps, on_progress)   # parts: .GPTConfig .GPT .attention .speed
    print(table(results, title))
"""

import contextlib
import importlib
import math
import time

import torch

STEPS = ("handwritten attention", "+ SDPA (flash_attention)", "+ bf16 autocast", "+ torch.compile",
         "+ padded vocabulary")
WTE, LM_HEAD = "transformer.wte.weight", "lm_head.weight"


class Router:
    """Routes an attention module's causal_attention to flash_attention while `with router:` is active
    (or from route() on).

    The replacement is one function object, made once and free of side effects, so that a compiled model
    (whose guards check the identity of the globals it traced) never recompiles because of it. `probe()`
    tells whether a call reaches it (it swaps in a counting function for one uncompiled forward)."""

    def __init__(self, attention, flash_attention):
        self.attention, self.original = attention, attention.causal_attention

        original = self.original

        def routed(q, k, v, dropout_p=0.0):
            if dropout_p:  # flash_attention (the contract's) has no dropout: attention dropout stays handwritten
                return original(q, k, v, dropout_p=dropout_p)
            return flash_attention(q, k, v)

        self.routed = routed

    def __enter__(self):
        self.attention.causal_attention = self.routed

    def route(self):
        """Route from now on (a training run: the module is the run's own)."""
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

    def __init__(self, name, model, ctx, router, note=""):
        self.name, self.model, self.ctx, self.router, self.note = name, model, ctx, router, note  # router: SDPA or None
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        self.seconds, self.timed, self.first_loss = 0.0, 0, None


def measure(parts, preset_model_config, device, steps, on_progress=None, *, batch_size=12, warmup=3, rounds=4,
            seed=0):
    """Tokens/s of a training step for each row of STEPS on device. Returns a list of dicts (one per row):
    step, tokens_per_s, speedup (over the previous row), total (over row 1), first_loss, timed (steps), note."""
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
        with (row.router or contextlib.nullcontext()):
            with row.ctx():
                _, loss = row.model(x, y)
            loss.backward()
            row.optimizer.step()
            row.optimizer.zero_grad(set_to_none=True)
        return loss

    null = contextlib.nullcontext
    autocast = lambda: parts.speed.autocast(device)  # noqa: E731
    has_autocast = not isinstance(autocast(), contextlib.nullcontext)
    rows = [Row(STEPS[0], fresh(), null, router=None)]
    sdpa = Row(STEPS[1], fresh(), null, router=router)
    rows.append(sdpa)
    with torch.no_grad():
        use_sdpa = router.probe(lambda: sdpa.model(x[:1], y[:1]))
    if not use_sdpa:
        say("SDPA is not routed: this CausalSelfAttention does not call its module's causal_attention")
        sdpa.note = "not routed: CausalSelfAttention does not call causal_attention"
        sdpa.router = None
    routed = router if use_sdpa else None
    amp = autocast if has_autocast else null
    rows.append(Row(STEPS[2], fresh(), amp, routed, "" if has_autocast else f"no bf16 autocast on {device.type}"))
    say("compiling (the first steps of the compiled rows include the compilation)")
    with router:
        model = parts.speed.compiled(fresh())
    compiled = not isinstance(model, parts.GPT)
    rows.append(Row(STEPS[3], model, amp, routed, "" if compiled else "torch.compile failed here (see above)"))
    # padded_gpt builds the GPT of its own package: the learner's with their 14, the reference's with the reference's
    # 14 (until theirs passes), whose attention is routed through its own module
    inner = importlib.import_module(parts.speed.__name__.rsplit(".", 1)[0] + ".attention")
    padded_router = router if inner is parts.attention else Router(inner, parts.speed.flash_attention)
    padded = fresh(padded=True)
    with padded_router:
        padded = parts.speed.compiled(padded) if compiled else padded
    vocab = parts.speed.padded_vocab(config.vocab_size)
    note = f"vocab {config.vocab_size} -> {vocab}" + ("" if inner is parts.attention else
                                                      " (the reference's GPT: padded_gpt is the reference's)")
    rows.append(Row(STEPS[4], padded, amp, padded_router if use_sdpa else None, note))

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
        say(f"timing round {r + 1}/{rounds} ({per_round} step{'s' * (per_round > 1)} per row)")
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
                            total=rate / first if first else None, first_loss=row.first_loss, timed=row.timed,
                            note=row.note))
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
