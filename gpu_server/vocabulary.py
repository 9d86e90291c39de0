"""What one client may configure, checked before anything expensive is done with it.

Home Assistant's integration holds the same numbers in its own `limits.py` (it cannot import
the sidecar), so its forms refuse what the sidecar would; a test keeps the two files equal.
"""

from __future__ import annotations

from typing import Final

# Cameras the sidecar keeps settings for, in all and in one Configure call.
MAX_CAMERAS: Final = 64
MAX_ZONES_PER_CAMERA: Final = 32
MAX_POINTS_PER_ZONE: Final = 64
MAX_ZONE_NAME_CHARS: Final = 64
MAX_DISPLAY_NAME_CHARS: Final = 128
MAX_TIME_ZONE_CHARS: Final = 64
MAX_PROMPT_VERSION_CHARS: Final = 32
# A camera's batch window and idle timeout: 0 keeps the server's default, else 1 s to 1 h.
MAX_BATCH_SECONDS: Final = 3600
# The encoded size of one Configure request: every camera at every limit fits well inside.
MAX_CONFIGURE_BYTES: Final = 4 * 1024 * 1024
