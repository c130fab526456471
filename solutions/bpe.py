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
    ### BEGIN SOLUTION
    ### TODO: the special tokens, longest first, each regex.escape'd, joined by "|", in a group "(...)"
    ### TODO: (a regex takes the first alternative that matches; "|" itself must be escaped)
    longest_first = sorted(special_tokens, key=len, reverse=True)
    return "(" + "|".join(regex.escape(token) for token in longest_first) + ")"
    ### END SOLUTION


def pretokenize(text: str, special_tokens=()) -> list[str]:
    """The pieces of text, in order: each special token whole, and the pre-tokens of the text between them.

    "Hi there<|endoftext|>!" -> ["Hi", " there", "<|endoftext|>", "!"]. Where two special tokens
    overlap at one place, the longer is cut out ("<|a|><|b|>" before "<|a|>"). "".join(pieces) == text.
    """
    ### BEGIN SOLUTION
    ### TODO: cut the special tokens out first, then split every other part with PRETOKEN.findall
    ### TODO: (regex.split(special_alternation(special_tokens), text) keeps the specials: the group captures them)
    parts = regex.split(special_alternation(special_tokens), text) if special_tokens else [text]
    pieces = []
    for part in parts:
        if part in special_tokens:
            pieces.append(part)
        else:
            pieces.extend(PRETOKEN.findall(part))
    return pieces
    ### END SOLUTION


def merge_pair(word: list[bytes], pair: tuple[bytes, bytes]) -> list[bytes]:
    """word with each occurrence of pair, left to right and without overlap, replaced by the merged token."""
    ### BEGIN SOLUTION
    ### TODO: walk left to right; where word[i], word[i + 1] is the pair, emit the two joined and skip both
    merged, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            merged.append(word[i] + word[i + 1])
            i += 2
        else:
            merged.append(word[i])
            i += 1
    return merged
    ### END SOLUTION


def train_bpe(text: str, vocab_size: int, special_tokens=()) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Byte-level BPE trained on text: (vocab {id: bytes}, merges [(left, right), ...] in order).

    vocab: the 256 single bytes (id = byte value), one id per merge in order, then the special
    tokens. ValueError when vocab_size < 256 + len(special_tokens).
    """
    ### BEGIN SOLUTION
    ### TODO: learn vocab_size - 256 - len(special_tokens) merges (ValueError if that is negative)
    ### TODO: count the pre-tokens (pretokenize, leaving the special tokens out)
    ### TODO: each distinct pre-token as a list of single bytes; count its adjacent pairs, weighted
    ### TODO: repeat: merge the most frequent pair (ties: the greater pair) in every pre-token holding it
    ### TODO: vocab: 256 bytes, then one id per merge, then the special tokens
    if vocab_size < 256 + len(special_tokens):
        raise ValueError(f"vocab_size={vocab_size} is too small: the 256 bytes and {len(special_tokens)} special "
                         f"token(s) need at least {256 + len(special_tokens)}.")
    num_merges = vocab_size - 256 - len(special_tokens)

    pretoken_counts = Counter(piece for piece in pretokenize(text, special_tokens) if piece not in special_tokens)
    words = [[bytes([b]) for b in pretoken.encode("utf-8")] for pretoken in pretoken_counts]
    word_counts = list(pretoken_counts.values())

    pair_counts = Counter()  # pair -> occurrences in the whole text
    holders = defaultdict(set)  # pair -> indices of the words that hold it (or held it once)

    def count_pairs(i, sign):
        """Add (sign=+1) or take away (sign=-1) the pairs of words[i], word_counts[i] times each."""
        word = words[i]
        for pair in zip(word, word[1:]):
            pair_counts[pair] += sign * word_counts[i]
            if sign > 0:
                holders[pair].add(i)
            elif pair_counts[pair] == 0:
                del pair_counts[pair]

    for i in range(len(words)):
        count_pairs(i, +1)

    merges = []
    while len(merges) < num_merges and pair_counts:
        top = max(pair_counts.values())
        best = max(pair for pair, count in pair_counts.items() if count == top)  # a tie: the greater pair
        merges.append(best)
        for i in holders.pop(best):
            count_pairs(i, -1)
            words[i] = merge_pair(words[i], best)
            count_pairs(i, +1)

    vocab = {b: bytes([b]) for b in range(256)}
    for left, right in merges:
        vocab[len(vocab)] = left + right
    for token in special_tokens:
        vocab[len(vocab)] = token.encode("utf-8")
    return vocab, merges
    ### END SOLUTION


class Tokenizer:
    """Encodes text to ids and decodes ids to text with a byte-level BPE vocabulary.

    vocab {id: bytes}, merges [(left, right), ...], special_tokens: strings cut out of the text
    before anything else, each one id (its id in vocab; a new id after the vocab's largest if absent).
    """

    def __init__(self, vocab: dict[int, bytes], merges, special_tokens=()):
        ### BEGIN SOLUTION
        ### TODO: keep vocab, merges and the special tokens, and a map bytes -> id for encoding
        ### TODO: (where two ids share bytes, the lower); give each special token missing from vocab a new id
        self.vocab = dict(vocab)
        self.merges = list(merges)
        self.special_tokens = list(special_tokens)
        self.ids = {}  # bytes -> id
        for token_id, token in sorted(self.vocab.items(), reverse=True):
            self.ids[token] = token_id  # the lowest id wins where two share bytes
        self.special_ids = {}
        for special in self.special_tokens:
            token = special.encode("utf-8")
            if token not in self.ids:
                self.ids[token] = max(self.vocab) + 1
                self.vocab[self.ids[token]] = token
            self.special_ids[special] = self.ids[token]
        self.cache = {}  # pre-token -> its ids
        ### END SOLUTION

    @classmethod
    def from_tiktoken_files(cls, vocab_bpe, encoder_json) -> "Tokenizer":
        """GPT-2's tokenizer from its published files, with "<|endoftext|>" (id 50256) as its special token.

        encoder.json maps each token, written with gpt2_bytes_to_unicode's characters, to its id;
        vocab.bpe holds a version line, then one merge per line: the two tokens, separated by a space.
        """
        ### BEGIN SOLUTION
        ### TODO: vocab from encoder.json, merges from the lines of vocab.bpe after the first
        ### TODO: (each written token back to bytes with the inverse of gpt2_bytes_to_unicode)
        byte_of = {char: byte for byte, char in gpt2_bytes_to_unicode().items()}

        def to_bytes(written: str) -> bytes:
            return bytes(byte_of[char] for char in written)

        with open(encoder_json, encoding="utf-8") as f:
            vocab = {token_id: to_bytes(written) for written, token_id in json.load(f).items()}
        with open(vocab_bpe, encoding="utf-8") as f:
            lines = f.read().split("\n")[1:]  # the first line is "#version: 0.2"
        merges = [tuple(to_bytes(written) for written in line.split()) for line in lines if line]
        return cls(vocab, merges, special_tokens=["<|endoftext|>"])
        ### END SOLUTION

    def bpe(self, pretoken: bytes) -> list[int]:
        """The ids of one pre-token's bytes, by tiktoken's rule (see the module docstring)."""
        ### BEGIN SOLUTION
        ### TODO: a pre-token that is a token is one id; else merge, starting from its single bytes:
        ### TODO: the leftmost adjacent pair whose concatenation has the lowest id, until none is in the vocab
        if pretoken in self.ids:
            return [self.ids[pretoken]]
        parts = [bytes([b]) for b in pretoken]
        while len(parts) > 1:
            ranks = [self.ids.get(left + right, float("inf")) for left, right in zip(parts, parts[1:])]
            best = ranks.index(min(ranks))  # the leftmost pair with the lowest id
            if ranks[best] == float("inf"):
                break
            parts[best : best + 2] = [parts[best] + parts[best + 1]]
        return [self.ids[part] for part in parts]
        ### END SOLUTION

    def encode_piece(self, piece: str) -> list[int]:
        """The ids of one piece of pretokenize(): a special token's id, or a pre-token's bpe (cached)."""
        ### BEGIN SOLUTION
        ### TODO: a special token is its one id; a pre-token's UTF-8 bytes go through bpe, once (keep a cache)
        if piece in self.special_ids:
            return [self.special_ids[piece]]
        if piece not in self.cache:
            self.cache[piece] = self.bpe(piece.encode("utf-8"))
        return self.cache[piece]
        ### END SOLUTION

    def encode(self, text: str) -> list[int]:
        """The ids of text: special tokens cut out first, the rest split by GPT2_SPLIT_PATTERN and merged."""
        ### BEGIN SOLUTION
        ### TODO: every piece of pretokenize(valid_unicode(text), ...) through encode_piece
        ids = []
        for piece in pretokenize(valid_unicode(text), self.special_tokens):
            ids.extend(self.encode_piece(piece))
        return ids
        ### END SOLUTION

    def decode(self, ids) -> str:
        """The text of ids: their bytes joined and read as UTF-8, invalid bytes as U+FFFD."""
        ### BEGIN SOLUTION
        ### TODO: join the bytes of the ids; decode with errors="replace"
        return b"".join(self.vocab[int(i)] for i in ids).decode("utf-8", errors="replace")
        ### END SOLUTION

    def encode_iterable(self, chunks):
        """Yield the ids of "".join(chunks), lazily: the ids of each chunk's text as soon as they are certain.

        The end of the text read so far may still change when the next chunk comes, and is held back:
        a special token may be starting ("<|endo" + "ftext|>"), and the last two pre-tokens may still
        grow ("hel" + "lo"; "we'l" + "l": "'" and "l" become "'ll").
        """
        ### BEGIN SOLUTION
        ### TODO: after each chunk, encode the pieces of the text read that are certain (certain_pieces)
        ### TODO: and keep the rest for the next chunk; at the end, encode what is left
        pending = ""
        for chunk in chunks:
            pending += valid_unicode(chunk)
            pieces, pending = self.certain_pieces(pending)
            for piece in pieces:
                yield from self.encode_piece(piece)
        for piece in pretokenize(pending, self.special_tokens):
            yield from self.encode_piece(piece)
        ### END SOLUTION

    def certain_pieces(self, text: str) -> tuple[list[str], str]:
        """(the pieces at the start of text that no text after it can change, the rest of text).

        A special token may start in the last (longest special token - 1) characters; one that starts
        before them is certain, and so is everything before it. The ordinary text after the last
        certain special token, up to those characters, is certain but for its last two pre-tokens.
        Cut the text only there: the end of a text changes how its last pre-tokens split
        ("\\xa0\\xa0" at the end of a text is one pre-token, followed by "8" it is two).
        """
        ### BEGIN SOLUTION
        ### TODO: hold back where a special token may be starting and the last two pre-tokens before it
        ### TODO: (the end of the last special token starting before that, then the ordinary text's pre-tokens)
        longest = max((len(token) for token in self.special_tokens), default=1)
        unsure = len(text) - longest + 1  # from here on a special token may be starting
        done = 0  # the end of the last special token that starts before `unsure`
        if self.special_tokens:
            for match in regex.finditer(special_alternation(self.special_tokens), text):
                if match.start() >= unsure:
                    break
                done = match.end()
        ordinary = PRETOKEN.findall(text, done, max(done, unsure))
        certain = ordinary[:-2]  # the last two pre-tokens may still grow
        rest = done + sum(len(piece) for piece in certain)
        return pretokenize(text[:done], self.special_tokens) + certain, text[rest:]
        ### END SOLUTION
