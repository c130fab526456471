"""`python -m grader sample`: print text from a trained checkpoint, with your generate (09).

    python -m grader sample --out runs/cpu --prompt "ROMEO:" --max-new-tokens 500 --temperature 0.8 --top-k 40

The text appears token by token as the model writes it.
"""

import argparse
import sys
from pathlib import Path

from data.shakespeare import DataError
from grader.training.checkpoint import FILENAME, CheckpointError
from grader.training.parts import IMPLS, exit_status, load_parts

PROGRAM = "python -m grader sample"


def build_parser():
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Print text from a checkpoint written by `python -m grader train`.")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    return exit_status(lambda: run(args), args.impl, (DataError, CheckpointError, ValueError))


def run(args) -> int:
    import torch

    from data.tokenizers import from_state
    from grader.training.runtime import TrainError, pick_device
    from grader.training import checkpoint

    if args.max_new_tokens < 0 or args.num_samples < 1:
        raise ValueError("--max-new-tokens must be at least 0 and --num-samples at least 1.")
    if args.temperature < 0:
        raise ValueError("--temperature cannot be negative (0 is greedy).")
    ckpt = checkpoint.load(Path(args.out) / FILENAME)
    impl = args.impl or ckpt["run"]["impl"]
    parts = load_parts(impl)
    try:
        config = parts.GPTConfig(**ckpt["config"])
        device = pick_device(args.device, torch)
    except (TypeError, TrainError) as error:
        raise ValueError(str(error)) from None
    tokenizer = from_state(ckpt["tokenizer"])
    model = parts.GPT(config)
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as error:
        raise ValueError(f"The checkpoint in {args.out} does not fit {impl}'s model "
                         f"({str(error).splitlines()[0]}).") from None
    model.to(device).eval()

    prompt = tokenizer.encode(args.prompt) if args.prompt else []
    if not prompt:
        newline = tokenizer.encode("\n") if "\n" in getattr(tokenizer, "chars", "\n") else []
        prompt = newline or [0]
    generator = torch.Generator(device=device)
    if args.seed is not None:
        generator.manual_seed(args.seed)
    else:
        generator.seed()
    for i in range(args.num_samples):
        if i:
            print("\n---------------")
        idx = torch.tensor([prompt], dtype=torch.long, device=device)
        sys.stdout.write(args.prompt)
        stream(parts, model, idx, tokenizer, args, generator)
        sys.stdout.write("\n")
        sys.stdout.flush()
    return 0


def stream(parts, model, idx, tokenizer, args, generator):
    """Generate one token at a time (the same draws as one long generate call) and print each as it comes."""
    start, printed = idx.size(1), 0
    for _ in range(args.max_new_tokens):
        idx = parts.generate(model, idx, 1, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                             generator=generator)
        text = tokenizer.decode(idx[0, start:].tolist())
        ready = len(text) - 1 if text.endswith("\ufffd") else len(text)  # a multi-byte character in progress
        if ready > printed:
            sys.stdout.write(text[printed:ready])
            sys.stdout.flush()
            printed = ready
    text = tokenizer.decode(idx[0, start:].tolist())
    sys.stdout.write(text[printed:])


if __name__ == "__main__":
    sys.exit(main())
