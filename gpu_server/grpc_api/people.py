"""EnrollPerson, RemovePerson and ListPeople: thin adapters over the enricher's gallery."""

from __future__ import annotations

from gpu_server._generated import events_pb2
from gpu_server.enrich.pipeline import Enricher
from gpu_server.grpc_api.convert import known_person_to_pb


class PeopleHandler:
    def __init__(self, enricher: Enricher) -> None:
        self._enricher = enricher

    async def enroll(self, request: events_pb2.EnrollPersonRequest) -> events_pb2.KnownPerson:
        person = await self._enricher.enroll(
            request.name, face_id=request.face_id, image=request.image
        )
        return known_person_to_pb(person)

    async def remove(
        self, request: events_pb2.RemovePersonRequest
    ) -> events_pb2.RemovePersonResponse:
        removed = await self._enricher.remove(request.name)
        return events_pb2.RemovePersonResponse(removed=removed > 0, embeddings_removed=removed)

    async def list(self, request: events_pb2.ListPeopleRequest) -> events_pb2.ListPeopleResponse:
        return events_pb2.ListPeopleResponse(
            people=[known_person_to_pb(person) for person in self._enricher.people()]
        )
