"""`python -m ens_local --config local/config/local.toml`: run the local stack until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from ens_local.config import DEFAULT_CONFIG, ConfigError, load_settings
from ens_local.functions import EnvironmentConflict, FunctionLoadError
from ens_local.stack import LOGGER, LocalStack, LocalStackError
from ens_local.template import TemplateError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ens_local", description=__doc__)
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help=f"settings file (default {DEFAULT_CONFIG})"
    )
    parser.add_argument("--verbose", action="store_true", help="also show the libraries' own logging")
    arguments = parser.parse_args(argv)
    _configure_logging(arguments.verbose)

    try:
        settings = load_settings(arguments.config)
        stack = LocalStack(settings).start()
    except (ConfigError, TemplateError, EnvironmentConflict, FunctionLoadError, LocalStackError) as error:
        print(f"ens_local: {error}", file=sys.stderr)
        return 2

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    logging.getLogger(LOGGER).info("ready; Ctrl-C stops")
    try:
        while not stopping.wait(0.5):  # a bounded wait keeps the main thread responsive to signals
            pass
    finally:
        logging.getLogger(LOGGER).info("stopping")
        stack.stop()
    return 0


def _configure_logging(verbose: bool) -> None:
    formatter = logging.Formatter("%(asctime)s %(name)-16s %(message)s", "%H:%M:%S")
    root_handler = logging.StreamHandler(sys.stdout)
    root_handler.setFormatter(formatter)
    root = logging.getLogger()
    root.addHandler(root_handler)
    # Libraries (botocore's credential notices, werkzeug's and moto's per-request lines) stay quiet:
    # the stack prints one line per request and per batch itself.
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    # The stack's own lines get a handler of their own, out of reach of the filters Powertools'
    # Logger puts on the root handlers.
    own_handler = logging.StreamHandler(sys.stdout)
    own_handler.setFormatter(formatter)
    ours = logging.getLogger(LOGGER)
    ours.addHandler(own_handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    for noisy in ("werkzeug", "moto", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
