"""python -m push_sink: run the CNS stand-in in the foreground and print how to push to it."""

from __future__ import annotations

import argparse
import logging

from push_sink.sink import PushSink
from push_sink.tokens import mint_token
from tooling_http import serve_until_stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m push_sink", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=8082, help="0 picks a free port")
    parser.add_argument("--no-tls", action="store_true", help="plain HTTP instead of HTTPS")
    parser.add_argument("--token", action="append", help="bearer token to accept (default: a fresh JWT)")
    parser.add_argument("--fault-seed", type=int, help="seed for fraction faults that bring none")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )

    tokens = args.token or [mint_token()]
    sink = PushSink(
        host=args.host, port=args.port, tls=not args.no_tls, tokens=tokens, fault_seed=args.fault_seed
    ).start()
    print(f"push endpoint {sink.url}")
    if sink.ca_bundle_path:
        print(f"CA bundle     {sink.ca_bundle_path}")
    for token in tokens:
        print(f"bearer token  {token}")
    print(f"control API   {sink.control_url}/pushes")

    return serve_until_stopped(sink.stop)


if __name__ == "__main__":
    raise SystemExit(main())
