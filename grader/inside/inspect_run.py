"""`python -m grader inspect RUN`: look inside a model that `python -m grader train` trained.

    python -m grader inspect runs/tiny
    python -m grader inspect runs/cpu --prompt "ROMEO:\\nBut soft" --top-k 5

Prints the next-token top-k for the prompt and the parameter count of every module, and writes
into RUN/inspect/ (or --figures DIR): attention.png (the attention weights of every layer and
head on the prompt, tokens on the axes) and, for a run trained with --stats, stats.png (per layer:
activations, gradient norms, update-to-data ratio over the steps) and histograms.png (activation
and gradient histograms of the last evaluation). It prints the paths it wrote. The run's own files
are only read.
"""

import math
import sys
from pathlib import Path

from data.shakespeare import DataError
from grader.project import Parser, UsageError
from grader.training.checkpoint import FILENAME, CheckpointError

PROGRAM = "python -m grader inspect"
PROMPTS = ("ROMEO:\nBut soft, what light", "First Citizen:\nBefore we")


def build_parser():
    parser = Parser(prog=PROGRAM, description="Attention maps, next-token top-k, parameter counts and training "
                    "statistics of a run of `python -m grader train`.")
    parser.add_argument("run", metavar="RUN", help="the run's folder (train's --out), holding ckpt.pt")
    parser.add_argument("--prompt", default=None, help="the text to look at (default: a line the vocabulary can write)")
    parser.add_argument("--top-k", type=int, default=10, help="how many likely next tokens to list (default 10)")
    parser.add_argument("--impl", default=None, choices=("exercises", "solutions"),
                        help="whose model code: the one the run was trained with (default), exercises or solutions")
    parser.add_argument("--figures", default=None, metavar="DIR", help="where the PNGs go (default RUN/inspect)")
    return parser


def check(args) -> None:
    run = Path(args.run)
    if not run.is_dir():
        raise UsageError(f"There is no run folder {run}: give the --out folder of `python -m grader train`.")
    if not (run / FILENAME).is_file():
        raise UsageError(f"{run} holds no checkpoint ({FILENAME}): train into it first "
                         f"(python -m grader train --out {run}), or give another run's folder.")
    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {args.top_k}.")
    if args.prompt is not None and not args.prompt:
        raise UsageError("--prompt is empty: give at least one character.")
    figures = Path(args.figures) if args.figures else run / "inspect"
    if figures.exists() and not figures.is_dir():
        raise UsageError(f"--figures {figures} is a file, not a folder.")


def main(argv=None, console=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
        check(args)
    except SystemExit as done:
        return int(done.code or 0)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    from grader.training.parts import UnfinishedParts

    try:
        return inspect_run(args, console)
    except (UsageError, CheckpointError, DataError, UnfinishedParts) as error:
        print(error, file=sys.stderr)
        return 2


# --- the work ----------------------------------------------------------------------------------------------


def default_prompt(tokenizer, run: Path, block_size: int) -> str:
    for text in PROMPTS:
        try:
            tokenizer.encode(text)
            return text
        except DataError:
            continue
    samples = run / "samples.txt"
    if samples.is_file():  # the run's own writing is in its vocabulary
        lines = [line for line in samples.read_text(encoding="utf-8").splitlines() if line and not line.startswith("===")]
        if lines:
            return lines[-1][: min(24, block_size)]
    chars = getattr(tokenizer, "chars", "")
    return chars[: min(16, block_size)]


def inspect_run(args, console=None) -> int:
    import importlib

    import torch

    from data.tokenizers import from_state
    from grader import screens
    from grader.inside import figures, tracer
    from grader.training import checkpoint
    from grader.training.parts import require_parts, swaps_of_run

    con = console or screens.console()
    con.soft_wrap = False
    run = Path(args.run)
    out = Path(args.figures) if args.figures else run / "inspect"
    ckpt = checkpoint.load(run / FILENAME)
    impl = args.impl or ckpt["run"]["impl"]
    note = swaps_of_run(ckpt, impl)  # before `exercises` is imported
    if note:
        print(note, file=sys.stderr)
    GPTConfig = importlib.import_module(f"{impl}.config").GPTConfig
    try:
        config = GPTConfig(**ckpt["config"])
    except (TypeError, ValueError) as error:
        raise UsageError(f"The checkpoint's configuration does not fit {impl}'s GPTConfig ({error}).") from None
    tokenizer = from_state(ckpt["tokenizer"])
    prompt = args.prompt if args.prompt is not None else default_prompt(tokenizer, run, config.block_size)
    try:
        ids = tokenizer.encode(prompt)
    except DataError:
        unknown = "".join(sorted(set(prompt) - set(getattr(tokenizer, "chars", ""))))
        raise UsageError(f"The prompt has {len(unknown)} character(s) this run's vocabulary lacks ({unknown!r}): a "
                         f"character model knows only the characters it was trained on; change the prompt.") from None
    if not ids:
        raise UsageError("The prompt encodes to no tokens: give some text.")
    if len(ids) > config.block_size:
        raise UsageError(f"The prompt has {len(ids)} tokens but the model's context is {config.block_size}: shorten it.")
    if impl == "exercises":
        require_parts(config, ("model",), "be inspected")

    def load(model):
        try:
            model.load_state_dict(ckpt["model"], strict=True)
        except RuntimeError as error:
            raise UsageError(f"The checkpoint in {run} does not fit {impl}'s model "
                             f"({str(error).splitlines()[0]}).") from None

    idx = torch.tensor([ids], dtype=torch.long)
    with tracer.one_thread(torch):
        outcome = tracer.run(config, idx, None, impl=impl, keep_weights=True, setup=load)
    if outcome.stopped:
        from grader.inside.trace import stop_text

        for line in stop_text(outcome, screens._unicode(con)):
            con.print(line)
        return 1
    model = outcome.model
    tokens = [tokenizer.decode([i]) for i in ids]
    written = []
    steps = ckpt["step"]
    about = f"{run} ({ckpt['run']['preset']}, {impl}, step {steps})"

    # next-token top-k
    con.print(topk_table(outcome.logits, tokenizer, prompt, args.top_k, torch))
    # parameter counts
    con.print(parameter_table(model))
    # attention maps
    weights = attention_maps(outcome.root, config)
    if weights:
        shown = prompt if len(prompt) <= 40 else prompt[:37] + "..."
        written.append(figures.attention_grid(
            weights, tokens, out / "attention.png",
            f"Attention weights of {about}\nprompt {shown!r}: rows are layers, columns heads"))
    else:
        con.print("No attention weights were seen (the model computed no softmax over keys and no "
                  "causal_attention / scaled_dot_product_attention call), so there is no attention.png.")
    # training statistics
    stats = ckpt["metrics"].get("stats")
    if stats and stats.get("records"):
        written.append(figures.training_stats(stats, out / "stats.png", f"Training statistics of {about}"))
        if stats.get("histograms"):
            written.append(figures.histograms(stats, out / "histograms.png", f"Activations and gradients of {run} "
                                              f"at its last evaluation (step {stats['histograms']['step']})"))
    else:
        preset = ckpt["run"].get("preset", "cpu")
        con.print(f"This run recorded no training statistics; a run trained with --stats has them "
                  f"(python -m grader train --preset {preset} --stats --out {run}-stats).")
    for path in written:
        con.print(f"wrote {path}")
    return 0


def attention_maps(root, config) -> list:
    """weights[layer][head] (T, T) numpy arrays, batch 0, from the calls that computed attention."""
    per_layer = {}
    for call in root.walk():
        if call.weights is None:
            continue
        layer = call.layer
        if layer is None or layer in per_layer:
            continue
        w = call.weights[0]  # (H, Tq, Tk)
        per_layer[layer] = [w[h].numpy() for h in range(w.shape[0])]
    return [per_layer[i] for i in sorted(per_layer)]


def topk_table(logits, tokenizer, prompt, k, torch):
    from rich import box
    from rich.table import Table

    with torch.no_grad():
        last = logits[0, -1].detach().float()
        probs = last.softmax(-1)
        top = probs.topk(min(k, probs.numel()))
    shown = prompt if len(prompt) <= 40 else "..." + prompt[-37:]
    table = Table(title=f"The next token after {shown!r}", box=box.SIMPLE_HEAD, title_justify="left",
                  min_width=min(100, len(repr(shown)) + 26))
    table.add_column("rank", justify="right")
    table.add_column("token")
    table.add_column("probability", justify="right")
    table.add_column("logit", justify="right")
    for rank, (p, i) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1):
        table.add_row(str(rank), repr(tokenizer.decode([i])), f"{p * 100:.1f} %", f"{float(last[i]):.2f}")
    entropy = float(-(probs * probs.clamp_min(1e-30).log()).sum())
    table.add_section()
    table.add_row("", "entropy", f"{entropy:.2f} nats", f"uniform: {math.log(probs.numel()):.2f}", style="dim")
    return table


def parameter_rows(model):
    """(name, type, new parameters, note, depth): top-level parts, each block with its parts below it."""
    import torch.nn as nn

    from grader.training.stats import LAYER

    seen, rows = set(), []
    names = {id(p): n for n, p in model.named_parameters()}

    def count(module, mark):
        params = [p for p in module.parameters() if id(p) not in seen]
        unique = {id(p): p for p in params}
        if mark:
            seen.update(unique)
        return sum(p.numel() for p in unique.values())

    def visit(prefix, module):
        for name, child in module.named_children():
            full = prefix + name
            if isinstance(child, (nn.ModuleDict, nn.ModuleList)):
                visit(full + ".", child)
                continue
            total = sum(p.numel() for p in child.parameters())
            if total == 0:
                continue
            shared = [names[id(p)] for p in child.parameters() if id(p) in seen]
            new = count(child, mark=False)
            note = f"shares {', '.join(shared)} (tied)" if shared else ""
            rows.append((full, type(child).__name__, new, note, 0))
            if LAYER.search(full):
                for part, grandchild in child.named_children():
                    n = sum(p.numel() for p in grandchild.parameters() if id(p) not in seen)
                    if n:
                        rows.append((f"{full}.{part}", type(grandchild).__name__, n, "", 1))
            count(child, mark=True)

    visit("", model)
    return rows


def parameter_table(model):
    from rich import box
    from rich.table import Table

    rows = parameter_rows(model)
    total = sum(n for _, _, n, _, depth in rows if depth == 0)
    table = Table(title=f"Parameters per module: {total:,} in all", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("module")
    table.add_column("type")
    table.add_column("parameters", justify="right")
    table.add_column("share", justify="right")
    table.add_column("")
    for name, kind, n, note, depth in rows:
        style = "dim" if depth else ""
        table.add_row(("    " * depth) + name, kind, f"{n:,}", f"{100 * n / total:.1f} %" if total else "", note,
                      style=style)
    return table


if __name__ == "__main__":
    sys.exit(main())
