"""A synthetic corpus whose entropy is known exactly.

Text made of 30 characters by a fixed random source with simple rules, so that
a model trained on it can be judged against the best possible loss:

    after a vowel        one of 3 consonants (3 per vowel)
    after a consonant    one of 2 vowels, or one word end (" ", "," or ".")
    after " " or "\\n"    one of 3 consonants
    after ","            " "
    after "."            " " or "\\n"
    no character ever follows itself

Which successors each character has is drawn once from a seeded generator
(SUCCESSORS, the rules, `allowed`). HOW LIKELY each allowed successor is depends
on the two previous characters (PROBS[(a, b)] over SUCCESSORS[b]): an order-2
Markov source. So a model that looks only at the last character cannot reach
the best loss; it must also use the one before it (attention to the past).

The best loss any model can reach is the source's entropy rate, in nats/token,
computed exactly from the stationary distribution pi of the pair (a, b):

    H = sum over pairs (a, b) of pi(a, b) * H(PROBS[(a, b)])

and BIGRAM_ENTROPY = H(next | last character only) is what a model that ignores
older context gets stuck at. Cross-entropy loss on this corpus below H means the
model sees the token it is predicting (the future).

    ids = sample(100_000, seed=0)     # numpy uint16, stationary from the first token
    decode(ids[:80])                  # readable text
    violations(ids)                   # [] : positions t where ids[t] may not follow ids[t - 1]
"""

import numpy as np

VOWELS = "aeiou"
CONSONANTS = "bcdfghjklmnpqrstvwxyz"
SYMBOLS = VOWELS + CONSONANTS + " ,.\n"  # token id = index in SYMBOLS
VOCAB_SIZE = len(SYMBOLS)  # 30
ID = {ch: i for i, ch in enumerate(SYMBOLS)}
SEED = 1  # the seed of the rules and probabilities; part of the corpus's definition


def _make_rules(rng):
    """SUCCESSORS: id -> tuple of the ids allowed to follow it."""
    consonants = list(rng.permutation(list(CONSONANTS)))  # 21 = 7 groups of 3: each consonant has one group
    successors = {}
    for i, ch in enumerate(VOWELS + " \n"):
        successors[ch] = consonants[3 * i : 3 * i + 3]
    for ch in CONSONANTS:
        successors[ch] = list(rng.choice(list(VOWELS), 2, replace=False)) + [rng.choice(list(" ,."))]
    successors[","] = [" "]
    successors["."] = [" ", "\n"]
    return {ID[ch]: tuple(sorted(ID[s] for s in nexts)) for ch, nexts in successors.items()}


def _make_probs(rng, successors):
    """PROBS: (a, b) with b allowed after a -> probabilities of SUCCESSORS[b], in that order."""
    return {(a, b): rng.dirichlet(np.full(len(successors[b]), 0.5)) for a in successors for b in successors[a]}


def _stationary(probs, successors):
    """pi over the pair states (a, b), from the pair chain's transition matrix (must be irreducible, aperiodic)."""
    states = list(probs)
    index = {s: i for i, s in enumerate(states)}
    P = np.zeros((len(states), len(states)))
    for (a, b), p in probs.items():
        for c, q in zip(successors[b], p):
            P[index[(a, b)], index[(b, c)]] = q
    reach = np.linalg.matrix_power(P, 4 * len(states))
    assert (reach > 0).all(), "the pair chain must be irreducible and aperiodic; pick another SEED"
    values, vectors = np.linalg.eig(P.T)
    pi = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
    return dict(zip(states, pi / pi.sum()))


def _entropy(p):
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


_rng = np.random.default_rng(SEED)
SUCCESSORS = _make_rules(_rng)
PROBS = _make_probs(_rng, SUCCESSORS)
PI = _stationary(PROBS, SUCCESSORS)
ENTROPY_RATE = sum(PI[s] * _entropy(p) for s, p in PROBS.items())  # nats/token, exact


def _bigram_entropy():
    """H(next | last character): mix the pair rows by pi(a | b)."""
    total = 0.0
    for b in SUCCESSORS:
        weights = {a: PI[(a, b)] for a in SUCCESSORS if (a, b) in PI}
        mass = sum(weights.values())
        mixed = sum(w * PROBS[(a, b)] for a, w in weights.items()) / mass
        total += mass * _entropy(mixed)
    return total


BIGRAM_ENTROPY = _bigram_entropy()


def allowed(prev, nxt) -> bool:
    """Whether token id nxt may follow token id prev (the rules; probabilities aside)."""
    return int(nxt) in SUCCESSORS[int(prev)]


def violations(ids) -> list[int]:
    """Positions t >= 1 where ids[t] may not follow ids[t - 1]; [] for text that obeys the rules."""
    ids = [int(i) for i in ids]
    return [t for t in range(1, len(ids)) if ids[t] not in SUCCESSORS.get(ids[t - 1], ())]


def sample(n_tokens, seed=0) -> np.ndarray:
    """n_tokens ids drawn from the source (numpy uint16); the first pair comes from pi, so every
    position is distributed as the stationary source."""
    rng = np.random.default_rng(seed)
    states = list(PI)
    a, b = states[rng.choice(len(states), p=np.array([PI[s] for s in states]))]
    cumulative = {s: np.cumsum(p) for s, p in PROBS.items()}
    ids = np.empty(max(n_tokens, 2), dtype=np.uint16)
    ids[:2] = a, b
    uniforms = rng.random(n_tokens)
    for t in range(2, n_tokens):
        row = cumulative[(a, b)]
        k = min(int(np.searchsorted(row, uniforms[t], side="right")), len(row) - 1)
        a, b = b, SUCCESSORS[b][k]
        ids[t] = b
    return ids[:n_tokens]


def nll(ids) -> np.ndarray:
    """The source's own loss -ln p(ids[t] | ids[t-2], ids[t-1]) for t = 2 .. len - 1 (float64).
    Its mean over a long sample tends to ENTROPY_RATE."""
    ids = [int(i) for i in ids]
    out = np.empty(max(len(ids) - 2, 0))
    for t in range(2, len(ids)):
        a, b, c = ids[t - 2], ids[t - 1], ids[t]
        p = PROBS[(a, b)][SUCCESSORS[b].index(c)] if (a, b) in PROBS and c in SUCCESSORS[b] else 0.0
        out[t - 2] = -np.log(p) if p > 0 else np.inf
    return out


def encode(text: str) -> np.ndarray:
    return np.array([ID[ch] for ch in text], dtype=np.uint16)


def decode(ids) -> str:
    return "".join(SYMBOLS[int(i)] for i in ids)


def text(n_tokens=1_000_000, seed=0) -> str:
    """The corpus as text (for a character-level tokenizer, e.g. the train command)."""
    return decode(sample(n_tokens, seed))
