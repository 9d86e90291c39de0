"""Writing files so that a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

# The suffix of a file being written; a loader may remove leftovers with it.
TMP_SUFFIX: Final = ".tmp"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file next to `path`, flush it to disk, then move it into
    place (blocking: run it in the executor). Nothing is left behind on failure."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        with tmp.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
