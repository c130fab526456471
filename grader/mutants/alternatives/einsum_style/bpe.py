"""11 bpe, alternative implementation A (einsum_style): tokens as integer ids, a trainer with a max-heap of
pair counts (stale entries skipped when popped) and per-pair sets of the words holding them, special
tokens found with str.find, encoding by min over (id, position) with a cache, and encode_iterable that
holds back a fixed tail of characters plus the last two pre-tokens before it."""

import heapq
import json
from collections import defaultdict

import regex

GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
_SPLIT = regex.compile(GPT2_SPLIT_PATTERN)


def gpt2_bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _next_special(text, start, specials):
    """(position, special) of the leftmost special token at or after start (the longest there), or None."""
    found = None
    for s in specials:
        i = text.find(s, start)
        if i >= 0 and (found is None or i < found[0] or (i == found[0] and len(s) > len(found[1]))):
            found = (i, s)
    return found


def _split(text, specials):
    """Alternating parts: ordinary text, special, ordinary text, ... (the specials at odd places)."""
    parts, start = [], 0
    while True:
        hit = _next_special(text, start, specials) if specials else None
        if hit is None:
            parts.append(text[start:])
            return parts
        parts += [text[start:hit[0]], hit[1]]
        start = hit[0] + len(hit[1])


class _Entry:
    """A heap entry: the most frequent pair first, then the greater (left bytes, right bytes)."""

    __slots__ = ("count", "key", "pair")

    def __init__(self, count, key, pair):
        self.count, self.key, self.pair = count, key, pair

    def __lt__(self, other):
        return (self.count, self.key) > (other.count, other.key)


def train_bpe(text, vocab_size, special_tokens=()):
    specials = list(special_tokens)
    if vocab_size - 256 - len(specials) < 0:
        raise ValueError(f"vocab_size {vocab_size} < 256 + {len(specials)} special tokens")
    vocab = {i: bytes([i]) for i in range(256)}
    counts_of_words = defaultdict(int)
    for k, part in enumerate(_split(text, specials)):
        if k % 2 == 0:
            for piece in _SPLIT.findall(part):
                counts_of_words[piece] += 1
    words = [list(piece.encode("utf-8")) for piece in counts_of_words]
    freq = list(counts_of_words.values())
    counts = defaultdict(int)
    where = defaultdict(set)
    for w, word in enumerate(words):
        for pair in zip(word, word[1:]):
            counts[pair] += freq[w]
            where[pair].add(w)
    heap = [_Entry(c, (vocab[a], vocab[b]), (a, b)) for (a, b), c in counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(merges) < vocab_size - 256 - len(specials) and heap:
        entry = heapq.heappop(heap)
        if counts.get(entry.pair, 0) != entry.count or entry.count <= 0:
            continue  # stale
        a, b = entry.pair
        new = len(vocab)
        vocab[new] = vocab[a] + vocab[b]
        merges.append((vocab[a], vocab[b]))
        touched = set()
        for w in where.pop(entry.pair, ()):
            word = words[w]
            for pair in zip(word, word[1:]):
                counts[pair] -= freq[w]
                touched.add(pair)
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            words[w] = out
            for pair in zip(out, out[1:]):
                counts[pair] += freq[w]
                where[pair].add(w)
                touched.add(pair)
        for pair in touched:
            if counts[pair] > 0:
                heapq.heappush(heap, _Entry(counts[pair], (vocab[pair[0]], vocab[pair[1]]), pair))
            else:
                del counts[pair]
    for s in specials:
        vocab[len(vocab)] = s.encode("utf-8")
    return vocab, merges


class Tokenizer:
    def __init__(self, vocab, merges, special_tokens=()):
        self.vocab = dict(vocab)
        self.merges = [tuple(m) for m in merges]
        self.special_tokens = list(special_tokens)
        self.rank = {}
        for i in sorted(self.vocab, reverse=True):
            self.rank[self.vocab[i]] = i
        self.special = {}
        for s in self.special_tokens:
            b = s.encode("utf-8")
            if b not in self.rank:
                self.rank[b] = max(self.vocab) + 1
                self.vocab[self.rank[b]] = b
            self.special[s] = self.rank[b]
        self._cache = {}

    @classmethod
    def from_tiktoken_files(cls, vocab_bpe, encoder_json):
        decoder = {c: b for b, c in gpt2_bytes_to_unicode().items()}

        def raw(token):
            return bytes(decoder[c] for c in token)

        with open(encoder_json, encoding="utf-8") as f:
            vocab = {i: raw(t) for t, i in json.load(f).items()}
        with open(vocab_bpe, encoding="utf-8") as f:
            rows = [r for r in f.read().split("\n")[1:] if r]
        return cls(vocab, [tuple(raw(t) for t in r.split()) for r in rows], ("<|endoftext|>",))

    def _word(self, piece):
        if piece in self.special:
            return [self.special[piece]]
        if piece in self._cache:
            return self._cache[piece]
        data = piece.encode("utf-8")
        if data in self.rank:
            result = [self.rank[data]]
        else:
            parts = [data[i:i + 1] for i in range(len(data))]
            while len(parts) > 1:
                r, i = min((self.rank.get(parts[i] + parts[i + 1], float("inf")), i) for i in range(len(parts) - 1))
                if r == float("inf"):
                    break
                parts[i:i + 2] = [parts[i] + parts[i + 1]]
            result = [self.rank[p] for p in parts]
        self._cache[piece] = result
        return result

    def _pieces(self, text):
        for k, part in enumerate(_split(text, self.special_tokens)):
            if k % 2:
                yield part
            else:
                yield from _SPLIT.findall(part)

    def encode(self, text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return [i for piece in self._pieces(text) for i in self._word(piece)]

    def decode(self, ids):
        data = bytearray()
        for i in ids:
            data += self.vocab[i]
        return data.decode("utf-8", "replace")

    def encode_iterable(self, chunks):
        tail = max((len(s) for s in self.special_tokens), default=1) - 1
        text = ""
        for chunk in chunks:
            text += chunk.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            cut = len(text) - tail
            parts = _split(text, self.special_tokens)
            pos, done = 0, 0
            out = []
            for k, part in enumerate(parts):
                if k % 2:  # a special token
                    if pos >= cut:
                        break
                    out.append(part)
                    done = pos + len(part)
                elif pos + len(part) >= cut or k == len(parts) - 1:
                    words = _SPLIT.findall(text, pos, max(pos, cut))
                    sure = words[:-2]
                    out += sure
                    done = pos + sum(map(len, sure))
                    break
                else:
                    out += _SPLIT.findall(part)
                    done = pos + len(part)
                pos += len(part)
            for piece in out:
                yield from self._word(piece)
            text = text[done:]
        for piece in self._pieces(text):
            yield from self._word(piece)
