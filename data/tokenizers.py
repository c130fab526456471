"""Turning text into token ids and back: characters (the default) or GPT-2's BPE.

    tok = CharTokenizer.from_text(text)    # vocabulary: the sorted distinct characters of the text
    ids = tok.encode("ROMEO:")             # list of ints
    tok.decode(ids)                        # "ROMEO:"
    tok.state()                            # a small dict stored in the checkpoint
    from_state(tok.state())                # the same tokenizer again

GPT2Tokenizer wraps tiktoken's "gpt2" encoding (50257 tokens). Offline, it
reads vocab.bpe and encoder.json from $KATA_DATA_DIR/gpt2-bpe/ (their sha256
checked), or tiktoken finds them in TIKTOKEN_CACHE_DIR (see tiktoken's docs).
"""

import os
from pathlib import Path

import numpy as np

from .shakespeare import ENV_DATA_DIR, DataError

GPT2_FILES = {  # file -> sha256, as tiktoken checks them
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}
TOKENIZERS = ("char", "gpt2")


class CharTokenizer:
    """One token per character; the vocabulary is a string of distinct characters, id = index."""

    kind = "char"

    def __init__(self, chars: str):
        if not chars or len(set(chars)) != len(chars):
            raise ValueError("A character vocabulary needs distinct characters, at least one.")
        self.chars = chars
        self.vocab_size = len(chars)
        self._code_points = np.array([ord(c) for c in chars], dtype=np.int64)
        self._order = np.argsort(self._code_points)

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls("".join(sorted(set(text))))

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def encode_array(self, text: str) -> np.ndarray:
        """The ids as an int64 array (fast for a whole corpus). DataError for characters outside the vocabulary."""
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        sorted_points = self._code_points[self._order]
        where = np.clip(np.searchsorted(sorted_points, points), 0, len(sorted_points) - 1)
        known = sorted_points[where] == points
        if not known.all():
            unknown = sorted({chr(p) for p in points[~known]})
            shown = "".join(unknown[:10])
            raise DataError(
                f"The text has {len(unknown)} character(s) the vocabulary lacks ({shown!r}): "
                f"use only characters the model was trained on."
            )
        return self._order[where]

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def state(self) -> dict:
        return {"kind": "char", "chars": self.chars}


class GPT2Tokenizer:
    """GPT-2's byte-level BPE through tiktoken; any text encodes."""

    kind = "gpt2"

    def __init__(self):
        self.encoding = gpt2_encoding()
        self.vocab_size = self.encoding.n_vocab  # 50257

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def encode_array(self, text: str) -> np.ndarray:
        return np.array(self.encode(text), dtype=np.int64)

    def decode(self, ids) -> str:
        return self.encoding.decode([int(i) for i in ids])

    def state(self) -> dict:
        return {"kind": "gpt2"}


def gpt2_encoding():
    """tiktoken's gpt2 encoding: from $KATA_DATA_DIR/gpt2-bpe/ when the two files are there, else tiktoken's own."""
    import tiktoken

    local = Path(os.environ.get(ENV_DATA_DIR, "")).expanduser() / "gpt2-bpe" if os.environ.get(ENV_DATA_DIR) else None
    if local is not None and all((local / name).is_file() for name in GPT2_FILES):
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks
        from tiktoken_ext.openai_public import r50k_pat_str

        try:
            ranks = data_gym_to_mergeable_bpe_ranks(
                vocab_bpe_file=str(local / "vocab.bpe"), encoder_json_file=str(local / "encoder.json"),
                vocab_bpe_hash=GPT2_FILES["vocab.bpe"], encoder_json_hash=GPT2_FILES["encoder.json"],
            )
        except ValueError as error:
            raise DataError(f"The GPT-2 files in {local} are not the right ones ({error}).") from None
        return tiktoken.Encoding(
            name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
            special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257,
        )
    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as error:  # requests' ConnectionError, OSError, hash mismatches
        raise DataError(
            f"tiktoken cannot load GPT-2's BPE files ({type(error).__name__}); put vocab.bpe and encoder.json in "
            f"${ENV_DATA_DIR}/gpt2-bpe/ (or seed TIKTOKEN_CACHE_DIR), or use the default --tokenizer char."
        ) from None


def build(kind: str, text: str | None = None):
    """A new tokenizer: "char" (vocabulary from text) or "gpt2"."""
    if kind == "char":
        return CharTokenizer.from_text(text)
    if kind == "gpt2":
        return GPT2Tokenizer()
    raise DataError(f"Unknown tokenizer {kind!r}: choose one of {', '.join(TOKENIZERS)}.")


def from_state(state: dict):
    """The tokenizer a checkpoint stored with tok.state()."""
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind == "char" and isinstance(state.get("chars"), str):
        return CharTokenizer(state["chars"])
    if kind == "gpt2":
        return GPT2Tokenizer()
    raise DataError(f"The checkpoint's tokenizer {state!r} is not one this project knows.")
