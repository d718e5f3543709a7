"""Atomic file writes and checksums shared by every stage.

A stage killed half-way must never leave a file that looks complete: everything is written to a temporary
file in the destination folder and renamed into place (rename is atomic on one filesystem). A temporary file
is removed when the block fails; one left by a killed process (SIGKILL, a power cut) is removed by
`remove_stale_temps` when the stage starts again, so DVC never commits one with its output.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import pickle
import shutil
import signal
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.is_file():  # mkstemp makes 0600 files; give the result the usual permissions
            os.chmod(tmp, 0o666 & ~_umask())
            with open(tmp, "rb") as written:  # on disk before the rename: after a power cut, old or new, never empty
                os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder next to `path`; it replaces `path` (and what was there) only if the block
    succeeds. The name is fixed, so a folder a killed writer left is removed when the next one starts."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def exit_on_sigterm() -> Any:
    """Make SIGTERM (`timeout`, a scheduler, `kill`) unwind the process like an error, so that the blocks above
    remove their temporary files; the default handler would leave them. Returns the handler it replaced."""
    return signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum: int, frame) -> None:
    raise SystemExit(f"error: terminated by {signal.Signals(signum).name}")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def read_json(path: str | os.PathLike, *keys: str, hint: str = "") -> dict:
    """The JSON object in `path`, holding `keys`; a missing file (the message adds `hint`, e.g. which stage writes
    it), one that is no JSON object, or a missing key is one ValueError naming the file."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path} not found{': ' + hint if hint else ''}") from None
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{path} is not readable JSON ({error})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds a JSON {type(value).__name__}, not an object")
    missing = [key for key in keys if key not in value]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(map(repr, missing))}")
    return value


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_text(path: str | os.PathLike, text: str) -> None:
    """`text` as UTF-8 whatever the locale, so that a file's bytes do not depend on the machine."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_npy(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    """The array of the .npy file at `path`, memory-mapped (read-only) unless `mmap` is False; a missing, damaged
    or foreign file is one ValueError naming it."""
    try:
        array = np.load(path, mmap_mode="r" if mmap else None)
    except FileNotFoundError:
        raise ValueError(f"{path} not found") from None
    except (OSError, ValueError, EOFError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path} is not a readable .npy array ({reason})") from None
    if not isinstance(array, np.ndarray):  # np.load opens a zip (.npz) archive too
        array.close()
        raise ValueError(f"{path} is not a readable .npy array (a .npz archive)")
    return array


def load_npz(path: str | os.PathLike, *names: str) -> tuple[np.ndarray, ...]:
    """The arrays `names` of the .npz archive at `path`; a missing, damaged or foreign file, or a missing array,
    is one ValueError naming the file."""
    try:
        archive = np.load(path)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an archive")
        with archive:
            missing = [name for name in names if name not in archive.files]
            arrays = tuple(archive[name] for name in names if name not in missing)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path} is not a readable .npz archive ({reason})") from None
    if missing:
        raise ValueError(f"{path} must hold {', '.join(map(repr, names))}; it lacks {', '.join(map(repr, missing))}")
    return arrays


def remove_stale_temps(folder: str | os.PathLike) -> None:
    """Delete the temporary files that killed writers left in `folder` (and below); call it when a stage starts,
    before it writes there."""
    for tmp in sorted(Path(folder).rglob("*.tmp")):
        log.warning("removing %s, left by an interrupted write", tmp)
        tmp.unlink()


class _ContentPickler(pickle.Pickler):
    """A pickler without memo. The memo writes an object seen before (by identity) as a reference to it, so equal
    content built differently gives different bytes: a string literal is one shared object, the same string
    unpickled from a checkpoint one object per occurrence, and a resumed run's checkpoints differed from an
    uninterrupted run's. Tensors that share storage stay shared: torch.save keys storages itself."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fast = True


class _ContentPickle:
    """The `pickle_module` that torch.save uses for `_ContentPickler`."""

    Pickler = _ContentPickler


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """torch.save whose bytes depend on the content only: through memory (saved to a file, the archive is named
    after the random temporary file) and without pickle's memo (see `_ContentPickler`)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer, pickle_module=_ContentPickle)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def content_digest(obj: Any) -> str:
    """sha256 of nested dicts, lists and tuples of tensors and plain values: tensors by dtype, shape and bytes,
    everything else by type and repr, in order. Recomputed after loading, it shows whether a file still holds
    what was saved (torch.load checks no checksum)."""
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()


def _feed(digest: hashlib._Hash, obj: Any) -> None:
    import torch

    if isinstance(obj, dict):
        digest.update(f"dict {len(obj)};".encode())
        for key, value in obj.items():
            _feed(digest, key)
            _feed(digest, value)
    elif isinstance(obj, (list, tuple)):
        digest.update(f"{type(obj).__name__} {len(obj)};".encode())
        for item in obj:
            _feed(digest, item)
    elif isinstance(obj, torch.Tensor):
        digest.update(f"tensor {obj.dtype} {tuple(obj.shape)};".encode())
        digest.update(obj.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    else:
        digest.update(f"{type(obj).__name__} {obj!r};".encode())


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame atomically, without its index."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
