"""`python -m grader sample`: print text from a trained checkpoint, with your generate (09).

    python -m grader sample --out runs/cpu --prompt "ROMEO:" --max-new-tokens 500 --temperature 0.8 --top-k 40

The text appears as the model writes it (16 tokens at a time), then a line with the tokens/s.
With exercise 10 passed, generation uses your KV cache (the reference's with --impl solutions).
"""

import importlib
import math
import sys
import time
from pathlib import Path

from data.shakespeare import DataError
from grader import threads
from grader.project import Parser
from grader.training.checkpoint import FILENAME, CheckpointError
from grader.training.log import printable
from grader.training.parts import (IMPLS, exit_status, load_parts, require_parts, second_half, swaps_of_run,
                                   why_not_yours)
from grader.training.runtime import check_device_name

PROGRAM = "python -m grader sample"


def build_parser():
    parser = Parser(prog=PROGRAM, description="Print text from a checkpoint written by `python -m grader train`.")
    parser.add_argument("--out", default="runs/cpu", help="the training run's directory (default runs/cpu)")
    parser.add_argument("--prompt", default="", help="the text to continue (default: a new line)")
    parser.add_argument("--max-new-tokens", type=int, default=500)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 is greedy; below 1 sharper, above 1 wilder")
    parser.add_argument("--top-k", type=int, default=None, help="sample only from the k most likely tokens")
    parser.add_argument("--top-p", type=float, default=None, help="sample only from the most likely tokens covering p")
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None, help="for reproducible samples")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    parser.add_argument("--impl", default=None, choices=IMPLS,
                        help="whose model and generate: the one the checkpoint was trained with (default), "
                             "exercises (yours) or solutions")
    parser.add_argument("--threads", type=threads.flag, default=None, metavar="N",
                        help="torch's threads per operation (default: 1 for small models, else the faster of 1 and "
                             "all cores, measured; 0: torch's default)")
    return parser



def check(args) -> None:
    """ValueError with one sentence for a setting that cannot work (before torch is imported)."""
    if args.max_new_tokens < 0:
        raise ValueError(f"--max-new-tokens must be at least 0, not {args.max_new_tokens}.")
    if args.num_samples < 1:
        raise ValueError(f"--num-samples must be at least 1, not {args.num_samples}.")
    if not (args.temperature >= 0 and math.isfinite(args.temperature)):
        raise ValueError(f"--temperature must be a number >= 0 (0 is greedy), not {args.temperature}.")
    if args.top_k is not None and args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1 (leave it out to keep every token), not {args.top_k}.")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p must be above 0 and at most 1 (the probability mass kept), not {args.top_p}.")
    check_device_name(args.device)  # a TrainError, which is a ValueError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)

    def command():
        args = build_parser().parse_args(argv)
        return check(args) or run(args)

    return exit_status(command, "solutions" if "solutions" in argv else None, (DataError, CheckpointError, ValueError))


def run(args) -> int:
    import torch

    from data.tokenizers import from_state
    from grader.training import checkpoint
    from grader.training.runtime import TrainError, pick_device

    ckpt = checkpoint.load(Path(args.out) / FILENAME)
    impl = args.impl or ckpt["run"]["impl"]
    note = swaps_of_run(ckpt, impl)  # before `exercises` is imported
    if note:
        print(note, file=sys.stderr)
    GPTConfig = importlib.import_module(f"{impl}.config").GPTConfig
    try:
        config = GPTConfig(**ckpt["config"])
        device = pick_device(args.device, torch)
    except (TypeError, TrainError) as error:
        raise ValueError(str(error)) from None
    if impl == "exercises":
        require_parts(config, ("model", "generate"), "write")
    parts = load_parts(impl)
    tokenizer = from_state(ckpt["tokenizer"])
    model = parts.GPT(config)
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as error:
        raise ValueError(f"The checkpoint in {args.out} does not fit {impl}'s model "
                         f"({str(error).splitlines()[0]}).") from None
    model.to(device).eval()
    if args.threads is not None:
        threads.apply(args.threads)
    else:
        context = torch.zeros(1, config.block_size, dtype=torch.long, device=device)
        flops = 2 * sum(p.numel() for p in model.parameters()) * config.block_size

        def forward():
            with torch.no_grad():
                model(context)

        threads.apply(threads.pick(flops, forward, device))

    prompt = tokenizer.encode(args.prompt) if args.prompt else []
    if not prompt:
        newline = tokenizer.encode("\n") if "\n" in getattr(tokenizer, "chars", "\n") else []
        prompt = newline or [0]
    generator = torch.Generator(device=device)
    if args.seed is not None:
        generator.manual_seed(args.seed)
    else:
        generator.seed()
    use_cache, how = cache_choice(impl)
    started, written = time.perf_counter(), 0
    for i in range(args.num_samples):
        if i:
            print("\n---------------")
        idx = torch.tensor([prompt], dtype=torch.long, device=device)
        sys.stdout.write(args.prompt)
        stream(parts, model, idx, tokenizer, args, generator, use_cache)
        sys.stdout.write("\n")
        sys.stdout.flush()
        written += args.max_new_tokens
    seconds = time.perf_counter() - started
    if written:
        print(f"({written} tokens in {seconds:.1f} s: {written / seconds:,.0f} tokens/s, {how})", file=sys.stderr)
    return 0


def cache_choice(impl) -> tuple[bool, str]:
    """(use_cache, a phrase): exercise 10's KV cache once 10 passes (the reference's with --impl solutions)."""
    module, whose = second_half(impl, "10")
    if impl == "solutions":
        return True, "with the reference's KV cache"
    if module.__name__.startswith("exercises"):
        return True, "with your KV cache (10 kv_cache passes)"
    return False, f"without a KV cache: exercise 10 makes this faster ({why_not_yours(whose)})"


CHUNK = 16  # tokens per generate call: printed as they come, and a cache is filled once per chunk


def stream(parts, model, idx, tokenizer, args, generator, use_cache=False):
    """Generate in chunks of CHUNK tokens (the same draws as one long generate call) and print as they come."""
    start, printed, left = idx.size(1), 0, args.max_new_tokens
    while left > 0:
        n, left = min(CHUNK, left), left - min(CHUNK, left)
        options = dict(use_cache=True) if use_cache else {}
        idx = parts.generate(model, idx, n, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                             generator=generator, **options)
        text = tokenizer.decode(idx[0, start:].tolist())
        ready = len(text) - 1 if text.endswith("\ufffd") else len(text)  # a multi-byte character in progress
        if ready > printed:
            sys.stdout.write(printable(text[printed:ready]))
            sys.stdout.flush()
            printed = ready
    text = tokenizer.decode(idx[0, start:].tolist())
    sys.stdout.write(printable(text[printed:]))


if __name__ == "__main__":
    sys.exit(main())
