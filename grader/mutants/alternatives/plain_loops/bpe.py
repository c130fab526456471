"""11 bpe, alternative implementation B (plain_loops): the straightforward quadratic trainer (every pair
recounted at every merge, over pre-tokens kept as tuples of bytes), special tokens found by scanning
the text position by position, encoding without a cache, and encode_iterable walking the text's
segments (special tokens and ordinary runs) to find what is certain."""

import json

import regex

GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


def gpt2_bytes_to_unicode():
    keep = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    table = {}
    n = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return table


def fix_surrogates(text):
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def segments(text, specials):
    """[(is_special, text, start)] in order: the special tokens (leftmost, then longest) and the runs between."""
    out = []
    run_start = 0
    i = 0
    ordered = sorted(specials, key=len, reverse=True)
    while i < len(text):
        hit = None
        for s in ordered:
            if s and text.startswith(s, i):
                hit = s
                break
        if hit is None:
            i += 1
            continue
        if run_start < i:
            out.append((False, text[run_start:i], run_start))
        out.append((True, hit, i))
        i += len(hit)
        run_start = i
    if run_start < len(text):
        out.append((False, text[run_start:], run_start))
    return out


def pieces_of(text, specials):
    pieces = []
    for is_special, part, _ in segments(text, specials):
        if is_special:
            pieces.append(part)
        else:
            pieces += regex.findall(GPT2_SPLIT_PATTERN, part)
    return pieces


def train_bpe(text, vocab_size, special_tokens=()):
    special_tokens = list(special_tokens)
    if vocab_size < 256 + len(special_tokens):
        raise ValueError(f"vocab_size must be at least {256 + len(special_tokens)}")
    words = {}
    for piece in pieces_of(text, special_tokens):
        if piece in special_tokens:
            continue
        key = tuple(bytes([b]) for b in piece.encode("utf-8"))
        words[key] = words.get(key, 0) + 1
    merges = []
    while len(merges) < vocab_size - 256 - len(special_tokens):
        counts = {}
        for word, n in words.items():
            for j in range(len(word) - 1):
                pair = (word[j], word[j + 1])
                counts[pair] = counts.get(pair, 0) + n
        if not counts:
            break
        best = None
        for pair, n in counts.items():
            if best is None or n > counts[best] or (n == counts[best] and pair > best):
                best = pair
        merges.append(best)
        new_words = {}
        for word, n in words.items():
            out = []
            j = 0
            while j < len(word):
                if j < len(word) - 1 and word[j] == best[0] and word[j + 1] == best[1]:
                    out.append(best[0] + best[1])
                    j += 2
                else:
                    out.append(word[j])
                    j += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + n
        words = new_words
    vocab = {}
    for b in range(256):
        vocab[b] = bytes([b])
    for k in range(len(merges)):
        vocab[256 + k] = merges[k][0] + merges[k][1]
    for j in range(len(special_tokens)):
        vocab[256 + len(merges) + j] = special_tokens[j].encode("utf-8")
    return vocab, merges


class Tokenizer:
    def __init__(self, vocab, merges, special_tokens=()):
        self.vocab = dict(vocab)
        self.merges = list(merges)
        self.special_tokens = list(special_tokens)
        self.lookup = {}
        for i in sorted(self.vocab):
            if self.vocab[i] not in self.lookup:
                self.lookup[self.vocab[i]] = i
        self.special_ids = {}
        for s in self.special_tokens:
            b = s.encode("utf-8")
            if b not in self.lookup:
                new_id = max(self.vocab) + 1
                self.vocab[new_id] = b
                self.lookup[b] = new_id
            self.special_ids[s] = self.lookup[b]

    @classmethod
    def from_tiktoken_files(cls, vocab_bpe, encoder_json):
        to_byte = {}
        for b, c in gpt2_bytes_to_unicode().items():
            to_byte[c] = b
        with open(encoder_json, encoding="utf-8") as f:
            encoder = json.load(f)
        vocab = {}
        for written, i in encoder.items():
            vocab[i] = bytes([to_byte[c] for c in written])
        merges = []
        with open(vocab_bpe, encoding="utf-8") as f:
            for line in f.read().splitlines()[1:]:
                if line.strip():
                    a, b = line.split(" ")
                    merges.append((bytes([to_byte[c] for c in a]), bytes([to_byte[c] for c in b])))
        return cls(vocab, merges, ["<|endoftext|>"])

    def _bpe(self, data):
        if data in self.lookup:
            return [self.lookup[data]]
        parts = [bytes([b]) for b in data]
        while True:
            best_j, best_id = -1, None
            for j in range(len(parts) - 1):
                i = self.lookup.get(parts[j] + parts[j + 1])
                if i is not None and (best_id is None or i < best_id):
                    best_j, best_id = j, i
            if best_j < 0:
                break
            parts = parts[:best_j] + [parts[best_j] + parts[best_j + 1]] + parts[best_j + 2:]
        return [self.lookup[p] for p in parts]

    def _ids(self, piece):
        if piece in self.special_ids:
            return [self.special_ids[piece]]
        return self._bpe(piece.encode("utf-8"))

    def encode(self, text):
        out = []
        for piece in pieces_of(fix_surrogates(text), self.special_tokens):
            out += self._ids(piece)
        return out

    def decode(self, ids):
        return b"".join([self.vocab[i] for i in ids]).decode("utf-8", errors="replace")

    def encode_iterable(self, chunks):
        buf = ""
        longest = max([len(s) for s in self.special_tokens] + [1])
        for chunk in chunks:
            buf += fix_surrogates(chunk)
            limit = len(buf) - (longest - 1)  # a special token may start at limit or later
            ready, used = [], 0
            for is_special, part, start in segments(buf, self.special_tokens):
                if is_special:
                    if start >= limit:
                        break
                    ready.append(part)
                    used = start + len(part)
                elif start + len(part) < limit:  # a run that a certain special token ends
                    ready += regex.findall(GPT2_SPLIT_PATTERN, part)
                    used = start + len(part)
                else:  # the run may go on: its last two pre-tokens before limit may still change
                    found = regex.findall(GPT2_SPLIT_PATTERN, buf[start:max(start, limit)])
                    sure = found[:-2] if len(found) > 2 else []
                    ready += sure
                    used = start + sum(len(p) for p in sure)
                    break
            for piece in ready:
                for i in self._ids(piece):
                    yield i
            buf = buf[used:]
        for piece in pieces_of(buf, self.special_tokens):
            for i in self._ids(piece):
                yield i
