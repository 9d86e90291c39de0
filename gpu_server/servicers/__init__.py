"""The SecurityAI gRPC service, split by RPC into frames.py and status.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from gpu_server._generated import frames_pb2, service_pb2_grpc, status_pb2
from gpu_server.errors import status_for
from gpu_server.servicers.frames import FrameStreamHandler
from gpu_server.servicers.status import StatusReporter


class SecurityAIServicer(service_pb2_grpc.SecurityAIServicer):  # type: ignore[misc]
    def __init__(self, frames: FrameStreamHandler, status: StatusReporter) -> None:
        self._frames = frames
        self._status = status

    async def SubmitFrames(  # noqa: N802 - name fixed by the contract
        self,
        request_iterator: AsyncIterator[frames_pb2.Frame],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[frames_pb2.FrameAck]:
        try:
            async for ack in self._frames.stream(request_iterator):
                yield ack
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            code, message = status_for(exc)
            await context.abort(code, message)

    async def GetStatus(  # noqa: N802 - name fixed by the contract
        self, request: status_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> status_pb2.ServerStatus:
        try:
            return await self._status.status()
        except Exception as exc:
            code, message = status_for(exc)
            await context.abort(code, message)
            raise  # abort() always raises; this keeps type checkers informed
