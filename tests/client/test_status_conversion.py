"""The sidecar's status as the integration sees it: the outbox's part, refusals included."""

from __future__ import annotations

from custom_components.home_security_ai.client._generated import status_pb2
from custom_components.home_security_ai.client.convert import status_from_proto


def test_the_outbox_part_of_the_status_carries_its_refusals() -> None:
    message = status_pb2.ServerStatus(
        events=status_pb2.EventsStatus(
            outbox_depth=5, outbox_max_events=5, outbox_id="abc", outbox_refused_frames=107
        )
    )
    events = status_from_proto(message).events
    assert (events.outbox_depth, events.outbox_max_events) == (5, 5)
    assert events.outbox_id == "abc"
    assert events.outbox_refused_frames == 107

