"""`python -m grader trace`: one forward pass of your GPT on a short prompt, as a call tree.

    python -m grader trace                         # yours (swaps applied), --preset tiny, prompt "ROMEO:"
    python -m grader trace --backward              # and every parameter's gradient norm after one backward pass
    python -m grader trace --impl solutions --preset cpu-modern --prompt "To be, or not"

Every module and exercise function in the order they run, with the shapes and dtypes that went in
and came out and the mean and std of the output; for attention, the std of the scores before the
softmax and the entropy of the attention weights per head. It stops at the first TODO it reaches
(the exercise, file, line and the TODO's text: the next thing to write) or at the first error (with
the shapes that went in), and names the other unfinished parts the forward pass needs.
Exit status: 0 when the pass ran through, 1 when it stopped at a TODO or an error, 2 for bad usage.
"""

import argparse
import dataclasses
import math
import sys

from data.shakespeare import DataError

PROGRAM = "python -m grader trace"
DEFAULT_PROMPT = "ROMEO:"


class UsageError(ValueError):
    """Bad usage, in one sentence (exit 2)."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`).")


def build_parser() -> argparse.ArgumentParser:
    from grader.training.presets import PRESETS
    from grader.training.train import _add_field_flag, config_fields

    parser = Parser(prog=PROGRAM, description="Trace one forward pass of your GPT: every call, its shapes and "
                    "statistics, and where it stops.", epilog="Model flags (--n-layer, --pos-emb rope, ...) "
                    "override the preset's values, as in `python -m grader train`.")
    parser.add_argument("--impl", default="exercises", choices=("exercises", "solutions"),
                        help="exercises (default: yours, swaps applied) or solutions (the reference)")
    parser.add_argument("--preset", default="tiny", metavar="NAME",
                        help=f"the model's shape (default tiny): {', '.join(PRESETS)}")
    parser.add_argument("--prompt", default=None, help=f"the text to run (default {DEFAULT_PROMPT!r})")
    parser.add_argument("--backward", action="store_true",
                        help="also run one backward pass and print every parameter's gradient norm")
    parser.add_argument("--data", default="shakespeare",
                        help="whose characters make the vocabulary: shakespeare (default), synthetic or a text file")
    parser.add_argument("--seed", type=int, default=0, help="the seed of the initial weights (default 0)")
    model = parser.add_argument_group("model (GPTConfig fields)")
    for f in config_fields():
        _add_field_flag(model, f, None)
    return parser


def vocabulary(source: str):
    """The character tokenizer `train --data SOURCE` would build, and a description, without torch."""
    from data import shakespeare
    from data.tokenizers import CharTokenizer

    if source == "shakespeare":
        return CharTokenizer.from_text(shakespeare.read_text(shakespeare.path())), "Tiny Shakespeare's characters"
    if source == "synthetic" or source.startswith("synthetic:"):
        from data import synthetic

        return CharTokenizer(synthetic.SYMBOLS), "the synthetic corpus's characters"
    return CharTokenizer.from_text(shakespeare.read_text(source)), f"the characters of {source}"


def prepare(argv):
    """(args, config, tokenizer, ids, description): everything checked, before torch is imported."""
    from grader.training.presets import preset

    parser = build_parser()
    args = parser.parse_args(argv)
    from grader.training.train import config_fields

    fields = {f.name for f in config_fields()}
    model_flags = {k: v for k, v in vars(args).items() if k in fields}
    try:
        chosen = preset(args.preset)
    except ValueError as error:
        raise UsageError(str(error)) from None
    tokenizer, about = vocabulary(args.data)
    prompt = DEFAULT_PROMPT if args.prompt is None else args.prompt
    if args.prompt is None and not set(prompt) <= set(tokenizer.chars):
        prompt = tokenizer.chars[:8]
    if not prompt:
        raise UsageError("--prompt is empty: give at least one character.")
    try:
        ids = tokenizer.encode(prompt)
    except DataError:
        unknown = "".join(sorted(set(prompt) - set(tokenizer.chars)))
        raise UsageError(f"The prompt has {len(unknown)} character(s) that {about} lack ({unknown!r}): a "
                         f"character model knows only those; change the prompt or --data.") from None
    from solutions.config import GPTConfig  # given, the same in exercises/; imports no torch

    try:
        config = GPTConfig(**{**chosen["model"], **model_flags, "vocab_size": tokenizer.vocab_size})
    except (TypeError, ValueError) as error:
        raise UsageError(f"The model configuration does not work: {error}") from None
    if len(ids) > config.block_size:
        raise UsageError(f"The prompt has {len(ids)} tokens but the model's context (block_size) is "
                         f"{config.block_size}: shorten it or pass --block-size {len(ids)}.")
    config_dict = dataclasses.asdict(config)
    return args, config_dict, tokenizer, ids, prompt


# --- drawing --------------------------------------------------------------------------------------------


def number(v) -> str:
    if v is None:
        return "?"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def values_text(values, stats=True) -> str:
    parts = []
    for v in values:
        text = f"{v.name} {v.text}" if v.name else v.text
        if v.scalar is not None:
            text += f" = {number(v.scalar)}"
        elif v.mean is not None and stats:
            text += f", mean {number(v.mean)} std {number(v.std)}"
        parts.append(text)
    return "; ".join(parts)


OWNER_STYLE = {"yours": "", "swapped": "cyan", "reference": "", "torch": "dim"}


def call_label(call, parent_name: str, unicode: bool):
    from rich.text import Text

    arrow = "→" if unicode else "->"
    text = Text()
    if call.kind == "module":
        name = call.name
        if parent_name and name.startswith(parent_name + "."):
            name = name[len(parent_name) + 1:]
        what = call.what
        if what.split(" (")[0] == name:  # the model itself: "GPT (06 gpt)", not "GPT  GPT (06 gpt)"
            name, what = "", what
        text.append(name, style="bold")
        text.append(f"  {what}" if name else what, style="dim" if call.owner == "torch" else "bold" if not name else "")
    else:
        text.append(f"{call.name}()", style="bold magenta")
        if call.what:
            text.append(f"  {call.what}")
    if call.owner == "swapped":
        text.append("  [reference]", style="cyan")
    if call.inputs:
        text.append(f"  {values_text(call.inputs, stats=False)}", style="dim")
    if call.done:
        outputs = call.outputs
        if call.parent is not None and call.parent.kind == "root" and len(outputs) == 2 and outputs[0].name == "[0]":
            outputs = [dataclasses.replace(outputs[0], name="logits"), dataclasses.replace(outputs[1], name="loss")]
        text.append(f"  {arrow} ")
        text.append(values_text(outputs) or "None")
    elif call.error is not None:
        cross = "✗" if unicode else "x"
        text.append(f"  {cross} {type(call.error).__name__}", style="bold red")
    else:
        text.append("  (did not return: the error came from inside)", style="red")
    return text


def attention_text(att: dict):
    from rich.text import Text

    text = Text("attention: ", style="yellow")
    if att.get("scores_std") is not None:
        text.append(f"scores std {number(att['scores_std'])} before the softmax")
        text.append(f" (max |score| {number(att.get('scores_absmax'))}); ")
    heads = ", ".join(number(e) for e in att["entropy"])
    text.append(f"entropy per head {heads} nats (uniform over the visible keys: {number(att['uniform_entropy'])})")
    if att["source"] != "your softmax":
        text.append(f" [{att['source']}]", style="dim")
    if not att.get("finite", True):
        text.append("  NaN/inf in the weights!", style="bold red")
    return text


def add_calls(tree, call, parent_name, unicode):
    for child in call.children:
        node = tree.add(call_label(child, parent_name, unicode))
        if child.attention:
            node.add(attention_text(child.attention))
        add_calls(node, child, child.name if child.kind == "module" else parent_name, unicode)


def stop_text(outcome, unicode: bool):
    """The lines that say where the run stopped: the TODO (next to write) or the error."""
    from rich.text import Text

    error, lines = outcome.error, []
    where = outcome.frames[-1] if outcome.frames else None
    if outcome.todo is not None:
        todo = outcome.todo
        place = f"{todo['file']}, line {todo['line']}" if todo.get("line") else todo["file"]
        function = f" ({where.function})" if where is not None else ""
        lines.append(Text(f"Next to write: {todo['label']}{function} — {place}", style="bold yellow"))
        for line in todo["text"]:
            lines.append(Text("    " + line, style="yellow"))
        lines.append(Text(f"The {phase_words(outcome.phase)} stopped at the first TODO it reached. Write it (pytest "
                          f"tests/test_{todo['id']}_{todo['label'].split()[1]}.py), or let the reference stand in: "
                          f"python -m grader swap {todo['id']}"))
        return lines
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    head = f"The {phase_words(outcome.phase)} stopped at an error: {type(error).__name__}: {message}"
    lines.append(Text(head, style="bold red"))
    if where is not None:
        lines.append(Text(f"    raised in {where.function}, {where.file}, line {where.line}"))
    if outcome.failed is not None and outcome.failed.inputs:
        into = ""
        module = outcome.failed.module
        if module is not None and not list(module.children()) and module.extra_repr():
            into = f", into {outcome.failed.name} = {type(module).__name__}({module.extra_repr()})"
        lines.append(Text(f"    what went in: {values_text(outcome.failed.inputs)}{into}"))
    if len(outcome.frames) > 1:
        arrow = " → " if unicode else " -> "
        lines.append(Text("    calls: " + arrow.join(f"{f.function} ({f.file}:{f.line})" for f in outcome.frames),
                          style="dim"))
    return lines


def phase_words(phase: str) -> str:
    return {"import": "import of your modules", "build": "building of GPT(config)",
            "backward": "backward pass"}.get(phase, "forward pass")


def gradient_table(outcome, unicode: bool):
    from rich import box
    from rich.table import Table

    table = Table(title="Gradients after one backward pass", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("parameter")
    table.add_column("shape")
    table.add_column("grad norm", justify="right")
    table.add_column("")
    for name, shape, norm, others in outcome.grads:
        note, style = "", ""
        if norm is None:
            note, style = "no gradient: nothing that reached the loss used it", "bold red"
        elif norm == 0:
            note, style = "gradient exactly 0", "yellow"
        elif not math.isfinite(norm):
            note, style = "not finite", "bold red"
        if others:
            note = (note + "; " if note else "") + "also " + ", ".join(others) + " (tied)"
        table.add_row(name, str(shape), "—" if norm is None else number(norm), note, style=style)
    return table


def render(outcome, args, config, prompt, n_tokens, con, unfinished: str | None) -> None:
    """The tree, then where it stopped (or the loss), the gradients and the unfinished parts: one printout."""
    from rich.console import Group
    from rich.text import Text
    from rich.tree import Tree

    from grader.screens import _unicode

    unicode = _unicode(con)
    whose = "your GPT (exercises/, swaps applied)" if args.impl == "exercises" else "the reference GPT (solutions/)"
    c = config
    head = Text(f"Trace of {whose}", style="bold")
    head.append(f": --preset {args.preset}, {c['n_layer']} layers x {c['n_embd']}, {c['n_head']} heads, "
                f"{c['norm']}, {c['pos_emb']}, {c['mlp']}; prompt {prompt!r} ({n_tokens} tokens, vocabulary "
                f"{c['vocab_size']})", style="")
    tree = Tree(head)
    if outcome.model is not None:
        n = sum(p.numel() for p in outcome.model.parameters())
        tree.add(Text(f"GPT(config): built, {n:,} parameters", style="green"))
    elif outcome.phase == "build":
        node = tree.add(Text("GPT(config): building the model failed", style="red"))
        for f in outcome.frames:
            node = node.add(Text(f"{f.function}  ({f.file}, line {f.line})"))
    elif outcome.phase == "import":
        tree.add(Text("import of your modules failed", style="red"))
    add_calls(tree, outcome.root, "", unicode)
    parts = [tree]
    if any(call.owner == "swapped" for call in outcome.root.walk()):
        parts.append(Text("[reference]: the reference's code ran there, not yours: a swapped exercise (python -m "
                          "grader swaps), or a module that a swapped one imports (it brings the reference's own).",
                          style="cyan"))
    if outcome.stopped:
        parts.extend(stop_text(outcome, unicode))
    else:
        loss = outcome.loss
        text = Text("The forward pass ran through", style="green")
        if loss is not None:
            floor = math.log(c["vocab_size"])
            text.append(f": loss {number(float(loss.detach()))} (a fresh model guesses about uniformly: "
                        f"ln {c['vocab_size']} = {floor:.3g})")
        parts.append(text)
    if outcome.grads:
        parts.append(gradient_table(outcome, unicode))
        missing = [name for name, _, norm, _ in outcome.grads if norm is None]
        if missing:
            parts.append(Text(f"{len(missing)} parameter(s) got no gradient: the loss does not depend on them. A "
                              f"layer that is built but never called, or an output that was .detach()ed, does this.",
                              style="red"))
    if unfinished:
        parts.append(Text(unfinished, style="yellow"))
    con.print(Group(*parts))


# --- the command ----------------------------------------------------------------------------------------


def main(argv=None, console=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, config_dict, tokenizer, ids, prompt = prepare(argv)
    except SystemExit as done:  # --help
        return int(done.code or 0)
    except (UsageError, DataError) as error:
        print(error, file=sys.stderr)
        return 2
    return run(args, config_dict, ids, prompt, console)


def run(args, config_dict, ids, prompt, console=None) -> int:
    import importlib

    import torch

    from grader import screens
    from grader.inside import tracer
    from grader.training.parts import UnfinishedParts, require_parts

    con = console or screens.console()
    con.soft_wrap = False  # long lines wrap inside the tree
    GPTConfig = importlib.import_module(f"{args.impl}.config").GPTConfig
    config = GPTConfig(**config_dict)
    idx = torch.tensor([ids], dtype=torch.long)
    targets = torch.tensor([ids[1:] + [-1]], dtype=torch.long)  # the next token; the last has none (ignored)
    with tracer.one_thread(torch):
        outcome = tracer.run(config, idx, targets, impl=args.impl, backward=args.backward, seed=args.seed)
        unfinished = None
        if outcome.stopped and args.impl == "exercises":
            needs = ("model",)
            try:
                require_parts(config, needs, "run a whole forward and backward pass")
            except UnfinishedParts as error:
                unfinished = str(error)
    render(outcome, args, config_dict, prompt, len(ids), con, unfinished)
    return 1 if outcome.stopped else 0


if __name__ == "__main__":
    sys.exit(main())
