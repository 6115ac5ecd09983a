"""python -m exchange_simulator: run the simulator in the foreground with the demo organisation."""

from __future__ import annotations

import argparse
import logging
import tomllib
from pathlib import Path
from typing import Any

from exchange_simulator.simulator import ExchangeSimulator
from tooling_http import serve_until_stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exchange_simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--config", type=Path, help="TOML file with an [exchange_simulator] table")
    parser.add_argument("--time-scale", type=float, help="protocol seconds per real second")
    parser.add_argument("--no-demo", action="store_true", help="start empty, without demo mailboxes")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )

    settings: dict[str, Any] = {}
    if args.config:
        settings = dict(tomllib.loads(args.config.read_text(encoding="utf-8")).get("exchange_simulator", {}))
    if args.time_scale:
        settings["time_scale"] = args.time_scale
    sim = ExchangeSimulator(host=args.host, port=args.port, settings=settings)
    sim.start()
    if not args.no_demo:
        demo = sim.load_demo()
        for account in demo.get("service_accounts", []):
            print(
                f"service account {account['username']} / {account['password']} impersonation={account.get('can_impersonate', True)}"
            )
        for mailbox in demo.get("mailboxes", []):
            print(f"mailbox {mailbox['address']}")
    print(f"EWS endpoint  {sim.ews_url}")
    print(f"control API   {sim.control_url}/health")

    return serve_until_stopped(sim.stop)


if __name__ == "__main__":
    raise SystemExit(main())
