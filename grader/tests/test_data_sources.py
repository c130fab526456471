"""data/: Tiny Shakespeare from a local copy, a data dir, or a hash-checked download; tokenizers. No network."""

import hashlib
import os
import urllib.error
from pathlib import Path

import pytest

from data import shakespeare, tokenizers
from data.shakespeare import DataError

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"


@pytest.fixture
def fake_source(tmp_path, monkeypatch):
    """A 'remote' copy of the corpus behind a file:// URL, an empty cache and no KATA_DATA_DIR."""
    remote = tmp_path / "remote" / "input.txt"
    remote.parent.mkdir()
    remote.write_text(TEXT, encoding="utf-8")
    monkeypatch.setattr(shakespeare, "URL", remote.as_uri())
    monkeypatch.setattr(shakespeare, "SHA256", hashlib.sha256(TEXT.encode()).hexdigest())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(shakespeare.ENV_DATA_DIR, raising=False)
    return remote


def test_downloads_once_into_the_cache_and_checks_the_hash(fake_source, tmp_path, monkeypatch):
    path = shakespeare.path()
    assert path == tmp_path / "cache" / "gpt-kata" / "tinyshakespeare" / "input.txt"
    assert path.read_text(encoding="utf-8") == TEXT
    monkeypatch.setattr(shakespeare, "URL", (tmp_path / "gone.txt").as_uri())  # a second call does not download
    assert shakespeare.path() == path and shakespeare.load() == TEXT


def test_a_download_with_the_wrong_hash_is_refused_and_not_kept(fake_source, tmp_path, monkeypatch):
    monkeypatch.setattr(shakespeare, "SHA256", "0" * 64)
    with pytest.raises(DataError, match="sha256"):
        shakespeare.path()
    assert not list((tmp_path / "cache").rglob("input.txt*"))


def test_offline_and_uncached_says_so_in_one_sentence(fake_source, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(shakespeare.urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as error:
        shakespeare.path()
    message = str(error.value)
    assert "not cached" in message and "--data synthetic" in message and "--data PATH" in message
    assert message.count(". ") == 0 and "\n" not in message


def test_the_data_dir_environment_variable_provides_a_local_copy(fake_source, tmp_path, monkeypatch):
    local = tmp_path / "shared" / "tinyshakespeare" / "input.txt"
    local.parent.mkdir(parents=True)
    local.write_text(TEXT, encoding="utf-8")
    monkeypatch.setenv(shakespeare.ENV_DATA_DIR, str(tmp_path / "shared"))
    monkeypatch.setattr(shakespeare, "URL", (tmp_path / "gone.txt").as_uri())
    assert shakespeare.path() == local


def test_a_local_copy_with_the_wrong_hash_is_refused(fake_source, tmp_path, monkeypatch):
    local = tmp_path / "shared" / "tinyshakespeare" / "input.txt"
    local.parent.mkdir(parents=True)
    local.write_text("something else", encoding="utf-8")
    monkeypatch.setenv(shakespeare.ENV_DATA_DIR, str(tmp_path / "shared"))
    with pytest.raises(DataError, match="not Tiny Shakespeare"):
        shakespeare.path()


@pytest.mark.parametrize("content, words", [(b"", "empty"), (b"\xff\xfe\x00bad", "not UTF-8"), (None, "no file")])
def test_unusable_text_files_are_one_sentence(tmp_path, content, words):
    file = tmp_path / "data.txt"
    if content is not None:
        file.write_bytes(content)
    with pytest.raises(DataError, match=words):
        shakespeare.read_text(file)


def test_char_tokenizer_round_trips_and_restores_from_its_state():
    tok = tokenizers.CharTokenizer.from_text(TEXT)
    assert tok.chars == "".join(sorted(set(TEXT))) and tok.vocab_size == len(set(TEXT))
    ids = tok.encode(TEXT)
    assert tok.decode(ids) == TEXT and ids == [tok.chars.index(c) for c in TEXT]
    again = tokenizers.from_state(tok.state())
    assert again.encode("hear me") == tok.encode("hear me")
    with pytest.raises(DataError, match="vocabulary lacks"):
        tok.encode("Zebra")


def test_unknown_tokenizer_state_is_refused():
    with pytest.raises(DataError):
        tokenizers.from_state({"kind": "sentencepiece"})


def shared_bpe_dir():
    for base in (os.environ.get(shakespeare.ENV_DATA_DIR), SHARED):
        if base and all((Path(base) / "gpt2-bpe" / f).is_file() for f in tokenizers.GPT2_FILES):
            return Path(base)
    return None


@pytest.mark.skipif(shared_bpe_dir() is None, reason="GPT-2's BPE files are not available offline here")
def test_gpt2_tokenizer_reads_the_bpe_files_from_the_data_dir(monkeypatch):
    monkeypatch.setenv(shakespeare.ENV_DATA_DIR, str(shared_bpe_dir()))
    tok = tokenizers.build("gpt2")
    assert tok.vocab_size == 50257
    ids = tok.encode("Hello, world")
    assert ids == [15496, 11, 995] and tok.decode(ids) == "Hello, world"
    assert tokenizers.from_state(tok.state()).encode("Hello") == [15496]
