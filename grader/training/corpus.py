"""The data a run trains on: text -> token ids -> a 90 % train split and a held-out 10 % validation split.

    corpus = prepare("shakespeare", "char")       # or "synthetic", "synthetic:50000", or a path to a text file
    corpus.train, corpus.val                      # 1-D int64 tensors
    corpus.tokenizer.decode(ids)
    corpus.entropy                                # the best loss possible, when known (synthetic), else None
"""

from dataclasses import dataclass

import numpy as np
import torch

from data import shakespeare, tokenizers
from data.shakespeare import DataError

SYNTHETIC_TOKENS = 300_000
VAL_FRACTION = 0.1


@dataclass
class Corpus:
    source: str  # what --data said
    description: str  # for the log: where the text came from
    tokenizer: object
    train: torch.Tensor
    val: torch.Tensor
    entropy: float | None = None

    @property
    def tokens(self) -> int:
        return len(self.train) + len(self.val)


def read_source(source: str) -> tuple[str, str, float | None, str | None]:
    """(text, description, entropy or None, fixed character vocabulary or None) for a --data value."""
    if source == "shakespeare":
        file = shakespeare.path()
        return shakespeare.read_text(file), f"Tiny Shakespeare ({file})", None, None
    if source == "synthetic" or source.startswith("synthetic:"):
        from data import synthetic

        n_tokens = SYNTHETIC_TOKENS
        if source != "synthetic":
            try:
                n_tokens = int(source.split(":", 1)[1])
            except ValueError:
                raise DataError(f"--data {source}: write synthetic:N with N a number of tokens, e.g. synthetic:50000.") from None
        text = synthetic.text(n_tokens, seed=0)
        about = f"the synthetic corpus ({n_tokens:,} tokens, best possible loss {synthetic.ENTROPY_RATE:.4f})"
        return text, about, synthetic.ENTROPY_RATE, synthetic.SYMBOLS
    return shakespeare.read_text(source), source, None, None


def prepare(source: str, tokenizer_kind: str = "char", tokenizer_state: dict | None = None, **bpe) -> Corpus:
    """Read, tokenize and split. tokenizer_state (from a checkpoint) fixes the vocabulary. A new "bpe" tokenizer
    (bpe: vocab_size, bpe_module, trained_by) is trained on the text of the training split only."""
    text, description, entropy, symbols = read_source(source)
    if tokenizer_state is not None:
        tokenizer = tokenizers.from_state(tokenizer_state)
    elif tokenizer_kind == "char" and symbols is not None:
        tokenizer = tokenizers.CharTokenizer(symbols)  # the synthetic corpus's own ids
    elif tokenizer_kind == "bpe":
        tokenizer = tokenizers.build("bpe", text[: int(len(text) * (1 - VAL_FRACTION))], **bpe)
    else:
        tokenizer = tokenizers.build(tokenizer_kind, text)
    if tokenizer.kind != "char":
        entropy = None  # the known entropy is per character
    try:
        ids = tokenizer.encode_array(text)
    except DataError:
        if tokenizer_state is None:
            raise
        raise DataError(
            f"{description} has characters the checkpoint's vocabulary lacks: resume with the data it was trained on."
        ) from None
    ids = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
    split = int(len(ids) * (1 - VAL_FRACTION))
    return Corpus(source, description, tokenizer, ids[:split], ids[split:], entropy)
