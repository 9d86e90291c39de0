"""The bearer token from a file (`--token-file`): never from the command line.

Every local user can read a process's command line (`ps`, /proc/<pid>/cmdline), so a token
there is no secret; a file with mode 0600, or the HSAI_TOKEN environment variable, is.
"""

from __future__ import annotations

import stat
from pathlib import Path

COMMAND_LINE_REFUSAL = (
    "--token is refused: a command line is visible to every local user (ps). "
    "Put the token in a file readable only by you and pass --token-file PATH, or set the "
    "HSAI_TOKEN environment variable; with neither, the server generates one in "
    "<data_dir>/token (mode 0600)."
)


class TokenFileError(ValueError):
    """The token file cannot be read or does not hold a usable token."""


def read_token_file(path: Path) -> str:
    """Return the token a file holds on its one line (surrounding blanks ignored)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"cannot read the token file {path}: {exc}") from exc
    token = text.strip()
    if not token:
        raise TokenFileError(f"the token file {path} is empty")
    # gRPC sends the token in a header: printable ASCII without blanks only.
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise TokenFileError(
            f"the token file {path} must hold one token of printable ASCII characters "
            "without spaces or line breaks"
        )
    return token


def readable_by_others(path: Path) -> bool:
    """Whether users other than the owner may read the file (a leaked token)."""
    try:
        return bool(path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False
