"""exchangelib's session pool under ErrorServerBusy: found by the fault soak (bench/watchdog_soak.py),
where the consumer hung for good once Exchange answered busy while its sessions were all in use."""

from __future__ import annotations

import threading
from contextlib import suppress

from exchangelib.errors import SessionPoolMinSizeReached
from exchangelib.protocol import Protocol

from ens.adapters.exchange import exchange_configuration
from ens.core.exchange_servers import ExchangeServer
from support.consumer_flow import simulator_server


def test_a_server_busy_answer_while_every_session_is_in_use_neither_hangs_nor_shrinks_the_pool() -> None:
    # No request is sent: sessions are made and taken out of the pool, never used.
    server = ExchangeServer.model_validate(
        simulator_server("pool", "http://127.0.0.1:9/EWS/Exchange.asmx", username="svc-pool@contoso.example")
    )
    protocol = Protocol(config=exchange_configuration(server, max_connections=4))
    in_use = [protocol.get_session(), protocol.get_session()]  # the pool: 2 of 4 made, none free
    shrunk = threading.Event()

    def on_server_busy() -> None:
        # What exchangelib's _handle_backoff does on every ErrorServerBusy.
        with suppress(SessionPoolMinSizeReached):
            protocol.decrease_poolsize()
        shrunk.set()

    threading.Thread(target=on_server_busy, daemon=True).start()

    assert shrunk.wait(timeout=10), "decrease_poolsize deadlocked on the session pool's lock"
    assert protocol.session_pool_size == len(in_use)
    for session in in_use:
        protocol.release_session(session)
