"""How much faster does the KV cache (exercise 10) make generation? Prints, for the reference
(solutions/) on the CPU, the tokens/s of generate() without and with the cache and their ratio.

The model is the `gpu` preset's size (6 layers x 384, 6 heads, context 256; GPT-2 parts) with
Tiny Shakespeare's 65-character vocabulary and random weights (speed does not depend on them);
the prompt has 16 tokens and 240 new ones are generated, greedily, batch 1, so the last forward
sees the whole 256-token context. The two are measured side by side, alternating, --repeat times
each (default 3); the medians are printed. Goal: the cache at least 5x faster. The script also
says whether both produced the same tokens (in float32 a near-tie may legitimately flip one).

    python bench/generate_speed.py [--repeat 3] [--threads N] [--preset gpu-modern]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from grader.training.presets import preset  # noqa: E402
from solutions.config import GPTConfig  # noqa: E402
from solutions.generate import generate  # noqa: E402
from solutions.gpt import GPT  # noqa: E402

PROMPT, NEW_TOKENS, VOCAB = 16, 240, 65


def timed(model, idx, use_cache):
    start = time.perf_counter()
    out = generate(model, idx, NEW_TOKENS, temperature=0.0, use_cache=use_cache)
    return time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, alternating (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--preset", default="gpu", help="whose model size (default gpu)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    fields = {k: v for k, v in preset(args.preset)["model"].items() if k != "dropout"}
    config = GPTConfig(vocab_size=VOCAB, dropout=0.0, **fields)
    torch.manual_seed(0)
    model = GPT(config).eval()
    idx = torch.randint(VOCAB, (1, PROMPT), generator=torch.Generator().manual_seed(1))
    timed(model, idx[:, :4], False)  # warm up both paths (first calls allocate)
    generate(model, idx[:, :4], 8, temperature=0.0, use_cache=True)
    times = {False: [], True: []}
    outputs = {}
    for _ in range(args.repeat):
        for use_cache in (False, True):
            seconds, outputs[use_cache] = timed(model, idx, use_cache)
            times[use_cache].append(seconds)
    without, with_cache = statistics.median(times[False]), statistics.median(times[True])
    print(f"{args.preset} model size: {config.n_layer} layers x {config.n_embd}, {config.n_head} heads, context "
          f"{config.block_size}, vocab {VOCAB}; {model.num_params():,} parameters; reference generate on the CPU, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"prompt {PROMPT} tokens, {NEW_TOKENS} new tokens, greedy, batch 1; median of {args.repeat} runs each")
    print(f"without the cache  {NEW_TOKENS / without:8.1f} tokens/s   ({without:.2f} s)")
    print(f"with the cache     {NEW_TOKENS / with_cache:8.1f} tokens/s   ({with_cache:.2f} s)")
    ratio = without / with_cache
    print(f"ratio              {ratio:8.1f}x   (goal: at least 5x){'' if ratio >= 5 else '  BELOW THE GOAL'}")
    same = torch.equal(outputs[False], outputs[True])
    print(f"same tokens: {'yes' if same else 'no (float32 near-ties can flip a token; the tests compare in float64)'}")


if __name__ == "__main__":
    main()
