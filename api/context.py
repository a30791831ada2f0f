"""What every request handler needs: settings, the ticket store, the transport and the lifecycle."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from contracts import Topic
from hotline.settings import Settings
from streams.transport import Transport
from tickets.lifecycle import Lifecycle
from tickets.store import TicketStore


class LazyTransport(Transport):
    """Opens the configured transport on the first publish, so that serving reads needs no broker."""

    def __init__(self, opener: Callable[[], Transport]) -> None:
        self._opener = opener
        self._transport: Transport | None = None
        self._lock = threading.Lock()

    def _get(self) -> Transport:
        with self._lock:
            if self._transport is None:
                self._transport = self._opener()
            return self._transport

    def publish_raw(self, topic: Topic, raw: bytes, key: str | None = None) -> None:
        self._get().publish_raw(topic, raw, key)

    def close(self) -> None:
        with self._lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None


@dataclass
class ApiContext:
    settings: Settings
    store: TicketStore
    transport: Transport
    lifecycle: Lifecycle
    clock: Callable[[], datetime]
