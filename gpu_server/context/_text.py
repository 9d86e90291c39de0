"""Formatting of user-provided names inside prompt facts."""

from __future__ import annotations

import json

_MAX_NAME = 64


def quote(name: str) -> str:
    """Render user text (a zone or camera name) as one quoted, escaped literal.

    Quoting keeps it visibly data: a newline or quote inside a name cannot start a new fact line
    or close the string early. Prompt-injection filtering happens elsewhere.
    """
    text = name if len(name) <= _MAX_NAME else name[: _MAX_NAME - 1] + "…"
    return json.dumps(text, ensure_ascii=False)
