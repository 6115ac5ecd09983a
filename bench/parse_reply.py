"""Parse and reply of a SendNotification: ENS's webhook core against exchangelib's own parser.

Both parse the same bodies in the same process, interleaved in rounds so that machine noise
hits both alike. The ratio is exchangelib's median over ours.
"""

from __future__ import annotations

import statistics

from exchangelib.services import SendNotification as ExchangelibSendNotification

from bench.stats import summary, time_calls
from ens.core.notifications import SubscriptionStatus, check_request, parse_send_notification, reply
from support.send_notifications import new_mail_body

ROUNDS = 5
CALLS_PER_ROUND = 200


def ens_parse_and_reply(body: bytes) -> bytes:
    check_request(body, "text/xml; charset=utf-8", 1024 * 1024)
    parsed = parse_send_notification(body)
    assert len(parsed.events) >= 1
    return reply(SubscriptionStatus.OK)


def exchangelib_parse_and_reply(service: ExchangelibSendNotification, body: bytes) -> bytes:
    notifications = list(service.parse(body))
    assert len(notifications[0].events) >= 1
    return service.ok_payload()


def run() -> list[str]:
    service = ExchangelibSendNotification(protocol=None)
    lines = ["Parse + reply of a SendNotification (same bodies, same process)"]
    for events in (1, 10):
        body = new_mail_body("subscription-1", "wm-0", count=events)
        ens: list[float] = []
        exchangelib: list[float] = []
        for _ in range(ROUNDS):
            ens += time_calls(lambda body=body: ens_parse_and_reply(body), CALLS_PER_ROUND)
            exchangelib += time_calls(
                lambda body=body: exchangelib_parse_and_reply(service, body), CALLS_PER_ROUND
            )
        ratio = statistics.median(exchangelib) / statistics.median(ens)
        lines += [
            f"  {events:2d} event(s), {len(body):5d} bytes",
            f"    ENS core      {summary(ens)}",
            f"    exchangelib   {summary(exchangelib)}",
            f"    ENS is {ratio:.1f}x faster (median ratio)",
        ]
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
