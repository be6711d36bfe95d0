"""Messages for the outbox: what every service writes in the transaction of the change it announces.

The relay that publishes them is :class:`shared.streaming.consumer.BatchRunner` (and its housekeeping);
the tables they wait in are :mod:`shared.storage.outbox`.
"""

from __future__ import annotations

from pydantic import BaseModel

from shared.observability.trace_context import Headers, message_headers
from shared.settings import Settings
from shared.storage.base import OutboxMessage


def outbox_message(settings: Settings, topic: str, key: str, body: BaseModel | bytes, *,
                   headers: Headers | None = None, extra_headers: Headers | None = None) -> OutboxMessage:
    """A message on ``topic`` (with the settings' prefix), keyed by a customer's pseudonymous id.

    ``body`` is a message model (published as its JSON) or the value already serialised. ``headers``
    is the trace context a caller made once for several messages; without it the message marks
    itself in the current trace (a "create" span) and carries that context. ``extra_headers`` follow it
    (what the message is, for consumers that pass over kinds they do not take: ``messages.kind_headers``)."""
    name = settings.topic(topic)
    value = body if isinstance(body, bytes) else body.model_dump_json().encode()
    traced = headers if headers is not None else message_headers(name, key=key)
    return OutboxMessage(name, value, key.encode(), [*traced, *(extra_headers or ())])
