"""`python -m grader train`: train your own GPT (the parts you wrote) and watch it learn.

    python -m grader train                              # Tiny Shakespeare, characters, --preset cpu (~20 s on 2 cores)
    python -m grader train --impl solutions             # the reference implementation instead of yours
    python -m grader train --preset gpu                 # nanoGPT's shakespeare-char on a GPU
    python -m grader train --data synthetic --preset tiny
    python -m grader train --resume --out runs/cpu      # continue exactly where it stopped
    torchrun --nproc_per_node=2 -m grader train ...     # distributed data parallel

The loop is nanoGPT's train.py, built from your parts: GPT (06), configure_optimizers
and lr_at (07), get_batch and train_step (08), estimate_loss (08) and generate (09).
It writes to --out: ckpt.pt (everything --resume needs), metrics.json, samples.txt, loss.png.
"""

import argparse
import dataclasses
import sys
import types
import typing

from data.shakespeare import DataError
from grader import threads
from data.tokenizers import TOKENIZERS
from grader.project import Parser, UsageError
from grader.training.checkpoint import CheckpointError
from grader.training.parts import IMPLS, exit_status
from grader.training.presets import PRESETS, SETTING_NAMES, Settings
from grader.training.runtime import TrainError, check_device_name

PROGRAM = "python -m grader train"


# --- the command line ---------------------------------------------------------------------------------------


def config_fields():
    from solutions.config import GPTConfig  # the contract's fields (config.py is given, the same in exercises/)

    return [f for f in dataclasses.fields(GPTConfig) if f.name != "vocab_size"]  # vocab_size comes from the data


def _parse_value(kind, optional):
    def parse(text):
        if optional and text.lower() == "none":
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None

    return parse


def _field_type(field):
    """(base type, optional) of a dataclass field annotated like `int`, `float | None`, `bool`."""
    args = [a for a in typing.get_args(field.type) if a is not type(None)]
    base = args[0] if args else field.type
    optional = type(None) in typing.get_args(field.type)
    return base, optional


def _add_field_flag(group, field, help_text):
    names = [f"--{field.name.replace('_', '-')}"]
    if "_" in field.name:
        names.append(f"--{field.name}")  # nanoGPT's spelling works too
    base, optional = _field_type(field)
    if base is bool:
        group.add_argument(*names, dest=field.name, action=argparse.BooleanOptionalAction,
                           default=argparse.SUPPRESS, help=help_text)
    else:
        group.add_argument(*names, dest=field.name, type=_parse_value(base, optional), default=argparse.SUPPRESS,
                           metavar=base.__name__.upper() + ("|none" if optional else ""), help=help_text)


def build_parser() -> argparse.ArgumentParser:
    presets = "; ".join(f"{name}: {p['about']}" for name, p in PRESETS.items())
    parser = Parser(
        prog=PROGRAM, description="Train your GPT (your exercises, swaps applied) and watch it learn.",
        epilog="Model and training flags override the preset's values. With --resume, everything not given "
               "comes from the checkpoint.",
    )
    parser.add_argument("--data", default=argparse.SUPPRESS,
                        help="shakespeare (default), synthetic (or synthetic:N tokens), or the path of a UTF-8 text file")
    parser.add_argument("--tokenizer", default=argparse.SUPPRESS, choices=TOKENIZERS,
                        help="char (default: one token per character), gpt2 (tiktoken's GPT-2 BPE) or bpe (a "
                             "byte-level BPE trained on the training split with exercise 11's train_bpe)")
    parser.add_argument("--vocab-size", type=int, default=None, metavar="N",
                        help="with --tokenizer bpe: the vocabulary to train (default 512)")
    parser.add_argument("--preset", default=argparse.SUPPRESS, metavar="NAME", help=f"default cpu. {presets}")
    parser.add_argument("--impl", default=argparse.SUPPRESS, choices=IMPLS,
                        help="exercises (default: yours, swaps applied) or solutions (the reference)")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                        help="auto: bfloat16 autocast on CUDA GPUs that support it, else float32")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (needs a C++ compiler on CPU)")
    parser.add_argument("--out", default=None, help="output directory (default runs/<preset>)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run in an --out that holds one, replacing it (refused without this)")
    parser.add_argument("--stats", action="store_true",
                        help="at every evaluation, record per layer the activations, gradient norms and update-to-data "
                             "ratios into metrics.json (plotted by `python -m grader inspect`)")
    parser.add_argument("--threads", type=threads.flag, default=argparse.SUPPRESS, metavar="N",
                        help="torch's threads per operation (default: 1 for small models, else the faster of 1 and "
                             "all cores, measured at the start; a resumed run keeps its count; 0: torch's default)")
    model = parser.add_argument_group("model (GPTConfig fields)")
    for field in config_fields():
        _add_field_flag(model, field, None)
    training = parser.add_argument_group("training")
    for field in dataclasses.fields(Settings):
        _add_field_flag(training, field, None)
    return parser


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.vocab_size is not None and getattr(args, "tokenizer", None) != "bpe":
        parser.error("--vocab-size goes with --tokenizer bpe (char and gpt2 have fixed vocabularies)")
    if getattr(args, "tokenizer", None) == "bpe":
        args.vocab_size = args.vocab_size or 512
        if args.vocab_size < 257:
            parser.error(f"--vocab-size must be at least 257 (256 bytes and <|endoftext|>), not {args.vocab_size}")
    check_device_name(args.device)  # before the data is read
    explicit = vars(args)
    model_flags = {f.name: explicit.pop(f.name) for f in config_fields() if f.name in explicit}
    setting_flags = {name: explicit.pop(name) for name in SETTING_NAMES if name in explicit}
    return types.SimpleNamespace(**explicit), model_flags, setting_flags


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)

    def command():
        args, model_flags, setting_flags = parse_args(argv)
        from grader.training.run import Run

        return Run(args, model_flags, setting_flags).start()

    impl = "solutions" if "solutions" in argv else None
    return exit_status(command, impl, (UsageError, TrainError, DataError, CheckpointError))



if __name__ == "__main__":
    sys.exit(main())
