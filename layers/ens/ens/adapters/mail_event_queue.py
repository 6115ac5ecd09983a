"""SQS adapter for mail events (queue NotificationsQueue)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ens.core.mail_events import MailEvent
from ens.errors import DependencyUnavailable

SQS_BATCH_LIMIT = 10
_ATTEMPTS = 3
# Batches of one callback go out side by side: a MoreEvents backlog must not add up call latencies
# while Exchange waits. boto3 clients are thread-safe.
_PARALLEL_BATCHES = 8


class SqsMailEventQueue:
    def __init__(self, queue_url: str, sqs: Any) -> None:
        self._queue_url = queue_url
        self._sqs = sqs

    def send(self, events: Sequence[MailEvent]) -> None:
        """Queue every event or raise DependencyUnavailable: none may be left out silently."""
        batches = [
            events[start : start + SQS_BATCH_LIMIT] for start in range(0, len(events), SQS_BATCH_LIMIT)
        ]
        if len(batches) <= 1:
            for batch in batches:
                self._send_batch(batch)
            return
        with ThreadPoolExecutor(max_workers=min(_PARALLEL_BATCHES, len(batches))) as pool:
            # list() re-raises the first failure; the others still finish before the pool closes.
            list(pool.map(self._send_batch, batches))

    def _send_batch(self, events: Sequence[MailEvent]) -> None:
        pending = {str(index): event.to_message() for index, event in enumerate(events)}
        for _ in range(_ATTEMPTS):
            try:
                response = self._sqs.send_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[{"Id": entry_id, "MessageBody": body} for entry_id, body in pending.items()],
                )
            except (ClientError, BotoCoreError) as error:
                raise DependencyUnavailable(f"SQS SendMessageBatch failed: {error}") from error
            # SendMessageBatch can succeed for some entries and fail for others: resend only those.
            failed = response.get("Failed", [])
            if not failed:
                return
            if any(entry.get("SenderFault") for entry in failed):
                codes = sorted({entry.get("Code", "?") for entry in failed})
                raise DependencyUnavailable(f"SQS rejected mail events: {', '.join(codes)}")
            pending = {entry["Id"]: pending[entry["Id"]] for entry in failed}
        raise DependencyUnavailable(f"SQS kept failing {len(pending)} mail event(s)")
