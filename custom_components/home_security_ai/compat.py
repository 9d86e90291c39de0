"""Differences between the Home Assistant releases this integration supports.

The oldest supported release is 2025.4 (see hacs.json); each helper says when it can go.
"""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo

# 2026.x links a device to its parent by registry id (`via_device_id`) and deprecates the
# identifier form (`via_device`, removed in 2027.8). Drop this once the minimum release
# has `via_device_id`.
_HAS_VIA_DEVICE_ID = "via_device_id" in DeviceInfo.__annotations__


def via_device_info(parent_id: str, parent_identifier: tuple[str, str]) -> DeviceInfo:
    """Return the DeviceInfo part that links a device to its parent device."""
    if _HAS_VIA_DEVICE_ID:
        return DeviceInfo(via_device_id=parent_id)  # type: ignore[typeddict-unknown-key]
    return DeviceInfo(via_device=parent_identifier)
