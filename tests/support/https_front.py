"""An HTTPS front on 127.0.0.1 that forwards each POST to an HTTP backend (the simulator's EWS URL),
with a certificate from a fresh CA: Exchange behind its internal CA, for tests of TLS verification."""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import trustme

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date", "host"}


@dataclass
class HttpsFront:
    url: str  # the backend's URL, through the front
    port: int
    ca: trustme.CA
    forwarded: list[str] = field(default_factory=list)  # the path of each request passed on

    @property
    def ca_pem(self) -> str:
        return self.ca.cert_pem.bytes().decode()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a handshake-only connection (a TLS probe) closes without a request, on purpose


@contextmanager
def https_front(backend_url: str) -> Iterator[HttpsFront]:
    backend = urlsplit(backend_url)
    ca = trustme.CA(organization_name="Contoso internal CA")
    forwarded: list[str] = []

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream = http.client.HTTPConnection(backend.hostname or "", backend.port, timeout=10)
            try:
                upstream.request("POST", self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                content = answer.read()
            finally:
                upstream.close()
            forwarded.append(self.path)
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = _QuietServer(("127.0.0.1", 0), Forward)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield HttpsFront(f"https://127.0.0.1:{port}{backend.path}", port, ca, forwarded)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
