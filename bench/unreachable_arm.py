"""Time from `provision up` to its one error line when Azure Resource Manager cannot be reached.

Three endpoints, each on loopback: a closed port, a port that accepts and drops every connection,
and a TLS server that completes the handshake and then never answers (the slowest case: read
timeouts). The goal (issue 8): the error comes within about a minute, and leaves no record.

    python bench/unreachable_arm.py
"""

import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.arm import user_token

REPO = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


def serve(handle) -> int:
    """A loopback listener that hands each accepted connection to `handle`; its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)

    def accept() -> None:
        while True:
            connection, _ = server.accept()
            handle(connection)

    threading.Thread(target=accept, daemon=True).start()
    return server.getsockname()[1]


def up_error(port: int, ca_bundle: str, state: str) -> tuple[float, str]:
    env = {
        **os.environ,
        "PROVISION_ARM_ENDPOINT": f"https://127.0.0.1:{port}",
        "PROVISION_ARM_CA_BUNDLE": ca_bundle,
        "PROVISION_ARM_TOKEN": user_token(),
        "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000000",
        "PROVISION_ALLOW_IP": "127.0.0.1/32",
        "PROVISION_STATE_DIR": state,
        "PROVISION_YES": "1",
        "PROVISION_PRICES_ENDPOINT": "http://127.0.0.1:9/prices",
        "PYTHONPATH": str(REPO),
    }
    script = Path(sys.executable).parent / "provision"
    started = time.monotonic()
    done = subprocess.run(
        [str(script), "up", "--no-bootstrap"], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(errors) == 1, done.stderr
    assert not (Path(state) / "dsvm").exists(), "a failure before anything exists leaves no record"
    return time.monotonic() - started, errors[0]


def main() -> None:
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    held: list[ssl.SSLSocket] = []

    def silent(connection: socket.socket) -> None:
        try:
            held.append(context.wrap_socket(connection, server_side=True))  # handshake, then silence
        except (OSError, ssl.SSLError):
            connection.close()

    endpoints = {
        "closed port": closed_port(),
        "accepts, then drops": serve(lambda connection: connection.close()),
        "TLS, then never answers": serve(silent),
    }
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        for label, port in endpoints.items():
            state = Path(tmp) / label.replace(" ", "-").replace(",", "")
            state.mkdir()
            seconds, line = up_error(port, str(bundle), str(state))
            print(f"{label:<24} {seconds:5.1f} s  {line[:110]}")


if __name__ == "__main__":
    main()
