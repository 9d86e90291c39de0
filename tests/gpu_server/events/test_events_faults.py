"""Events faults through the real server: a prompt version nobody knows, an event outbox that
cannot be written (disk full)."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from events_testlib import EventsServer
from sidecar_testlib import AUTH

from gpu_server._generated import events_pb2


async def test_configure_refuses_an_unknown_prompt_version(start_events: Any) -> None:
    server: EventsServer = await start_events()
    bad = events_pb2.ConfigureRequest(
        cameras=[
            events_pb2.CameraSettings(camera_id="porch", prompt_version="v1"),
            events_pb2.CameraSettings(camera_id="yard", prompt_version="v9-nope"),
        ]
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await server.stub.Configure(bad, metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert "v9-nope" in details
    assert "yard" in details
    assert "known versions: v1" in details
    # Nothing of the refused request was applied or saved.
    assert not (server.server.config.data_dir / "cameras.json").exists()

    good = events_pb2.ConfigureRequest(
        cameras=[events_pb2.CameraSettings(camera_id="porch", prompt_version="v1")]
    )
    reply = await server.stub.Configure(good, metadata=AUTH)
    assert list(reply.configured_camera_ids) == ["porch"]
    saved = json.loads((server.server.config.data_dir / "cameras.json").read_text())
    assert saved["cameras"]["porch"]["prompt_version"] == "v1"
