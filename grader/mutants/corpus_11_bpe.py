"""Mistakes learners make in 11 bpe."""

from . import Mutant

COUNT_PRETOKENS = ("pretoken_counts = Counter(piece for piece in pretokenize(text, special_tokens) "
                   "if piece not in special_tokens)")
BEST = "best = max(pair for pair, count in pair_counts.items() if count == top)"
PAIRS = "        for pair in zip(word, word[1:]):\n            pair_counts[pair] += sign * word_counts[i]"
MERGED_ID = "vocab[len(vocab)] = left + right"
SPLIT_SPECIALS = "parts = regex.split(special_alternation(special_tokens), text) if special_tokens else [text]"
RANKS = 'ranks = [self.ids.get(left + right, float("inf")) for left, right in zip(parts, parts[1:])]'
LOWEST = "best = ranks.index(min(ranks))  # the leftmost pair with the lowest id"
WHOLE = "        if pretoken in self.ids:\n            return [self.ids[pretoken]]\n"
UNSURE = "unsure = len(text) - longest + 1  # from here on a special token may be starting"
CERTAIN = "certain = ordinary[:-2]  # the last two pre-tokens may still grow"

MUTANTS = [
    # --- training
    Mutant(
        "11-pairs-across-pretokens", "bpe",
        "training counts pairs over the whole text, across pre-token boundaries (no pre-tokenization).",
        ((COUNT_PRETOKENS, 'pretoken_counts = Counter(["".join(piece for piece in pretokenize(text, special_tokens) '
                           'if piece not in special_tokens)])'),),
        ("across pre-token",),
    ),
    Mutant(
        "11-ties-to-the-smaller-pair", "bpe",
        "a tie between equally frequent pairs goes to the lexicographically smaller pair.",
        ((BEST, BEST.replace("best = max(", "best = min(")),),
        ("tie", "smaller"),
    ),
    Mutant(
        "11-merge-first-occurrence-only", "bpe",
        "a merge replaces only the first occurrence of the pair in each pre-token.",
        (("            merged.append(word[i] + word[i + 1])\n            i += 2\n",
          "            merged.append(word[i] + word[i + 1])\n            return merged + word[i + 2 :]\n"),),
        ("first occurrence",),
    ),
    Mutant(
        "11-merged-id-off-by-one", "bpe",
        "the merged tokens are numbered from 257: vocab[len(vocab) + 1].",
        ((MERGED_ID, "vocab[len(vocab) + 1] = left + right"),),
        ("off by one",),
    ),
    Mutant(
        "11-pretokens-unweighted", "bpe",
        "each distinct pre-token's pairs are counted once, not as often as the pre-token occurs.",
        ((PAIRS, PAIRS.replace("sign * word_counts[i]", "sign")),),
        ("how often",),
    ),
    Mutant(
        "11-pair-once-per-pretoken", "bpe",
        "a pair is counted once per pre-token (a set of pairs), not at every position.",
        ((PAIRS, PAIRS.replace("zip(word, word[1:])", "set(zip(word, word[1:]))")),),
        ("every position",),
    ),
    Mutant(
        "11-special-tokens-not-in-vocab", "bpe",
        "train_bpe leaves the special tokens out of the vocab.",
        (('    for token in special_tokens:\n        vocab[len(vocab)] = token.encode("utf-8")\n', ""),),
        ("special tokens are missing",),
    ),
    # --- pre-tokenization and special tokens
    Mutant(
        "11-special-tokens-split-by-the-pattern", "bpe",
        "the pattern runs over the whole text, special tokens included, so they are split like ordinary text.",
        ((SPLIT_SPECIALS, "parts = [text]"),),
        ("split by the pattern",),
    ),
    Mutant(
        "11-special-tokens-in-listed-order", "bpe",
        "the special tokens are tried in the order given, so a shorter one cuts into a longer one.",
        (("longest_first = sorted(special_tokens, key=len, reverse=True)", "longest_first = list(special_tokens)"),),
        ("longest",),
    ),
    Mutant(
        "11-pattern-without-whitespace-branch", "bpe",
        "the GPT-2 pattern lacks its \\s+(?!\\S) branch, so a run of spaces keeps its last space.",
        ((r"|\s++$|\s+(?!\S)|\s", r"|\s++$|\s"),),
        ("\\s+(?!\\S)",),
    ),
    Mutant(
        "11-no-surrogate-fix", "bpe",
        "encode passes a str holding surrogates straight to UTF-8, which refuses them.",
        (("for piece in pretokenize(valid_unicode(text), self.special_tokens):",
          "for piece in pretokenize(text, self.special_tokens):"),),
        ("surrogate",),
    ),
    # --- encoding and decoding
    Mutant(
        "11-encode-frequency-order", "bpe",
        "encode merges the most frequent pair of each pre-token first, as training does, not the lowest rank.",
        ((LOWEST, "pairs = list(zip(parts, parts[1:]))\n"
                  "            best = max(range(len(ranks)), key=lambda i: (ranks[i] < float(\"inf\"), "
                  "pairs.count(pairs[i])))"),),
        ("most frequent pair of each pre-token",),
    ),
    Mutant(
        "11-encode-in-merges-list-order", "bpe",
        "encode looks the pair (left, right) up in the merges list (minbpe's way) instead of the concatenation "
        "in the vocab.",
        (("        self.cache = {}  # pre-token -> its ids\n",
          "        self.cache = {}  # pre-token -> its ids\n"
          "        self.merge_rank = {tuple(pair): r for r, pair in enumerate(self.merges)}\n"),
         (RANKS, 'ranks = [self.merge_rank.get((left, right), float("inf")) for left, right in zip(parts, parts[1:])]')),
        ("merges list",),
    ),
    Mutant(
        "11-encode-no-whole-pretoken-lookup", "bpe",
        "encode always starts from single bytes, even when the whole pre-token is a token.",
        ((WHOLE, ""),),
        ("whole pre-token",),
    ),
    Mutant(
        "11-decode-strict", "bpe",
        "decode uses errors=\"strict\", so bytes that are not valid UTF-8 raise.",
        (('.decode("utf-8", errors="replace")', '.decode("utf-8", errors="strict")'),),
        ('errors="replace"',),
    ),
    Mutant(
        "11-gpt2-files-read-as-text", "bpe",
        "from_tiktoken_files encodes GPT-2's written tokens as UTF-8 instead of mapping them back to bytes.",
        (("return bytes(byte_of[char] for char in written)", 'return written.encode("utf-8")'),),
        ("gpt2_bytes_to_unicode",),
    ),
    # --- encode_iterable
    Mutant(
        "11-iterable-encodes-each-chunk", "bpe",
        "encode_iterable holds nothing back: each chunk's pre-tokens are encoded as soon as it is read.",
        ((CERTAIN, "certain = ordinary"),),
        ("on its own",),
    ),
    Mutant(
        "11-iterable-holds-one-pretoken", "bpe",
        "encode_iterable holds back only the last pre-token, so \"we'l\" + \"l\" gives ' and ll.",
        ((CERTAIN, "certain = ordinary[:-1]"),),
        ("only the last pre-token",),
    ),
    Mutant(
        "11-iterable-special-token-across-chunks", "bpe",
        "encode_iterable does not hold back the start of a special token at the end of a chunk.",
        ((UNSURE, "unsure = len(text)"),),
        ("split across two chunks",),
    ),
    Mutant(
        "11-iterable-not-lazy", "bpe",
        "encode_iterable joins all the chunks first, reading an endless iterator forever.",
        (('        pending = ""\n        for chunk in chunks:\n',
          '        chunks = ["".join(chunks)]\n        pending = ""\n        for chunk in chunks:\n'),),
        ("not lazy",),
    ),
]
