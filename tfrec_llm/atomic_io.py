"""Atomic file writes: write to a temporary file beside the target, then rename it into place.

A reader (a resumed run, a serving process polling a folder, a second CLI call) never sees a
half-written file: it sees the old content or the new one. The temporary file lives in the
target's folder so the final ``os.replace`` stays on one file system, and its name keeps the
target's file name as a suffix, so writers that check extensions (Keras ``.weights.h5``) accept
it. On any error the temporary file is removed and the target is left as it was.

Example:
    >>> write_json("runs/result.json", {"best_epoch": 3})
    >>> with atomic_path("runs/model.weights.h5") as tmp:
    ...     model.save_weights(tmp)
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["atomic_open", "atomic_path", "write_bytes", "write_json", "write_text"]

PathLike = str | os.PathLike[str]


@contextlib.contextmanager
def atomic_path(path: PathLike, mode: int = 0o644) -> Iterator[str]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` when the block succeeds.

    Args:
        path: The final file. Its folder is created if missing.
        mode: Permission bits of the final file (``mkstemp`` creates 0600).

    Yields:
        The temporary path to write to (its name ends with the name of ``path``).
    """
    target = os.fspath(path)
    folder = os.path.dirname(target) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{os.path.basename(target)}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """``open`` for writing that publishes the file only when the block succeeds.

    Args:
        path: The final file.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        encoding: Text encoding (ignored in binary mode).

    Yields:
        The open handle of the temporary file; it is flushed and fsynced before the rename.

    Raises:
        ValueError: If ``mode`` is not a write mode.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode={mode!r}; expected 'w' or 'wb'")
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


def write_text(path: PathLike, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_bytes(path: PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_json(path: PathLike, value: Any, indent: int | None = 1, **kwargs: Any) -> None:
    """Writes ``value`` as JSON (plus a final newline) to ``path`` atomically.

    Args:
        path: The final file.
        value: Anything ``json.dump`` accepts.
        indent: JSON indentation.
        **kwargs: Passed to ``json.dump`` (e.g. ``allow_nan=False``).
    """
    with atomic_open(path, "w") as handle:
        json.dump(value, handle, indent=indent, **kwargs)
        handle.write("\n")
