"""A threaded HTTPS server on 127.0.0.1 at a free port, speaking HTTP/1.1 with keep-alive.

TLS comes from a trustme CA whose PEM is written to a file for `connection_verify`. The TLS
handshake runs in the connection's own thread, so a slow client never blocks `accept()`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import trustme

from ..serving import serve, stop
from .routes import Reply

HandleFn = Callable[[str, str, object, bytes], Reply]

_QUIET_ERRORS = (OSError,)  # clients that hang up, TLS errors, timeouts


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _TLSServer

    def setup(self) -> None:
        self.request.settimeout(10)
        self.request.do_handshake()
        self.request.settimeout(None)
        super().setup()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        reply = self.server.handle_fn(self.command, self.path, self.headers, raw_body)
        if reply.drop:
            self.close_connection = True  # the socket closes with no response at all
            return
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _serve

    def log_message(self, format: str, *args) -> None:
        """Silent: the request log lives in Routes."""


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, handle_fn: HandleFn, context: ssl.SSLContext):
        self.handle_fn = handle_fn
        self._context = context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skip HTTPServer's reverse DNS lookup
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self):
        raw, address = self.socket.accept()
        connection = self._context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], _QUIET_ERRORS):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Wake every keep-alive thread still waiting for a next request."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class HttpsServer:
    """Serves `handle_fn` over HTTPS until `stop()`."""

    def __init__(self, handle_fn: HandleFn):
        self._dir = tempfile.TemporaryDirectory(prefix="fake-arm-")
        ca = trustme.CA()
        self.ca_bundle = os.path.join(self._dir.name, "ca.pem")
        ca.cert_pem.write_to_path(self.ca_bundle)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._server = _TLSServer(handle_fn, context)
        self.url = f"https://127.0.0.1:{self._server.server_port}"
        self._thread = serve(self._server, name="fake-arm")

    def stop(self) -> None:
        stop(self._server)
        self._server.close_connections()
        self._thread.join()
        self._dir.cleanup()
