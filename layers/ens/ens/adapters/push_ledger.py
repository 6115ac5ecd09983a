"""Exactly-once pushes: Powertools Idempotency on its own DynamoDB table (IdempotencyTable).

The key comes from the content, (mailbox, item, device), never from the SQS message id: a callback
Exchange resends is queued again as a new message, and a batch SQS redelivers carries old messages.
A push that failed is not recorded, so its retry pushes; a push that succeeded is never repeated
while its record lives (`expires_after_seconds`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from ens.adapters.push import CnsPushGateway
from ens.errors import DependencyUnavailable
from ens.services.consumer import Delivery


class IdempotentPushDelivery:
    def __init__(
        self,
        gateway: CnsPushGateway,
        *,
        table_name: str,
        dynamodb: Any,
        expires_after_seconds: int,
    ) -> None:
        self._gateway = gateway
        self._config = IdempotencyConfig(
            event_key_jmespath="key",
            expires_after_seconds=expires_after_seconds,
            raise_on_no_idempotency_key=True,
        )
        persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=dynamodb)
        self._send_once = idempotent_function(
            data_keyword_argument="delivery", persistence_store=persistence, config=self._config
        )(self._send)
        # Which thread's call actually ran the push, as opposed to Powertools returning the stored result.
        self._local = threading.local()
        self._seconds_left: Callable[[], float] = lambda: 0.0

    def register_lambda_context(self, context: LambdaContext) -> None:
        """Lets an in-progress record expire with the invocation, so a crash does not block retries."""
        self._config.register_lambda_context(context)

    def deliver(self, key: str, payload: bytes, seconds_left: Callable[[], float]) -> Delivery:
        self._local.sent_now = False
        self._local.seconds_left = seconds_left
        self._local.payload = payload
        try:
            result = self._send_once(delivery={"key": key})
        except IdempotencyAlreadyInProgressError as error:
            # Another invocation is pushing this very mail right now: let SQS bring it back later.
            raise DependencyUnavailable("the same push is in progress elsewhere") from error
        except IdempotencyPersistenceLayerError as error:
            raise DependencyUnavailable(f"idempotency table unavailable: {error}") from error
        return Delivery(sent_now=self._local.sent_now, attempts=int(result.get("attempts", 0)))

    def _send(self, delivery: dict[str, str]) -> dict[str, Any]:
        receipt = self._gateway.send(self._local.payload, seconds_left=self._local.seconds_left)
        self._local.sent_now = True
        return {"status": receipt.status, "push_id": receipt.push_id, "attempts": receipt.attempts}
