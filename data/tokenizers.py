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


# tiktoken's cache names for the two files (the sha1 of their URLs), in its cache folder
TIKTOKEN_CACHE_NAMES = {"vocab.bpe": "6d1cbeee0f20b3d9449abfede4726ed8212e3aee",
                        "encoder.json": "6c7ea1a7e38e3a7f062df639a5b80947f075ffe6"}


def gpt2_files() -> tuple[Path, Path] | None:
    """Paths of GPT-2's (vocab.bpe, encoder.json) on this machine, or None; not hash-checked here.

    Looked for in $KATA_DATA_DIR/gpt2-bpe/, then in tiktoken's cache (TIKTOKEN_CACHE_DIR, DATA_GYM_CACHE_DIR or
    <tmp>/data-gym-cache), where `tiktoken.get_encoding("gpt2")` leaves them after its one download.
    """
    if os.environ.get(ENV_DATA_DIR):
        local = Path(os.environ[ENV_DATA_DIR]).expanduser() / "gpt2-bpe"
        if all((local / name).is_file() for name in GPT2_FILES):
            return local / "vocab.bpe", local / "encoder.json"
    import tempfile

    cache = Path(os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
                 or Path(tempfile.gettempdir()) / "data-gym-cache")
    cached = [cache / TIKTOKEN_CACHE_NAMES[name] for name in ("vocab.bpe", "encoder.json")]
    return (cached[0], cached[1]) if all(p.is_file() for p in cached) else None


def gpt2_encoding():
    """tiktoken's gpt2 encoding: from gpt2_files() when they are found (hash-checked), else tiktoken's own."""
    import tiktoken

    files = gpt2_files()
    if files is not None:
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks
        from tiktoken_ext.openai_public import r50k_pat_str

        try:
            ranks = data_gym_to_mergeable_bpe_ranks(
                vocab_bpe_file=str(files[0]), encoder_json_file=str(files[1]),
                vocab_bpe_hash=GPT2_FILES["vocab.bpe"], encoder_json_hash=GPT2_FILES["encoder.json"],
            )
        except ValueError as error:
            raise DataError(f"The GPT-2 files in {files[0].parent} are not the right ones ({error}).") from None
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
