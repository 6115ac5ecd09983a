"""What the local HTTP tooling (the Exchange simulator, the push sink) shares: control-API route
tables, loopback URLs, and running a server in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel

RouteEntry = tuple[str, re.Pattern[str], type[BaseModel] | None, Any]


class Routes:
    """A control API's routes: `@routes.route("GET", "/mailboxes/{address}")` registers a handler;
    `{name}` matches one path segment and reaches the handler as a named group."""

    def __init__(self) -> None:
        self._entries: list[RouteEntry] = []

    def route(self, method: str, pattern: str, body: type[BaseModel] | None = None) -> Callable[[Any], Any]:
        compiled = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

        def register(handler: Any) -> Any:
            self._entries.append((method, compiled, body, handler))
            return handler

        return register

    def __iter__(self) -> Iterator[RouteEntry]:
        return iter(self._entries)


def base_url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def serve_until_stopped(stop: Callable[[], None]) -> int:
    """Block until SIGTERM or Ctrl-C, then call `stop`; the exit status of a tooling `__main__`."""
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return 0
