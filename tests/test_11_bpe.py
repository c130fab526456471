"""11 bpe: train_bpe and Tokenizer (encode, decode, encode_iterable, from_tiktoken_files) (exercises/bpe.py).

The oracle is tiktoken. GPT-2's tokenizer built with Tokenizer.from_tiktoken_files must encode
every text here exactly as tiktoken's "gpt2" encoding (allowed_special="all"), and a Tokenizer
built from a trained vocabulary exactly as a tiktoken.Encoding built from that vocabulary (with
special tokens that do not overlap: tiktoken takes the first alternative, not the longest).
Training is compared merge for merge with the reference (solutions/bpe.py) on small corpora
whose ties and repeats separate the usual mistakes.

When a result is wrong, the usual mistakes are recomputed here by small plain-Python
simulations (the `simulated_*` functions) and the message names the one whose output equals
yours. Every text is small: a straightforward implementation (recounting every pair at every
merge, no cache) passes this file in seconds.

GPT-2's files are found as the project finds them (data/tokenizers.py: $KATA_DATA_DIR/gpt2-bpe/
or tiktoken's cache); without them the GPT-2 tests are skipped. Nothing is downloaded.
"""

import functools
import io
import itertools
from collections import Counter

import pytest
import regex

from harness import fail, learner, reference

MODULE = "bpe"
PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
PATTERN_WITHOUT_BRANCH = PATTERN.replace(r"|\s+(?!\S)", "")
SPECIALS = ["<|endoftext|>", "<|pad|>"]  # for comparisons with tiktoken: they do not overlap
INF = float("inf")

# A small corpus written for these tests: prose with contractions, digits, punctuation, runs of
# spaces and newlines, accents and an emoji, and the special tokens between documents.
CORPUS = (
    "The old lighthouse keeper didn't sleep much. He'd climb the 112 steps at dusk, trim the wick, "
    "and watch the ships go by: three, four, sometimes 17 in a night.\n\n"
    "   \"We'll need more oil,\" he wrote in the log on 3 March 1891 — the café in town sold it at 2.50 a gallon.\n"
    "<|endoftext|>"
    "Tokenizers split text into pieces; the pieces become ids, and the ids become vectors.\n"
    "A byte-level tokenizer never meets an unknown character: naïve, Ünïcödé, 東京, and 🙂 all encode.\n\n\n"
    "    indented lines keep their spaces;    runs of spaces too.\n"
    "<|endoftext|>"
    "She's sure they're right, and you've seen it: the keeper's log isn't lost, it's in the museum.\n"
    "Numbers like 1000000, 3.14159 and 2024-06-01 split into runs of digits. The end.\n"
    "<|pad|><|pad|>"
) * 2

SENTENCES = {
    # training
    "across": "pairs were counted across pre-token boundaries (over the whole text): split the text with "
              "GPT2_SPLIT_PATTERN first and count pairs inside each pre-token only",
    "ties-smaller": "a tie between equally frequent pairs went to the smaller pair: a tie goes to the "
                    "lexicographically greater pair, comparing (left bytes, right bytes)",
    "ties-ids": "a tie between equally frequent pairs was broken by token ids: compare the pairs' bytes, "
                "(left bytes, right bytes), not their ids",
    "first-only": "only the first occurrence of the pair in each pre-token was merged: merge every occurrence, "
                  "left to right",
    "unweighted": "each distinct pre-token's pairs were counted once, whatever how often it occurs: weight them "
                  "by the pre-token's count",
    "once-per-word": "a pair was counted once per pre-token instead of at every position "
                     "(b\"aaa\" holds (a, a) twice)",
    "specials-trained": "the special tokens' text was split by the pattern and trained on: cut the special tokens "
                        "out of the text first, they take no part in training",
    "no-branch": "the split pattern lacks the \\s+(?!\\S) branch: a run of spaces must leave its last space to the "
                 "word after it (\"a   b\" -> \"a\", \"  \", \" b\"); use GPT2_SPLIT_PATTERN as given",
    # encoding
    "frequency": "encode merged the most frequent pair of each pre-token first, as training does; encoding merges "
                 "the adjacent pair whose concatenation has the lowest id first (rank order)",
    "leftmost": "encode merged the leftmost pair whose concatenation is a token first; merge the one whose "
                "concatenation has the lowest id first (rank order)",
    "merge-order": "encode looked the pairs up in the merges list (the pair (left, right) as it was learned); "
                   "tiktoken's rule looks the concatenation left + right up in the vocab and merges the lowest id "
                   "first",
    "no-whole": "a whole pre-token whose bytes are a token was not encoded as that one id: look the whole "
                "pre-token up in the vocab first",
    "specials-split": "the special token was split by the pattern like ordinary text: cut the special tokens out "
                      "of the text before splitting the rest",
    "first-listed": "where two special tokens overlap, the one listed first was cut out, not the longest: try the "
                    "longest first",
    "surrogates": "encode raised UnicodeEncodeError on a str that holds surrogates: read it as tiktoken does, "
                  "valid_unicode(text) (a lone surrogate becomes U+FFFD)",
    # decoding
    "strict": "decode raised UnicodeDecodeError on bytes that are not valid UTF-8: decode with errors=\"replace\" "
              "(invalid bytes become U+FFFD)",
    "ignore": "decode dropped the bytes that are not valid UTF-8 (errors=\"ignore\"): decode with "
              "errors=\"replace\" (they become U+FFFD)",
    "gpt2-chars": "GPT-2's written tokens were taken as text, not turned back into bytes with "
                  "gpt2_bytes_to_unicode (\"Ġ\" stands for the byte b\" \")",
    # vocab
    "off-by-one": "the merged tokens' ids are off by one: the first merge gets id 256, the k-th 255 + k",
    "specials-missing": "the special tokens are missing from the vocab: they take the ids after the merges",
    # encode_iterable
    "per-chunk": "each chunk was encoded on its own: the end of a chunk (the last two pre-tokens, and what may be "
                 "the start of a special token) must be held back until the next chunk comes",
    "hold-one": "only the last pre-token was held back: \"we'l\" + \"l\" is \"we\" \"'ll\", so \"'\" could still "
                "grow; hold back the last two pre-tokens",
    "special-across": "a special token split across two chunks was not recognised: hold back the end of the text "
                      "read that may be the start of a special token",
    "not-lazy": "encode_iterable is not lazy: it read {n} chunks without yielding an id; yield the ids that are "
                "certain after each chunk, before reading the next",
}


# --- calling the learner's code --------------------------------------------------------------


def mine():
    return learner(MODULE)


def attempt(what, fn, *args, **kwargs):
    """fn(*args) or a kata failure naming the call and the exception (an untouched TODO stays itself)."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 - the message says which call raised what
        fail(MODULE, f"{what} raised {type(error).__name__}: {error}")


def shorten(text, limit=70) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 5] + "…" + shown[-4:]


def as_ids(value, what) -> list:
    try:
        ids = list(value)
    except TypeError:
        fail(MODULE, f"{what} returned {type(value).__name__}, expected a list of ints.")
    if not all(isinstance(i, int) for i in ids):
        fail(MODULE, f"{what} returned {ids[:10]}…: expected ints (token ids).")
    return ids


def first_match(actual, likely):
    """The sentence of the first (sentence, make) whose output equals actual; None if none does."""
    for sentence, make in likely:
        try:
            if make() == actual:
                return sentence
        except Exception:  # a mistake that cannot be simulated on this input does not match  # noqa: BLE001
            continue
    return None


def expect_same_ids(actual, expected, what, token_bytes, likely=(), hint=""):
    """Fail unless actual == expected, showing the first differing token with its bytes."""
    if actual == expected:
        return
    k = next((i for i, (a, e) in enumerate(zip(actual, expected)) if a != e), min(len(actual), len(expected)))

    def show(ids):
        window = ids[max(0, k - 2) : k + 3]
        return "[" + ", ".join(f"{i} {token_bytes(i)!r}" for i in window) + "]"

    text = (f"{what} gives {len(actual)} ids, expected {len(expected)}; they first differ at token {k}: "
            f"yours {show(actual)}, expected {show(expected)} (tokens {max(0, k - 2)}..).")
    if hint:
        text += f" {hint}"
    fail(MODULE, text, cause=first_match(actual, likely), looks_like=True)


# --- simulations of the usual mistakes (plain Python, slow, small inputs only) ----------------


def cut_specials(text, specials, order="longest"):
    """text cut around the special tokens (the longest first, or in the listed order)."""
    if not specials:
        return [text]
    ordered = sorted(specials, key=len, reverse=True) if order == "longest" else list(specials)
    return regex.split("(" + "|".join(regex.escape(s) for s in ordered) + ")", text)


def valid_unicode(text):
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def merged(word, pair, first_only=False):
    out, i, done = [], 0, False
    while i < len(word):
        if not done and i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
            done = first_only
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def simulated_training(text, vocab_size, specials=(), *, across=False, ties="greater", weighted=True,
                       every_position=True, first_only=False, cut=True, pattern=PATTERN):
    """The merges train_bpe learns, recounting every pair at every merge, with or without a known mistake."""
    words = Counter()
    for part in cut_specials(text, specials if cut else ()):
        if part in specials and cut:
            continue
        pieces = [part] if across else regex.findall(pattern, part)
        words.update(tuple(bytes([b]) for b in piece.encode("utf-8")) for piece in pieces)
    ids = {bytes([b]): b for b in range(256)}
    merges = []
    while len(merges) < vocab_size - 256 - len(specials):
        counts = Counter()
        for word, count in words.items():
            pairs = list(zip(word, word[1:]))
            for pair in pairs if every_position else set(pairs):
                counts[pair] += count if weighted else 1
        if not counts:
            break
        top = max(counts.values())
        tied = [pair for pair, count in counts.items() if count == top]
        if ties == "greater":
            best = max(tied)
        elif ties == "smaller":
            best = min(tied)
        else:  # by ids
            best = max(tied, key=lambda pair: (ids[pair[0]], ids[pair[1]]))
        merges.append(best)
        ids.setdefault(best[0] + best[1], 255 + len(merges))
        after = Counter()
        for word, count in words.items():
            after[merged(word, best, first_only)] += count
        words = after
    return merges


def training_mistakes(text, vocab_size, specials=()):
    def sim(**mistake):
        return lambda: simulated_training(text, vocab_size, specials, **mistake)

    likely = [
        (SENTENCES["across"], sim(across=True)),
        (SENTENCES["ties-smaller"], sim(ties="smaller")),
        (SENTENCES["ties-ids"], sim(ties="ids")),
        (SENTENCES["first-only"], sim(first_only=True)),
        (SENTENCES["unweighted"], sim(weighted=False)),
        (SENTENCES["once-per-word"], sim(every_position=False)),
        (SENTENCES["no-branch"], sim(pattern=PATTERN_WITHOUT_BRANCH)),
    ]
    if specials:
        likely.append((SENTENCES["specials-trained"], sim(cut=False)))
    return likely


def simulated_bpe(pretoken, ids, rule="rank", whole=True, merge_rank=None):
    """The ids of one pre-token's bytes: tiktoken's rule ("rank") or a mistaken one."""
    if whole and pretoken in ids:
        return [ids[pretoken]]
    parts = [bytes([b]) for b in pretoken]
    while len(parts) > 1:
        pairs = list(zip(parts, parts[1:]))
        if rule == "rank":
            scores = [ids.get(a + b, INF) for a, b in pairs]
            best = scores.index(min(scores))
        elif rule == "merge-order":
            scores = [merge_rank.get((a, b), INF) for a, b in pairs]
            best = scores.index(min(scores))
        elif rule == "leftmost":
            scores = [0 if a + b in ids else INF for a, b in pairs]
            best = scores.index(min(scores))
        else:  # "frequency": the most frequent mergeable pair of the pre-token, the leftmost of equals
            scores = [ids.get(a + b, INF) for a, b in pairs]
            best = max(range(len(pairs)), key=lambda i: (scores[i] < INF, pairs.count(pairs[i])))
        if scores[best] == INF:
            break
        parts[best : best + 2] = [parts[best] + parts[best + 1]]
    return [ids[p] for p in parts]


def simulated_encode(text, ids, special_ids, *, pattern=PATTERN, rule="rank", whole=True, merges=None,
                     cut=True, order="longest"):
    merge_rank = {tuple(pair): r for r, pair in enumerate(merges or ())}
    out = []
    for part in cut_specials(valid_unicode(text), list(special_ids) if cut else (), order):
        if cut and part in special_ids:
            out.append(special_ids[part])
            continue
        for piece in regex.findall(pattern, part):
            out.extend(simulated_bpe(piece.encode("utf-8"), ids, rule, whole, merge_rank))
    return out


def encoding_mistakes(text, ids, special_ids, merges=None):
    def sim(**mistake):
        return lambda: simulated_encode(text, ids, special_ids, merges=merges, **mistake)

    likely = [
        (SENTENCES["no-branch"], sim(pattern=PATTERN_WITHOUT_BRANCH)),
        (SENTENCES["frequency"], sim(rule="frequency")),
        (SENTENCES["leftmost"], sim(rule="leftmost")),
        (SENTENCES["no-whole"], sim(whole=False)),
    ]
    if merges is not None:
        likely.append((SENTENCES["merge-order"], sim(rule="merge-order")))
    if special_ids:
        likely.append((SENTENCES["specials-split"], sim(cut=False)))
        likely.append((SENTENCES["first-listed"], sim(order="listed")))
    return likely


def simulated_iterable(chunks, encode, hold):
    """encode_iterable's ids when the last `hold` pre-tokens of the text read are held back (no special tokens)."""
    out, pending = [], ""
    for chunk in chunks:
        pending += chunk
        pieces = regex.findall(PATTERN, pending)
        certain = pieces[: len(pieces) - hold]
        for piece in certain:
            out.extend(encode(piece))
        pending = pending[sum(len(p) for p in certain) :]
    return out + [i for piece in regex.findall(PATTERN, pending) for i in encode(piece)]


# --- the oracles ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def gpt2_oracle():
    """tiktoken's gpt2 encoding, from the files this machine has (never downloaded here)."""
    from data import tokenizers
    from data.shakespeare import DataError

    if tokenizers.gpt2_files() is None:
        pytest.skip("GPT-2's vocab.bpe and encoder.json are not on this machine ($KATA_DATA_DIR/gpt2-bpe/ or "
                    "tiktoken's cache); run `python -c \"import tiktoken; tiktoken.get_encoding('gpt2')\"` once.")
    try:
        return tokenizers.gpt2_encoding()
    except DataError as error:
        pytest.skip(str(error))


@functools.lru_cache(maxsize=None)
def gpt2_ids():
    """{bytes: id} of GPT-2, with the special token."""
    enc = gpt2_oracle()
    ids = {enc.decode_single_token_bytes(i): i for i in range(enc.n_vocab)}
    return ids


_mine_gpt2 = {}


def my_gpt2():
    """The learner's Tokenizer.from_tiktoken_files on GPT-2's files (built once per module object)."""
    from data import tokenizers

    gpt2_oracle()  # skips without the files
    module = mine()
    if id(module) not in _mine_gpt2:
        vocab_bpe, encoder_json = tokenizers.gpt2_files()
        _mine_gpt2[id(module)] = attempt("Tokenizer.from_tiktoken_files(vocab.bpe, encoder.json)",
                                         module.Tokenizer.from_tiktoken_files, str(vocab_bpe), str(encoder_json))
    return _mine_gpt2[id(module)]


def shakespeare():
    from data import shakespeare as source

    try:
        return source.path(download_missing=False).read_text(encoding="utf-8")
    except source.DataError as error:
        pytest.skip(str(error))


@functools.lru_cache(maxsize=None)
def trained(specials=tuple(SPECIALS), vocab_size=400):
    """The reference's vocab and merges trained on CORPUS."""
    return reference(MODULE).train_bpe(CORPUS, vocab_size, list(specials))


def tiktoken_for(vocab, specials, what="the vocab"):
    """A tiktoken.Encoding built from a trained vocab, as the contract states."""
    import tiktoken

    special_bytes = {s.encode("utf-8") for s in specials}
    ranks = {token: i for i, token in vocab.items() if token not in special_bytes}
    if len(ranks) + len(specials) != len(vocab):
        seen = {}
        for i, token in sorted(vocab.items()):
            if token in seen:
                fail(MODULE, f"{what} holds the bytes {token!r} twice (ids {seen[token]} and {i}); tiktoken (and "
                             f"encoding) needs one id per token.")
            seen[token] = i
    special_ids = {}
    for special in specials:
        found = [i for i, token in vocab.items() if token == special.encode("utf-8")]
        if not found:
            fail(MODULE, f"the special token {special!r} is not in {what}.")
        special_ids[special] = found[0]
    return tiktoken.Encoding("trained", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens=special_ids)


# --- train_bpe --------------------------------------------------------------------------------


def my_training(text, vocab_size, specials=()):
    args = f"vocab_size={vocab_size}" + (f", special_tokens={list(specials)}" if specials else "")
    what = f"train_bpe({shorten(text, 40)}, {args})"
    if specials:
        result = attempt(what, mine().train_bpe, text, vocab_size, list(specials))
    else:
        result = attempt(what, mine().train_bpe, text, vocab_size)
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], dict)):
        fail(MODULE, f"{what} returned {type(result).__name__}, expected a tuple (vocab dict, merges list).")
    vocab, merges = result
    return vocab, [tuple(pair) for pair in merges], what


def check_merges(text, vocab_size, specials=(), behaviour=""):
    """The learner's merges equal the reference's, merge for merge."""
    _, merges, what = my_training(text, vocab_size, specials)
    expected = reference(MODULE).train_bpe(text, vocab_size, list(specials))[1]
    if merges == expected:
        return
    k = next((i for i, (a, e) in enumerate(zip(merges, expected)) if a != e), min(len(merges), len(expected)))
    if k == len(expected):
        text_ = f"{what} learned {len(merges)} merges, expected {len(expected)} (the first {k} agree)."
    elif k == len(merges):
        text_ = (f"{what} learned {len(merges)} merges, expected {len(expected)}; the next one should be "
                 f"{expected[k]!r} (the first {k} agree).")
    else:
        text_ = (f"{what}: merge {k} is {merges[k]!r}, expected {expected[k]!r} (the first {k} agree; the "
                 f"next expected ones: {expected[k + 1 : k + 4]!r}).")
    if behaviour:
        text_ += f" This corpus checks that {behaviour}."
    fail(MODULE, text_, cause=first_match(merges, training_mistakes(text, vocab_size, specials)), looks_like=True)


def test_train_ties_go_to_the_greater_pair():
    # every pair here occurs equally often at some step, and "zz" meets "ab" + "c" in a tie
    check_merges("ab cd ab cd ef zz zz abc abc", 266,
                 behaviour="ties go to the greater pair, comparing (left bytes, right bytes) as a tuple")


def test_train_counts_pairs_inside_pretokens_only():
    check_merges("he he he he said she", 262, behaviour="pairs are counted inside each pre-token only")


def test_train_counts_every_position():
    check_merges("aaaa xy xy", 259, behaviour="a pair is counted at every position (b\"aaa\" holds (a, a) twice)")


def test_train_weighs_pretokens_by_their_count():
    check_merges("zq zq zq zq zq ab ab", 262, behaviour="each pre-token's pairs count as often as it occurs")


def test_train_merges_every_occurrence_left_to_right():
    check_merges("abab ababab aaa aaaaa", 264,
                 behaviour="a merge replaces every occurrence, left to right without overlap (b\"aaa\" -> aa, a)")


def test_train_leaves_special_tokens_out():
    check_merges("ab<|endoftext|>ab <|endoftext|><|pad|>cd <|pad|>xy<|endoftext|>", 262, SPECIALS,
                 behaviour="the special tokens are cut out before training and never merged")


def test_train_splits_whitespace_runs_like_gpt2():
    check_merges("a    b    c\n\n\n\nd      e\t\t\tf   g", 262,
                 behaviour="whitespace runs are split by GPT2_SPLIT_PATTERN (a run leaves its last space to the word)")


def test_train_matches_the_reference_on_a_corpus():
    check_merges(CORPUS, 256 + 150 + len(SPECIALS), SPECIALS)


def test_train_matches_the_reference_on_shakespeare():
    check_merges(shakespeare()[:4000], 256 + 120)


def test_train_stops_when_no_pair_is_left():
    vocab, merges, what = my_training("ab ab", 1000)
    expected_vocab, expected = reference(MODULE).train_bpe("ab ab", 1000)
    if merges != expected or len(vocab) != len(expected_vocab):
        fail(MODULE, f"{what} gave {len(merges)} merges and {len(vocab)} vocab entries, expected {expected!r} and "
                     f"{len(expected_vocab)}: when no pair is left (every pre-token is one token), training stops "
                     f"early, with fewer than vocab_size entries.")


def test_vocab_layout_bytes_merges_then_special_tokens():
    vocab_size = 256 + 60 + len(SPECIALS)
    vocab, merges, what = my_training(CORPUS, vocab_size, SPECIALS)
    for b in range(256):
        if vocab.get(b) != bytes([b]):
            fail(MODULE, f"{what}: vocab[{b}] is {vocab.get(b)!r}, expected {bytes([b])!r}: ids 0..255 are the "
                         f"single bytes, id = byte value.")
    for k, (left, right) in enumerate(merges):
        if vocab.get(256 + k) != left + right:
            shifted = all(vocab.get(257 + j) == a + b for j, (a, b) in enumerate(merges[: len(merges) - 1]))
            fail(MODULE, f"{what}: vocab[{256 + k}] is {vocab.get(256 + k)!r}, expected {left + right!r}, the bytes "
                         f"of merge {k} {(left, right)!r}: merge k gets id 256 + k.",
                 cause=SENTENCES["off-by-one"] if shifted else None)
    values = set(vocab.values())
    missing = [s for s in SPECIALS if s.encode("utf-8") not in values]
    if len(missing) == len(SPECIALS):
        fail(MODULE, f"{what}: no special token is in the vocab.", cause=SENTENCES["specials-missing"])
    for j, special in enumerate(SPECIALS):
        if vocab.get(256 + len(merges) + j) != special.encode("utf-8"):
            fail(MODULE, f"{what}: vocab[{256 + len(merges) + j}] is {vocab.get(256 + len(merges) + j)!r}, expected "
                         f"{special.encode()!r}: the special tokens follow the merges, in the order given.")
    if len(vocab) != vocab_size or len(merges) != vocab_size - 256 - len(SPECIALS):
        fail(MODULE, f"{what} gave {len(vocab)} vocab entries and {len(merges)} merges, expected {vocab_size} and "
                     f"{vocab_size - 256 - len(SPECIALS)}: vocab_size counts the bytes, the merges and the specials.")


@pytest.mark.parametrize("vocab_size, specials", [(255, ()), (257, ("<|a|>", "<|b|>"))])
def test_train_refuses_a_vocab_size_below_the_bytes_and_specials(vocab_size, specials):
    try:
        mine().train_bpe("hello hello", vocab_size, list(specials))
    except ValueError:
        return
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001
        fail(MODULE, f"train_bpe(vocab_size={vocab_size}, special_tokens={list(specials)}) raised "
                     f"{type(error).__name__}: {error}; expected ValueError (256 bytes + {len(specials)} specials "
                     f"need {256 + len(specials)}).")
    fail(MODULE, f"train_bpe(vocab_size={vocab_size}, special_tokens={list(specials)}) did not raise ValueError: the "
                 f"256 bytes and {len(specials)} special token(s) need vocab_size >= {256 + len(specials)}.")


def test_train_accepts_the_smallest_vocab_size():
    vocab, merges, what = my_training("hello hello", 256 + 2, ("<|a|>", "<|b|>"))
    if merges or len(vocab) != 258:
        fail(MODULE, f"{what} gave {len(merges)} merges and {len(vocab)} entries, expected no merge and 258 entries "
                     f"(the bytes and the two specials).")


# --- encode with a trained vocabulary ----------------------------------------------------------

TRAINED_TEXTS = {
    "unseen-prose": "The keeper's daughter didn't see the 3 ships; she'd gone to town at 1891 o'clock.",
    "whitespace": "a    b\n\n\n\nc \t d   \n  e      ",
    "contractions": "I'm sure you're right: it's theirs, we'll see, they've said, he'd go. 'S'LL 'Tis",
    "unseen-characters": "Ωμέγα, Привет, 日本語, مرحبا, 🙂🙃 and ☃ are all bytes.",
    "digits": "1234567890 3.14159 2024-06-01 1,000,000 ١٢٣",
    "special-tokens": "end<|endoftext|>start <|pad|><|pad|>text<|endoftext|>",
}


def trained_tokenizer(specials=tuple(SPECIALS)):
    vocab, merges = trained()
    tok = attempt("Tokenizer(vocab, merges, special_tokens)", mine().Tokenizer, vocab, merges, list(specials))
    return tok, vocab, merges


@pytest.mark.parametrize("name", list(TRAINED_TEXTS))
def test_encode_with_a_trained_vocab_equals_tiktoken(name):
    text = TRAINED_TEXTS[name]
    tok, vocab, merges = trained_tokenizer()
    expected = tiktoken_for(vocab, SPECIALS).encode(text, allowed_special="all")
    actual = as_ids(attempt(f"encode({shorten(text)})", tok.encode, text), "encode")
    ids = {token: i for i, token in sorted(vocab.items(), reverse=True)}
    special_ids = {s: ids[s.encode()] for s in SPECIALS}
    expect_same_ids(actual, expected, f"Tokenizer(reference-trained vocab).encode({shorten(text)})",
                    lambda i: vocab.get(i), likely=encoding_mistakes(text, ids, special_ids, merges))


def test_your_trained_tokenizer_equals_tiktoken_on_your_vocab():
    vocab, merges, what = my_training(CORPUS, 256 + 150 + len(SPECIALS), SPECIALS)
    enc = tiktoken_for(vocab, SPECIALS, what=f"the vocab of {what}")
    tok = attempt("Tokenizer(your vocab, merges, special_tokens)", mine().Tokenizer, vocab, merges, SPECIALS)
    text = "".join(TRAINED_TEXTS.values())
    actual = as_ids(attempt(f"encode({shorten(text)})", tok.encode, text), "encode")
    ids = {token: i for i, token in sorted(vocab.items(), reverse=True)}
    special_ids = {s: ids[s.encode()] for s in SPECIALS}
    expect_same_ids(actual, enc.encode(text, allowed_special="all"),
                    f"Tokenizer(your trained vocab).encode({shorten(text)})", lambda i: vocab.get(i),
                    likely=encoding_mistakes(text, ids, special_ids, merges))


def handmade(merges):
    """A vocab of the 256 bytes and the given merges (ids 256, 257, ...), not necessarily one training gives."""
    vocab = {b: bytes([b]) for b in range(256)}
    for a, b in merges:
        vocab[len(vocab)] = a + b
    return vocab


def check_handmade(merges, texts, rule_is):
    vocab = handmade(merges)
    tok = attempt("Tokenizer(vocab, merges)", mine().Tokenizer, vocab, merges)
    enc = tiktoken_for(vocab, ())
    ids = {token: i for i, token in sorted(vocab.items(), reverse=True)}
    for text in texts:
        actual = as_ids(attempt(f"encode({text!r})", tok.encode, text), "encode")
        expect_same_ids(actual, enc.encode(text), f"Tokenizer(merges {merges!r}).encode({text!r})",
                        lambda i: vocab.get(i), likely=encoding_mistakes(text, ids, {}, merges), hint=rule_is)


def test_encode_merges_the_lowest_id_concatenation_first():
    # the contract's example: by tiktoken's rule b, c merge first, then a + bc is the token "abc"
    check_handmade([(b"b", b"c"), (b"a", b"b"), (b"ab", b"c")], ["xabc", " abc abcabc"],
                   rule_is="tiktoken's rule: of the adjacent pairs, merge the one whose concatenation has the "
                           "lowest id, and repeat until no concatenation is a token.")


def test_encode_takes_a_whole_pretoken_that_is_a_token():
    # "abcd" is a token, but no merge leads to it from [a, bc, d]
    check_handmade([(b"b", b"c"), (b"a", b"b"), (b"c", b"d"), (b"ab", b"cd")], ["abcd", "abcd abcd"],
                   rule_is="a pre-token whose bytes are a token is that one id.")


def test_overlapping_special_tokens_longest_first():
    specials = ["<|a|>", "<|a|><|a|>", "<|b"]  # the shorter listed first
    vocab = handmade([])
    for special in specials:  # in the vocab, as train_bpe puts them (ids 256-258)
        vocab[len(vocab)] = special.encode("utf-8")
    tok = attempt(f"Tokenizer(vocab, [], special_tokens={specials})", mine().Tokenizer, vocab, [], specials)
    ref = reference(MODULE).Tokenizer(vocab, [], specials)
    text = "x<|a|><|a|>y<|a|> <|a|><|a|><|a|><|b|>"
    actual = as_ids(attempt(f"encode({text!r})", tok.encode, text), "encode")
    special_ids = {s: ref.special_ids[s] for s in specials}
    ids = {token: i for i, token in vocab.items()}
    expect_same_ids(actual, ref.encode(text), f"Tokenizer(special_tokens={specials}).encode({text!r})",
                    lambda i: ref.vocab.get(i), likely=encoding_mistakes(text, ids, special_ids),
                    hint="Where two special tokens overlap, the longer one is cut out.")
    back = attempt("decode(encode(text))", tok.decode, actual)
    if back != text:
        fail(MODULE, f"decode(encode({text!r})) gave {back!r}.")


# --- GPT-2 --------------------------------------------------------------------------------------

GPT2_TEXTS = {
    "whitespace-runs": "a  b   c    d\n\n\ne\t\tf \n g   \n\n  h" + " " * 7 + "i\r\n\r\nj\u00a0\u00a0k\u3000l   ",
    "contractions": "I'm, you're, it's, we'll, they've, he'd, don't; 'S 'LL O'Neil's rock'n'roll ''' 'twas",
    "digits": "0 12 345 6789 1,000,000 3.14159 2024-06-01 ١٢٣ ²³ Ⅻ ½",
    "non-latin": "Привет мир. Γειά σου κόσμε. こんにちは世界。 你好，世界！ مرحبا بالعالم. नमस्ते दुनिया 안녕하세요",
    "emoji": "🙂 🙃🙃 👩‍👩‍👧‍👦 🇫🇷🇯🇵 👍🏽 ☃️ ❤️‍🔥 a😀b",
    "punctuation": "Hello, world!!! (really?) — «quoted» ... --> x+=1; f(a, b)[0] {'k': \"v\"} @user #tag",
    "mixed-scripts": "naïve café Ünïcödé straße ﬁnal İstanbul ǅ e\u0301 𝐀𝐁𝐂 tab\there",
}


def check_gpt2(text, what=None):
    enc = gpt2_oracle()
    tok = my_gpt2()
    what = what or f"GPT-2 Tokenizer.encode({shorten(text)})"
    actual = as_ids(attempt(what, tok.encode, text), "encode")
    expected = enc.encode(text, allowed_special="all")
    expect_same_ids(actual, expected, what, enc.decode_single_token_bytes,
                    likely=encoding_mistakes(text, gpt2_ids(), {"<|endoftext|>": 50256}))


@pytest.mark.parametrize("name", list(GPT2_TEXTS))
def test_gpt2_encodes_like_tiktoken(name):
    check_gpt2(GPT2_TEXTS[name])


@pytest.mark.parametrize("start", [0, 500_000, -1500], ids=["opening", "middle", "ending"])
def test_gpt2_encodes_shakespeare_like_tiktoken(start):
    passage = shakespeare()[start:][:1500]
    check_gpt2(passage, f"GPT-2 Tokenizer.encode(Tiny Shakespeare [{start}:][:1500])")


def test_gpt2_endoftext_is_one_token():
    check_gpt2("<|endoftext|>Hello<|endoftext|> world<|endoftext|><|endoftext|>x <|endoftext|>")


def test_gpt2_surrogates_like_tiktoken():
    enc = gpt2_oracle()
    tok = my_gpt2()
    for text in ["lone \ud800 high", "lone low \udfff", "pair \ud83d\ude00 as two code units", "\ud83d"]:
        try:
            actual = tok.encode(text)
        except UnicodeEncodeError as error:
            fail(MODULE, f"GPT-2 Tokenizer.encode({text!r}) raised UnicodeEncodeError ({error}).",
                 cause=SENTENCES["surrogates"])
        except NotImplementedError:
            raise
        except Exception as error:  # noqa: BLE001
            fail(MODULE, f"GPT-2 Tokenizer.encode({text!r}) raised {type(error).__name__}: {error}.")
        expect_same_ids(as_ids(actual, "encode"), enc.encode(text, allowed_special="all"),
                        f"GPT-2 Tokenizer.encode({text!r})", enc.decode_single_token_bytes,
                        hint="tiktoken reads a str with surrogates as text.encode('utf-16', 'surrogatepass')"
                             ".decode('utf-16', 'replace'): a pair becomes its character, a lone one U+FFFD.")


def test_gpt2_vocab_from_the_files():
    enc = gpt2_oracle()
    tok = my_gpt2()
    space = attempt("GPT-2 Tokenizer.decode([220])", tok.decode, [220])
    if space == "Ġ":
        fail(MODULE, "GPT-2 Tokenizer.decode([220]) is 'Ġ', expected ' '.", cause=SENTENCES["gpt2-chars"])
    for i in range(enc.n_vocab):
        try:
            got = tok.decode([i])
        except UnicodeDecodeError as error:
            fail(MODULE, f"GPT-2 Tokenizer.decode([{i}]) (the bytes {enc.decode_single_token_bytes(i)!r}) raised "
                         f"UnicodeDecodeError ({error}).", cause=SENTENCES["strict"])
        except NotImplementedError:
            raise
        except Exception as error:  # noqa: BLE001
            fail(MODULE, f"GPT-2 Tokenizer.decode([{i}]) raised {type(error).__name__}: {error}.")
        if got != enc.decode([i]):
            fail(MODULE, f"GPT-2 Tokenizer.decode([{i}]) is {got!r}, expected {enc.decode([i])!r} (the token's bytes "
                         f"{enc.decode_single_token_bytes(i)!r}): the vocab read from the files is not GPT-2's.")


def decode_cases():
    enc = gpt2_oracle()
    smile = enc.encode("a😀b")  # the emoji's 4 bytes span more than one token
    return {
        "split-emoji": smile[:2],
        "emoji-missing-middle": smile[:1] + smile[2:],
        "lone-0xff": [enc.encode_single_token(b"\xff")],
        "text-and-bad-bytes": enc.encode("café ") + [enc.encode_single_token(b"\xe2"), enc.encode_single_token(b"\x82")]
        + enc.encode(" ok"),
    }


@pytest.mark.parametrize("case", ["split-emoji", "emoji-missing-middle", "lone-0xff", "text-and-bad-bytes"])
def test_decode_invalid_utf8_becomes_the_replacement_character(case):
    enc = gpt2_oracle()
    tok = my_gpt2()
    ids = decode_cases()[case]
    raw = b"".join(enc.decode_single_token_bytes(i) for i in ids)
    try:
        got = tok.decode(ids)
    except UnicodeDecodeError as error:
        fail(MODULE, f"GPT-2 Tokenizer.decode({ids}) (the bytes {raw!r}) raised UnicodeDecodeError ({error}).",
             cause=SENTENCES["strict"])
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001
        fail(MODULE, f"GPT-2 Tokenizer.decode({ids}) raised {type(error).__name__}: {error}.")
    expected = raw.decode("utf-8", errors="replace")
    if got != expected:
        cause = SENTENCES["ignore"] if got == raw.decode("utf-8", errors="ignore") else None
        fail(MODULE, f"GPT-2 Tokenizer.decode({ids}) (the bytes {raw!r}) is {got!r}, expected {expected!r}.",
             cause=cause, looks_like=True)


@pytest.mark.parametrize("tokenizer", ["gpt2", "trained"])
def test_decode_inverts_encode(tokenizer):
    texts = list(GPT2_TEXTS.values()) + list(TRAINED_TEXTS.values())
    tok = my_gpt2() if tokenizer == "gpt2" else trained_tokenizer()[0]
    for text in texts:
        ids = as_ids(attempt(f"encode({shorten(text)})", tok.encode, text), "encode")
        back = attempt(f"decode(encode({shorten(text)}))", tok.decode, ids)
        if back != text:
            k = next((i for i, (a, b) in enumerate(zip(back, text)) if a != b), min(len(back), len(text)))
            fail(MODULE, f"decode(encode(text)) differs from text at character {k}: {back[max(0, k - 10):k + 10]!r}, "
                         f"expected {text[max(0, k - 10):k + 10]!r} ({tokenizer} tokenizer).")


# --- encode_iterable -------------------------------------------------------------------------------

ITERABLE_TEXT = ("We'll see: they're here, I've 12345 coins,   three spaces\n\n\nand\u00a0\u00a08 more. "
                 "Incomprehensibilities!!! 🙂 don't")


@functools.lru_cache(maxsize=None)
def gpt2_vocab_and_merges():
    """GPT-2's vocab (without <|endoftext|>) and merges, as the reference reads them from the files."""
    from data import tokenizers

    gpt2_oracle()  # skips without the files
    ref = reference(MODULE).Tokenizer.from_tiktoken_files(*map(str, tokenizers.gpt2_files()))
    vocab = {i: token for i, token in ref.vocab.items() if i != 50256}
    return vocab, ref.merges


_mine_plain = {}


def no_special_tokenizer():
    """The learner's Tokenizer on GPT-2's vocab and merges without special tokens (it has "'ll", "'re", "'ve")."""
    vocab, merges = gpt2_vocab_and_merges()
    module = mine()
    if id(module) not in _mine_plain:
        _mine_plain[id(module)] = attempt("Tokenizer(GPT-2's vocab, merges)", module.Tokenizer, vocab, merges)
    return _mine_plain[id(module)], vocab


def check_iterable(tok, chunks, token_bytes, expected=None, likely=True):
    text = "".join(chunks)
    if expected is None:
        expected = as_ids(attempt(f"encode({shorten(text)})", tok.encode, text), "encode")
    what = f"list(encode_iterable({shorten(chunks, 90)}))"
    actual = as_ids(attempt(what, lambda: list(tok.encode_iterable(iter(chunks)))), "encode_iterable")
    mistakes = []
    if likely:
        encode = tok.encode
        mistakes = [(SENTENCES["per-chunk"], lambda: simulated_iterable(chunks, encode, 0)),
                    (SENTENCES["hold-one"], lambda: simulated_iterable(chunks, encode, 1))]
    expect_same_ids(actual, expected, what, token_bytes, likely=mistakes,
                    hint="list(encode_iterable(chunks)) must equal encode(\"\".join(chunks)) however the text is cut.")


def test_encode_iterable_equals_encode_for_every_cut_in_two():
    tok, vocab = no_special_tokenizer()
    for k in range(len(ITERABLE_TEXT) + 1):
        check_iterable(tok, [ITERABLE_TEXT[:k], ITERABLE_TEXT[k:]], vocab.get)


def test_encode_iterable_one_character_at_a_time():
    tok, vocab = no_special_tokenizer()
    check_iterable(tok, list(ITERABLE_TEXT), vocab.get)


def test_encode_iterable_over_the_lines_of_a_file():
    tok, vocab = no_special_tokenizer()
    check_iterable(tok, list(io.StringIO(CORPUS.replace("<|endoftext|>", "\n").replace("<|pad|>", ""))), vocab.get)


def test_encode_iterable_contraction_across_chunks():
    tok, vocab = no_special_tokenizer()
    for chunks in (["we'l", "l"], ["They'r", "e here"], ["I'v", "e seen"]):
        check_iterable(tok, chunks, vocab.get)


def test_encode_iterable_gpt2_with_special_tokens():
    enc = gpt2_oracle()
    tok = my_gpt2()
    text = "Hi<|endoftext|>there  friend<|endoftext|><|endoftext|> it's\n\n\nover.<|endoftext|>"
    for k in range(len(text) + 1):
        check_iterable(tok, [text[:k], text[k:]], enc.decode_single_token_bytes,
                       expected=enc.encode(text, allowed_special="all"), likely=False)


def test_encode_iterable_special_token_across_chunks():
    enc = gpt2_oracle()
    tok = my_gpt2()
    special = "<|endoftext|>"
    whole = as_ids(attempt(f"encode({special!r})", tok.encode, special), "encode")
    expect_same_ids(whole, [50256], f"GPT-2 Tokenizer.encode({special!r})", enc.decode_single_token_bytes,
                    likely=encoding_mistakes(special, gpt2_ids(), {special: 50256}))
    for k in range(1, len(special)):
        chunks = [special[:k], special[k:]]
        what = f"list(encode_iterable({chunks!r}))"
        actual = as_ids(attempt(what, lambda: list(tok.encode_iterable(iter(chunks)))), "encode_iterable")
        if actual != [50256]:
            fail(MODULE, f"{what} is {actual}, expected [50256] (encode gives it for the whole text).",
                 cause=SENTENCES["special-across"])


class ReadTooFar(Exception):
    """Raised by the endless text below when encode_iterable reads far ahead without yielding."""


def test_encode_iterable_is_lazy():
    enc = gpt2_oracle()
    tok = my_gpt2()
    limit = 1000
    read = itertools.count()

    def endless():
        while True:
            if next(read) >= limit:
                raise ReadTooFar
            yield "Hello world, again and again. "

    try:
        first = list(itertools.islice(tok.encode_iterable(endless()), 20))
    except ReadTooFar:
        fail(MODULE, f"list(islice(encode_iterable(an endless iterator), 20)) read {limit} chunks and wanted more.",
             cause=SENTENCES["not-lazy"].format(n=limit))
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001
        fail(MODULE, f"encode_iterable(an endless iterator) raised {type(error).__name__}: {error}.")
    expected = enc.encode("Hello world, again and again. " * 10)[:20]
    expect_same_ids(as_ids(first, "encode_iterable"), expected, "the first 20 ids of encode_iterable(an endless "
                    "iterator of 'Hello world, again and again. ')", enc.decode_single_token_bytes)
