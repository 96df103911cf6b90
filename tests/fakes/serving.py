"""Fake servers served from a daemon thread and stopped at once: some 360 tests start and stop one, and
socketserver's own loop notices a shutdown() only at its next poll (0.05 s polls cost 0.1 s per fake ARM; 5 ms
polls cost more CPU than they saved)."""

import socket
import socketserver
import threading


def serve(server: socketserver.BaseServer, name: str | None = None) -> threading.Thread:
    """Serve `server` from a daemon thread until `stop(server)`."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 60}, name=name, daemon=True)
    thread.start()
    return thread


def stop(server: socketserver.TCPServer) -> None:
    """Stop serving and close the listening socket. Shutting that socket down makes it readable, which wakes the
    serving loop now: it sees the stop (or, a moment before, fails an accept quietly and looks again)."""
    stopper = threading.Thread(target=server.shutdown)
    stopper.start()
    server.socket.shutdown(socket.SHUT_RDWR)
    stopper.join()
    server.server_close()
