"""11 bpe: byte-pair encoding, the tokenizer of GPT-2 (and, with other patterns, of most LLMs).

Text is bytes (UTF-8). BPE starts from the 256 single bytes and learns merges:
the pair of adjacent tokens that occurs most often in the training text becomes
one new token, again and again, until the vocabulary has vocab_size entries.

    vocab:  {0: b"\\x00", ..., 255: b"\\xff", 256: first merge, 257: second, ..., specials}
    merges: [(b"t", b"h"), (b" ", b"th"), ...]      in the order they were learned

Training, step by step:
    1. cut the special tokens (e.g. "<|endoftext|>") out of the text: they never
       take part in training, and pairs never reach across them;
    2. split each remaining part into pre-tokens with GPT2_SPLIT_PATTERN
       ("Hello world's" -> "Hello", " world", "'s"); pairs are counted inside a
       pre-token only, at every adjacent position (b"aaa" holds (a, a) twice),
       each pre-token weighted by how often it occurs;
    3. merge the most frequent pair; ties go to the greater pair, comparing
       (left bytes, right bytes) as a tuple; a merge replaces the pair left to
       right without overlap (b"aaa" -> [b"aa", b"a"]); repeat;
    4. stop at vocab_size (256 + merges + specials), or earlier when no pair is left.

Encoding (tiktoken's rule): cut out the special tokens (the longest first where
two overlap), split the rest into pre-tokens, and for each pre-token: if its
bytes are a token, that id; else start from its single bytes and merge the
leftmost adjacent pair whose concatenation has the lowest id in the vocab,
until no adjacent pair's concatenation is in the vocab. Decoding joins the bytes
and reads them as UTF-8 (invalid bytes become U+FFFD).

Speed: count the pairs once, then after each merge update the counts of the
pre-tokens that held the merged pair only; and encode each distinct pre-token
once (a cache). Then Tiny Shakespeare trains to 2048 tokens in seconds.
"""

import json
from collections import Counter, defaultdict

import regex  # not `re`: the pattern needs \p{L} (any letter) and possessive ++

# tiktoken's "gpt2" pattern: contractions, letter runs, number runs, other symbols (each with
# one optional leading space), then whitespace: a run at the end of the text, a run that
# leaves its last space to the word after it, and a single whitespace character.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
PRETOKEN = regex.compile(GPT2_SPLIT_PATTERN)


def gpt2_bytes_to_unicode() -> dict[int, str]:
    """GPT-2's files write each byte as a printable character: {byte: character} (given, not an exercise).

    Printable Latin-1 bytes stand for themselves; the others (space, control bytes, ...) are
    shifted to characters from 256 on, in byte order: b" " is "Ġ", b"\\n" is "Ċ".
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    table, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


def valid_unicode(text: str) -> str:
    """text as tiktoken reads it (given): a surrogate pair becomes its character, a lone surrogate U+FFFD.

    A Python str may hold surrogates (from "\\ud83d\\ude00" or a bad decode), which UTF-8 cannot encode.
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def special_alternation(special_tokens) -> str:
    """A regex that matches any of the special tokens, the longest where two start at one place: "(<\\|a\\|>|...)"."""
    # TODO: the special tokens, longest first, each regex.escape'd, joined by "|", in a group "(...)"
    #       (a regex takes the first alternative that matches; "|" itself must be escaped)
    raise NotImplementedError("11 bpe: special_alternation — the special tokens, longest first, each regex.escape'd, joined by \"|\", in a group \"(...)\"")


def pretokenize(text: str, special_tokens=()) -> list[str]:
    """The pieces of text, in order: each special token whole, and the pre-tokens of the text between them.

    "Hi there<|endoftext|>!" -> ["Hi", " there", "<|endoftext|>", "!"]. Where two special tokens
    overlap at one place, the longer is cut out ("<|a|><|b|>" before "<|a|>"). "".join(pieces) == text.
    """
    # TODO: cut the special tokens out first, then split every other part with PRETOKEN.findall
    #       (regex.split(special_alternation(special_tokens), text) keeps the specials: the group captures them)
    raise NotImplementedError("11 bpe: pretokenize — cut the special tokens out first, then split every other part with PRETOKEN.findall")


def merge_pair(word: list[bytes], pair: tuple[bytes, bytes]) -> list[bytes]:
    """word with each occurrence of pair, left to right and without overlap, replaced by the merged token."""
    # TODO: walk left to right; where word[i], word[i + 1] is the pair, emit the two joined and skip both
    raise NotImplementedError("11 bpe: merge_pair — walk left to right; where word[i], word[i + 1] is the pair, emit the two joined and skip both")


def train_bpe(text: str, vocab_size: int, special_tokens=()) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Byte-level BPE trained on text: (vocab {id: bytes}, merges [(left, right), ...] in order).

    vocab: the 256 single bytes (id = byte value), one id per merge in order, then the special
    tokens. ValueError when vocab_size < 256 + len(special_tokens).
    """
    # TODO: learn vocab_size - 256 - len(special_tokens) merges (ValueError if that is negative)
    #       count the pre-tokens (pretokenize, leaving the special tokens out)
    #       each distinct pre-token as a list of single bytes; count its adjacent pairs, weighted
    #       repeat: merge the most frequent pair (ties: the greater pair) in every pre-token holding it
    #       vocab: 256 bytes, then one id per merge, then the special tokens
    raise NotImplementedError("11 bpe: train_bpe — learn vocab_size - 256 - len(special_tokens) merges (ValueError if that is negative)")


class Tokenizer:
    """Encodes text to ids and decodes ids to text with a byte-level BPE vocabulary.

    vocab {id: bytes}, merges [(left, right), ...], special_tokens: strings cut out of the text
    before anything else, each one id (its id in vocab; a new id after the vocab's largest if absent).
    """

    def __init__(self, vocab: dict[int, bytes], merges, special_tokens=()):
        # TODO: keep vocab, merges and the special tokens, and a map bytes -> id for encoding
        #       (where two ids share bytes, the lower); give each special token missing from vocab a new id
        raise NotImplementedError("11 bpe: Tokenizer.__init__ — keep vocab, merges and the special tokens, and a map bytes -> id for encoding")

    @classmethod
    def from_tiktoken_files(cls, vocab_bpe, encoder_json) -> "Tokenizer":
        """GPT-2's tokenizer from its published files, with "<|endoftext|>" (id 50256) as its special token.

        encoder.json maps each token, written with gpt2_bytes_to_unicode's characters, to its id;
        vocab.bpe holds a version line, then one merge per line: the two tokens, separated by a space.
        """
        # TODO: vocab from encoder.json, merges from the lines of vocab.bpe after the first
        #       (each written token back to bytes with the inverse of gpt2_bytes_to_unicode)
        raise NotImplementedError("11 bpe: Tokenizer.from_tiktoken_files — vocab from encoder.json, merges from the lines of vocab.bpe after the first")

    def bpe(self, pretoken: bytes) -> list[int]:
        """The ids of one pre-token's bytes, by tiktoken's rule (see the module docstring)."""
        # TODO: a pre-token that is a token is one id; else merge, starting from its single bytes:
        #       the leftmost adjacent pair whose concatenation has the lowest id, until none is in the vocab
        raise NotImplementedError("11 bpe: Tokenizer.bpe — a pre-token that is a token is one id; else merge, starting from its single bytes")

    def encode_piece(self, piece: str) -> list[int]:
        """The ids of one piece of pretokenize(): a special token's id, or a pre-token's bpe (cached)."""
        # TODO: a special token is its one id; a pre-token's UTF-8 bytes go through bpe, once (keep a cache)
        raise NotImplementedError("11 bpe: Tokenizer.encode_piece — a special token is its one id; a pre-token's UTF-8 bytes go through bpe, once (keep a cache)")

    def encode(self, text: str) -> list[int]:
        """The ids of text: special tokens cut out first, the rest split by GPT2_SPLIT_PATTERN and merged."""
        # TODO: every piece of pretokenize(valid_unicode(text), ...) through encode_piece
        raise NotImplementedError("11 bpe: Tokenizer.encode — every piece of pretokenize(valid_unicode(text), ...) through encode_piece")

    def decode(self, ids) -> str:
        """The text of ids: their bytes joined and read as UTF-8, invalid bytes as U+FFFD."""
        # TODO: join the bytes of the ids; decode with errors="replace"
        raise NotImplementedError("11 bpe: Tokenizer.decode — join the bytes of the ids; decode with errors=\"replace\"")

    def encode_iterable(self, chunks):
        """Yield the ids of "".join(chunks), lazily: the ids of each chunk's text as soon as they are certain.

        The end of the text read so far may still change when the next chunk comes, and is held back:
        a special token may be starting ("<|endo" + "ftext|>"), and the last two pre-tokens may still
        grow ("hel" + "lo"; "we'l" + "l": "'" and "l" become "'ll").
        """
        # TODO: after each chunk, encode the pieces of the text read that are certain (certain_pieces)
        #       and keep the rest for the next chunk; at the end, encode what is left
        raise NotImplementedError("11 bpe: Tokenizer.encode_iterable — after each chunk, encode the pieces of the text read that are certain (certain_pieces)")

    def certain_pieces(self, text: str) -> tuple[list[str], str]:
        """(the pieces at the start of text that no text after it can change, the rest of text).

        A special token may start in the last (longest special token - 1) characters; one that starts
        before them is certain, and so is everything before it. The ordinary text after the last
        certain special token, up to those characters, is certain but for its last two pre-tokens.
        Cut the text only there: the end of a text changes how its last pre-tokens split
        ("\\xa0\\xa0" at the end of a text is one pre-token, followed by "8" it is two).
        """
        # TODO: hold back where a special token may be starting and the last two pre-tokens before it
        #       (the end of the last special token starting before that, then the ordinary text's pre-tokens)
        raise NotImplementedError("11 bpe: Tokenizer.certain_pieces — hold back where a special token may be starting and the last two pre-tokens before it")
