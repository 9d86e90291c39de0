"""The event loop every gRPC call of the client runs on: one thread of its own per process.

grpc.aio wakes the loop that runs a call several times per message: the completion of each
write and each read, and the tasks awaiting them. On Home Assistant's loop that was most of
what forwarding a frame cost it. So the client runs every call here instead, and the caller's
loop is woken once per call, and once per batch of stream messages: while one wake-up is
pending, the messages that arrive join it. There is one such loop per process, like grpc's own
poller thread, because grpc.aio binds a channel to the loop that opened it, and the releases
Home Assistant ships cannot serve channels on two loops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from functools import partial
from typing import Any, Generic, TypeVar

from .errors import HomeSecurityAIError

T = TypeVar("T")
F = TypeVar("F")

THREAD_NAME = "home_security_ai grpc"


def _call_in(loop: asyncio.AbstractEventLoop, function: Callable[..., Any], *args: Any) -> bool:
    """Schedule a call on a loop from any thread; False when that loop has closed."""
    try:
        loop.call_soon_threadsafe(function, *args)
    except RuntimeError:
        return False
    return True


def _copy_state(task: asyncio.Task[T], done: asyncio.Future[T]) -> None:
    """On the caller's loop: resolve `done` as the finished task ended."""
    if done.done():
        return
    if task.cancelled():
        done.cancel()
    elif (error := task.exception()) is not None:
        done.set_exception(error)
    else:
        done.set_result(task.result())


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _hand_over(caller: asyncio.AbstractEventLoop, done: asyncio.Future[T], task: Any) -> None:
    """On the client loop: pass a finished task's outcome to the caller's loop."""
    if not task.cancelled():
        task.exception()  # retrieved: the caller's loop reports it, not this one
    _call_in(caller, _copy_state, task, done)


class _Mailbox(Generic[T]):
    """Items put from any thread and taken in batches on `loop`, one wake-up per batch."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_items: Callable[[list[T]], None] | None = None,
    ) -> None:
        """Items are taken with `take`, or, with `on_items`, passed to it as they arrive."""
        self._loop = loop
        self._on_items = on_items
        self._items: deque[T] = deque()
        self._wake_due = False
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._error: BaseException | None = None

    def put(self, item: T) -> None:
        """Add an item (any thread)."""
        self._items.append(item)
        self._nudge()

    def close(self, error: BaseException | None = None) -> None:
        """Say that no item follows; `take` raises `error` once the items are taken."""
        self._error = error
        self._closed = True
        self._nudge()

    def _nudge(self) -> None:
        # The item is in before the flag is read: a wake-up due or scheduled now sees it.
        if not self._wake_due:
            self._wake_due = True
            _call_in(self._loop, self._wake)

    def _wake(self) -> None:
        self._wake_due = False
        if self._on_items is not None:
            if self._items:
                self._on_items(self._take_all())
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _take_all(self) -> list[T]:
        items = self._items
        return [items.popleft() for _ in range(len(items))]

    async def take(self) -> list[T]:
        """Return every item that has arrived, waiting for one; [] once closed and empty."""
        while not self._items:
            if self._closed:
                if self._error is not None:
                    raise self._error
                return []
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._take_all()


async def _drain(mailbox: _Mailbox[F]) -> AsyncIterator[F]:
    while batch := await mailbox.take():
        for item in batch:
            yield item


async def _forward(outgoing: AsyncIterator[F], mailbox: _Mailbox[F]) -> None:
    """On the caller's loop: pass what the caller's iterator yields to the client loop."""
    try:
        async for item in outgoing:
            mailbox.put(item)
    except Exception as err:  # the stream there fails with it
        mailbox.close(err)
        return
    mailbox.close()


class ClientLoop:
    """A thread running an event loop for gRPC calls, started on first use."""

    def __init__(self, name: str = THREAD_NAME) -> None:
        """Nothing runs until the first call."""
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> asyncio.AbstractEventLoop:
        """Start the thread unless it runs; return its loop."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.SelectorEventLoop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def stop(self) -> None:
        """Stop the loop and wait for its thread (blocking: for tests and shutdown)."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        _call_in(loop, loop.stop)
        thread.join()
        loop.close()

    def submit(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, T],
        done: asyncio.Future[T],
    ) -> Callable[[], object]:
        """Run `coro` on `loop`, its outcome going to `done`; return what cancels it there."""
        started: list[asyncio.Task[T]] = []

        def start() -> None:
            task = loop.create_task(coro)
            started.append(task)
            task.add_done_callback(partial(_hand_over, done.get_loop(), done))

        def cancel() -> None:
            for task in started:
                task.cancel()

        if not _call_in(loop, start):
            coro.close()
            raise HomeSecurityAIError("The client's event loop has stopped")
        return partial(_call_in, loop, cancel)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the client loop and return its result here.

        Cancelled here, it is cancelled there, and this waits until it has ended there.
        """
        loop = self.start()
        caller = asyncio.get_running_loop()
        if caller is loop:
            return await coro
        done: asyncio.Future[T] = caller.create_future()
        # Seen in every case: a caller cancelled meanwhile no longer wants the outcome, and
        # an error nobody awaits would otherwise be logged as never retrieved.
        done.add_done_callback(_retrieve)
        cancel = self.submit(loop, coro, done)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait((done,))
            raise

    async def stream(
        self,
        open_stream: Callable[[AsyncIterator[F]], AsyncIterator[T]],
        outgoing: AsyncIterator[F],
    ) -> AsyncGenerator[T]:
        """Run a stream on the client loop: `outgoing` (iterated here) feeds it, and what it
        yields comes back here in batches. Closing this iterator ends the stream there, and
        waits until it has."""
        loop = self.start()
        caller = asyncio.get_running_loop()
        if caller is loop:
            async for item in open_stream(outgoing):
                yield item
            return
        inbox: _Mailbox[T] = _Mailbox(caller)
        outbox: _Mailbox[F] = _Mailbox(loop)

        async def remote() -> None:
            async for item in open_stream(_drain(outbox)):
                inbox.put(item)

        ended: asyncio.Future[None] = caller.create_future()
        ended.add_done_callback(partial(_close_inbox, inbox))
        cancel = self.submit(loop, remote(), ended)
        forward = caller.create_task(_forward(outgoing, outbox))
        try:
            while batch := await inbox.take():
                for item in batch:
                    yield item
        finally:
            forward.cancel()
            cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait((ended, forward))

    def duplex(
        self,
        open_stream: Callable[[AsyncIterator[F]], AsyncIterator[T]],
        on_items: Callable[[list[T]], None],
    ) -> Duplex[F, T]:
        """Start a stream on the client loop, fed with `Duplex.send`; what it yields is passed
        to `on_items` on the caller's loop, a batch per wake-up, with no task in between."""
        return Duplex(self, open_stream, on_items)

    async def subscribe(self, open_stream: Callable[[], AsyncIterator[T]]) -> AsyncGenerator[T]:
        """Run a server stream on the client loop; its items come back here in batches."""
        stream = self.stream(lambda _nothing: open_stream(), _nothing_to_send())
        try:
            async for item in stream:
                yield item
        finally:
            await stream.aclose()


class Duplex(Generic[F, T]):
    """A stream running on the client loop, fed and read from the caller's loop."""

    def __init__(
        self,
        client_loop: ClientLoop,
        open_stream: Callable[[AsyncIterator[F]], AsyncIterator[T]],
        on_items: Callable[[list[T]], None],
    ) -> None:
        """Start the stream (call on the caller's loop)."""
        loop = client_loop.start()
        caller = asyncio.get_running_loop()
        self._closed = False
        self._outbox: _Mailbox[F] = _Mailbox(loop)
        inbox: _Mailbox[T] = _Mailbox(caller, self._pass_on)
        self._on_items = on_items

        async def remote() -> None:
            async for item in open_stream(_drain(self._outbox)):
                inbox.put(item)

        self._ended: asyncio.Future[None] = caller.create_future()
        self._cancel = client_loop.submit(loop, remote(), self._ended)

    def _pass_on(self, items: list[T]) -> None:
        if not self._closed:
            self._on_items(items)

    def send(self, item: F) -> None:
        """Queue an item to write (no wait: the client loop takes it)."""
        self._outbox.put(item)

    def fail(self, error: BaseException) -> None:
        """End the stream because what feeds it failed; `wait` raises why."""
        self._outbox.close(error)

    def end_sending(self) -> None:
        """Say that nothing more will be sent; the stream ends once the other side has."""
        self._outbox.close()

    async def wait(self) -> None:
        """Wait until the stream ends; raise what ended it. Every item came before."""
        await asyncio.shield(self._ended)

    async def close(self) -> None:
        """End the stream there and wait until it has; no item is passed on after this."""
        self._closed = True
        self._outbox.close()
        self._cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait((self._ended,))
        if not self._ended.cancelled():
            self._ended.exception()  # seen: wait() raised it, or nobody asked


async def _nothing_to_send() -> AsyncIterator[Any]:
    await asyncio.Event().wait()  # until the stream is closed
    yield  # pragma: no cover - never reached


def _close_inbox(inbox: _Mailbox[Any], ended: asyncio.Future[None]) -> None:
    """The remote stream has ended: let the taker finish with its error, if any."""
    if ended.cancelled():
        inbox.close(HomeSecurityAIError("The stream was stopped"))
    else:
        inbox.close(ended.exception())


# The process's one client loop.
CLIENT_LOOP = ClientLoop()
