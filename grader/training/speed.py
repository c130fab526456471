"""`python -m grader speed`: how much faster each of exercise 14's steps makes your own model train.

    python -m grader speed                       # your GPT (swaps applied), the cpu preset's model
    python -m grader speed --preset gpu --device cuda
    python -m grader speed --impl solutions --vocab-size 50257

A table of tokens/s of one training step — handwritten attention (03), then SDPA (14's
flash_attention), then bf16 autocast, then torch.compile, then the padded vocabulary —
with each step's speed-up, on the CPU and on every CUDA/MPS device present (grader/training/
speedups.py says how each is measured). Your 14's functions are used once exercise 14 passes,
the reference's until then (the header says whose). Compiling takes a while: a line says so.
"""

import sys

from data.shakespeare import DataError
from grader import threads
from grader.project import Parser, UsageError
from grader.training.parts import IMPLS, exit_status, require_parts, second_half
from grader.training.presets import PRESETS, preset
from grader.training.runtime import TrainError, check_device_name

PROGRAM = "python -m grader speed"


def build_parser():
    parser = Parser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu", choices=tuple(PRESETS), help="the model and batch size (default cpu)")
    parser.add_argument("--vocab-size", type=int, default=65,
                        help="65: Tiny Shakespeare's characters (train's default); 50257: GPT-2's BPE")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--device", action="append", help="cpu, cuda, mps (repeatable; default: cpu and every "
                                                          "accelerator present)")
    parser.add_argument("--steps", type=int, default=20,
                        help="timed steps per row, rounded up to whole rounds of 4 (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per row first (default 3)")
    parser.add_argument("--impl", default="exercises", choices=IMPLS, help="exercises (default: yours) or solutions")
    parser.add_argument("--threads", type=threads.flag, default=None, metavar="N",
                        help="torch's threads per operation (default: as train chooses them; 0: torch's own)")
    return parser


def check(args):
    for name in ("vocab_size", "steps"):
        if getattr(args, name) < 1:
            raise TrainError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}.")
    if args.warmup < 1:
        raise TrainError(f"--warmup must be at least 1 (the first step of each row gives its loss), not {args.warmup}.")
    if args.batch_size is not None and args.batch_size < 1:
        raise TrainError(f"--batch-size must be at least 1, not {args.batch_size}.")
    for device in args.device or ():
        check_device_name(device, auto=False)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)

    def command():
        args = build_parser().parse_args(argv)
        return check(args) or run(args)

    return exit_status(command, "solutions" if "solutions" in argv else None, (UsageError, TrainError, DataError))


def run(args) -> int:
    import importlib
    from types import SimpleNamespace

    import torch

    from grader.training.runtime import pick_device
    from grader.training.speedups import measure, table

    chosen = preset(args.preset)
    fields = dict(chosen["model"], vocab_size=args.vocab_size)
    batch_size = args.batch_size or chosen["train"]["batch_size"]
    module = lambda name: importlib.import_module(f"{args.impl}.{name}")  # noqa: E731
    config = module("config").GPTConfig(**fields)
    if args.impl == "exercises":
        require_parts(config, ("model",), "be measured")
    speed, whose = second_half(args.impl, "14")
    parts = SimpleNamespace(GPTConfig=module("config").GPTConfig, GPT=module("gpt").GPT,
                            attention=module("attention"), speed=speed)
    if args.threads is not None:
        threads.apply(args.threads)
    else:  # as train chooses (grader/threads.py): one thread for small work, else the faster of 1 and all cores
        model = parts.GPT(config)
        x = torch.zeros(batch_size, config.block_size, dtype=torch.long)

        def step():
            _, loss = model(x, x)
            loss.backward()
            model.zero_grad(set_to_none=True)

        work = 6 * sum(p.numel() for p in model.parameters()) * batch_size * config.block_size
        threads.apply(threads.pick(work, step))
    devices = [pick_device(d, torch) for d in args.device] if args.device else (
        ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        + (["mps"] if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else []))
    model = "your GPT (exercises/, swaps applied)" if args.impl == "exercises" else "the reference GPT"
    print(f"Measuring {model} with --preset {args.preset}'s shape; exercise 14's functions: {whose}", flush=True)
    for device in devices:
        results = measure(parts, fields, device, args.steps, lambda text: print(f"  [{device}] {text}", flush=True),
                          batch_size=batch_size, warmup=args.warmup)
        shape = (f"{fields['n_layer']} layers x {fields['n_embd']}, {fields['n_head']} heads, context "
                 f"{fields['block_size']}, vocab {args.vocab_size}, batch {batch_size}")
        where = (torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda")
                 else f"{device}, {torch.get_num_threads()} thread{'s' * (torch.get_num_threads() > 1)}")
        print()
        print(table(results, f"{args.preset} ({shape}) on {where}, torch {torch.__version__}; "
                             f"{results[0]['timed']} timed steps per row"))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
