"""How fast is 11 bpe's reference (solutions/bpe.py, or --impl exercises for your own)? Prints, for this machine:

- train_bpe on Tiny Shakespeare (1.1 MB) to vocab 512 and to vocab 2048 (targets: <= 2 s and <= 10 s on
  2 cores: `python -m grader train --tokenizer bpe` trains with it before the model's first step);
- encoding Tiny Shakespeare with GPT-2's merges (Tokenizer.from_tiktoken_files, a fresh cache; target
  <= 3 s), with tiktoken's time for the same text measured in the same run beside it, and whether
  the ids agree; also encode_iterable over the file's lines;
- loading GPT-2's files.

Each figure is the best of --repeat runs, wall-clock and (in brackets) CPU time of this process.
The code is single-threaded, so on a quiet machine the two agree; on a busy shared one the wall-clock
time grows with the load and the CPU time much less, so the targets are judged on the CPU time.
Compare the ratios printed in one run, not figures from different runs.

    python bench/bpe_speed.py [--repeat 3] [--impl exercises]
"""

import argparse
import importlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from data import shakespeare, tokenizers  # noqa: E402


def best_of(repeat, fn):
    """(best wall-clock seconds, best CPU seconds of this process, fn's result)."""
    times, cpu, result = [], [], None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(times), min(cpu), result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--impl", default="solutions", choices=("solutions", "exercises"))
    args = parser.parse_args(argv)
    bpe = importlib.import_module(f"{args.impl}.bpe")
    text = shakespeare.path(download_missing=False).read_text(encoding="utf-8")
    files = tokenizers.gpt2_files()
    if files is None:
        print("GPT-2's files are not on this machine ($KATA_DATA_DIR/gpt2-bpe/ or tiktoken's cache).")
        return 1
    print(f"{args.impl}/bpe.py on Tiny Shakespeare ({len(text):,} characters), best of {args.repeat}:")

    for vocab_size, target in ((512, 2.0), (2048, 10.0)):
        seconds, cpu, (vocab, merges) = best_of(args.repeat, lambda: bpe.train_bpe(text, vocab_size, ["<|endoftext|>"]))
        verdict = "ok" if cpu <= target else "SLOW"
        print(f"  train_bpe to {vocab_size:>5}: {seconds:6.2f} s [{cpu:5.2f}]  (target <= {target:g} s: {verdict}; "
              f"{len(merges)} merges)")

    load_s, load_cpu, _ = best_of(args.repeat, lambda: bpe.Tokenizer.from_tiktoken_files(*map(str, files)))
    print(f"  from_tiktoken_files:   {load_s:6.2f} s [{load_cpu:5.2f}]")

    def fresh_encode():  # a new Tokenizer each time: its cache starts empty
        return bpe.Tokenizer.from_tiktoken_files(*map(str, files)).encode(text)

    encode_s, encode_cpu, ids = best_of(args.repeat, fresh_encode)
    encode_s, encode_cpu = encode_s - load_s, encode_cpu - load_cpu
    enc = tokenizers.gpt2_encoding()
    tiktoken_s, tiktoken_cpu, expected = best_of(args.repeat, lambda: enc.encode(text, allowed_special="all"))
    verdict = "ok" if encode_cpu <= 3.0 else "SLOW"
    print(f"  encode (GPT-2 merges): {encode_s:6.2f} s [{encode_cpu:5.2f}]  (target <= 3 s: {verdict}; "
          f"{len(ids):,} tokens, {len(text) / encode_s / 1e6:.2f} MB/s)")
    print(f"  tiktoken encode:       {tiktoken_s:6.2f} s [{tiktoken_cpu:5.2f}]  ({len(text) / tiktoken_s / 1e6:.2f} MB/s;"
          f" ours takes {encode_s / tiktoken_s:.1f}x its time); same ids: {ids == expected}")

    lines = text.splitlines(keepends=True)
    tok = bpe.Tokenizer.from_tiktoken_files(*map(str, files))
    iterable_s, iterable_cpu, streamed = best_of(1, lambda: list(tok.encode_iterable(lines)))
    print(f"  encode_iterable(lines): {iterable_s:5.2f} s [{iterable_cpu:5.2f}]  (the cache warm; {len(lines):,} "
          f"chunks); same ids: {streamed == expected}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
