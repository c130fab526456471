"""Tiny Shakespeare: the 1.1 MB of plays that char-rnn and nanoGPT train on.

Where the text comes from, first match wins:

    1. a path you give (`--data path/to/input.txt`): used as it is;
    2. $KATA_DATA_DIR/tinyshakespeare/input.txt, when that file exists (CI points
       KATA_DATA_DIR at a shared copy); its sha256 is checked;
    3. the download cache, ~/.cache/gpt-kata/tinyshakespeare/input.txt (or under
       $XDG_CACHE_HOME); filled by downloading the file once and checking its sha256.

KATA_DATA_DIR, when set, is also where a download goes (if it is writable).
Offline and uncached, `path()` raises DataError with one sentence saying so.
"""

import hashlib
import os
import urllib.request
from pathlib import Path

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
RELATIVE_PATH = Path("tinyshakespeare") / "input.txt"
ENV_DATA_DIR = "KATA_DATA_DIR"


class DataError(ValueError):
    """A problem with the data, described in one sentence for the learner."""


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where downloads are kept: ~/.cache/gpt-kata (or $XDG_CACHE_HOME/gpt-kata)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gpt-kata"


def data_dirs() -> list[Path]:
    """The directories searched, in order: $KATA_DATA_DIR (if set), then the cache."""
    dirs = []
    if os.environ.get(ENV_DATA_DIR):
        dirs.append(Path(os.environ[ENV_DATA_DIR]).expanduser())
    dirs.append(cache_dir())
    return dirs


def download(url, target: Path, sha256: str) -> Path:
    """Fetch url to target (atomically), checking its sha256. DataError if offline or the hash differs."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            content = response.read()
    except OSError as error:  # URLError, timeouts, DNS failures are all OSErrors
        reason = getattr(error, "reason", error)
        raise DataError(
            f"Tiny Shakespeare is not cached and could not be downloaded from {url} ({reason}); "
            f"give a local copy with --data PATH (or set {ENV_DATA_DIR}), or train on --data synthetic."
        ) from None
    actual = hashlib.sha256(content).hexdigest()
    if actual != sha256:
        raise DataError(
            f"The file downloaded from {url} has sha256 {actual[:12]}…, not the expected {sha256[:12]}…; "
            f"try again later, or give a local copy with --data PATH."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, target)
    return target


def path(download_missing: bool = True) -> Path:
    """The path of a verified copy of Tiny Shakespeare, downloading it once if needed."""
    for directory in data_dirs():
        candidate = directory / RELATIVE_PATH
        if candidate.is_file():
            if sha256_of(candidate) == SHA256:
                return candidate
            raise DataError(
                f"{candidate} is not Tiny Shakespeare (its sha256 differs from {SHA256[:12]}…); "
                f"delete it to download it again, or pass it with --data PATH to train on it anyway."
            )
    if not download_missing:
        raise DataError(
            f"Tiny Shakespeare is not in {' or '.join(str(d) for d in data_dirs())}; "
            f"give a local copy with --data PATH, or train on --data synthetic."
        )
    targets = data_dirs()
    target = targets[0] / RELATIVE_PATH
    if not os.access(_existing_parent(target), os.W_OK):
        target = cache_dir() / RELATIVE_PATH
    return download(URL, target, SHA256)


def _existing_parent(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def read_text(file) -> str:
    """The UTF-8 text of a file. DataError (one sentence) if it is missing, unreadable, not UTF-8, or empty."""
    file = Path(file)
    if not file.is_file():
        raise DataError(f"There is no file {file}: give the path of a UTF-8 text file, 'shakespeare' or 'synthetic'.")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{file} is not UTF-8 text (byte {error.start} cannot be decoded): convert it first.") from None
    except OSError as error:
        raise DataError(f"{file} cannot be read ({error.strerror}).") from None
    if not text:
        raise DataError(f"{file} is empty: there is nothing to train on.")
    return text


def load() -> str:
    """The text of Tiny Shakespeare (about 1.1 million characters)."""
    return read_text(path())
