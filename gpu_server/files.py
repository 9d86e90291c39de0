"""Writing files so that a crash leaves either the old content or the new, never a mix."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def atomic_write(path: Path, data: bytes | str, *, private: bool = False) -> None:
    """Write `data` (text as UTF-8) to `path` through a temp file, fsync and os.replace.

    `private` makes the file readable by its owner only (mode 0600) from the first byte on.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per process and thread: concurrent writers never share a temp file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
    try:
        if private:
            os.fchmod(fd, 0o600)  # a stale temp file from a crash keeps its old mode otherwise
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
