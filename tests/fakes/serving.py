"""A socketserver served from a daemon thread that stops within milliseconds: some 360 tests start and stop fake
servers, and socketserver's own loop looks for a stop every 0.5 s (0.05 s cost 0.1 s per fake ARM, two servers)."""

import socketserver
import threading

STOP_WITHIN = 0.005  # seconds between the serving loop's looks for shutdown(); an idle wake-up costs microseconds


def serve(server: socketserver.BaseServer, name: str | None = None) -> threading.Thread:
    """Start serving `server` in a daemon thread; `server.shutdown()` then returns within STOP_WITHIN."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": STOP_WITHIN}, name=name, daemon=True
    )
    thread.start()
    return thread
