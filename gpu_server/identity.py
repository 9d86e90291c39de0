"""The server's persistent identity: a stable server_id and the bearer token."""

from __future__ import annotations

import logging
import secrets
import uuid
from pathlib import Path

from gpu_server.files import atomic_write

_LOGGER = logging.getLogger(__name__)

SERVER_ID_FILE = "server_id"
TOKEN_FILE = "token"  # noqa: S105 - a file name, not a secret


def write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600, so a crash never leaves a half-written secret."""
    atomic_write(path, text.rstrip("\n") + "\n", private=True)


def load_or_create_server_id(data_dir: Path) -> str:
    """Return the UUID kept in <data_dir>/server_id, creating it on first start.

    Home Assistant uses it as the unique id of the sidecar, so it must survive restarts.
    """
    path = data_dir / SERVER_ID_FILE
    if path.exists():
        text = path.read_text(encoding="utf-8").strip()
        try:
            return str(uuid.UUID(text))
        except ValueError:
            _LOGGER.warning("%s does not hold a UUID; replacing it", path)
    server_id = str(uuid.uuid4())
    write_private(path, server_id)
    _LOGGER.info("created server id %s in %s", server_id, path)
    return server_id


def load_or_create_token(data_dir: Path) -> str:
    """Return the token kept in <data_dir>/token, generating one on first start."""
    path = data_dir / TOKEN_FILE
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            _LOGGER.info("using the bearer token stored in %s", path)
            return token
    token = secrets.token_urlsafe(32)
    write_private(path, token)
    _LOGGER.warning(
        "no token configured: generated one and stored it in %s (mode 0600); "
        "give it to the Home Assistant integration",
        path,
    )
    return token
