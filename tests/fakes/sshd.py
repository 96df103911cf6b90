"""A real OpenSSH server on 127.0.0.1 for tests, and Ed25519 keys to use with it."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.fakes import processes

SSHD_BINARY = "/usr/sbin/sshd"


@dataclass(frozen=True)
class KeyPair:
    private_openssh: str  # "-----BEGIN OPENSSH PRIVATE KEY-----..."
    public_line: str  # "ssh-ed25519 AAAA..."

    def write_private(self, path: Path) -> Path:
        """Write the private key 0600 (as the kit's own key files are) and return its path."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.private_openssh)
        return path


def new_ed25519_key() -> KeyPair:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return KeyPair(private, public)


def public_line_of(private_openssh: str) -> str:
    key = serialization.load_ssh_private_key(private_openssh.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


# Below Linux's ephemeral range (ip_local_port_range, 32768-60999 by default): a port handed out here cannot become the
# local port of one of the suite's own client connections before the server it is meant for binds it (seen: a fake
# VM's sshd found its port taken).
_BELOW_EPHEMERAL = range(20000, 32768)


def free_port() -> int:
    """A port free on 127.0.0.1 now, below the ephemeral range."""
    for _ in range(100):
        port = random.choice(_BELOW_EPHEMERAL)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on 127.0.0.1 in {_BELOW_EPHEMERAL.start}-{_BELOW_EPHEMERAL.stop - 1}")


class SSHD:
    """`sshd -D -e` on address:port (127.0.0.1 unless given) with its own host key and config; a context manager.

    Users log in with the keys in their ~/.ssh/authorized_keys (or `authorized_keys_file`,
    an sshd_config pattern). `set_env` adds SetEnv lines (e.g. PATH) to every session.
    """

    def __init__(
        self,
        port: int,
        host_key_openssh: str,
        *,
        workdir: Path | None = None,
        authorized_keys_file: str = ".ssh/authorized_keys",
        set_env: dict[str, str] | None = None,
        address: str = "127.0.0.1",
    ):
        self.port = port
        self.address = address
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="fake-sshd-"))
        self.config = self.workdir / "sshd_config"
        self.log_path = self.workdir / "sshd.log"
        self._host_key = self.workdir / "ssh_host_ed25519_key"
        self.set_host_key(host_key_openssh)
        lines = [
            f"Port {port}",
            f"ListenAddress {address}",
            f"HostKey {self._host_key}",
            f"PidFile {self.workdir / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized_keys_file}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            "UsePAM no",
            "StrictModes no",
            "PrintMotd no",
            "LogLevel INFO",
            "Subsystem sftp internal-sftp",
        ]
        lines += [f"SetEnv {name}={value}" for name, value in (set_env or {}).items()]
        self.config.write_text("\n".join(lines) + "\n")
        self._process: subprocess.Popen | None = None

    def set_host_key(self, host_key_openssh: str) -> None:
        """The host key sshd presents from its next start."""
        fd = os.open(self._host_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(host_key_openssh)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 10.0) -> SSHD:
        processes.become_subreaper()  # session processes outlive the listener: we reap them
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [SSHD_BINARY, "-D", "-e", "-f", str(self.config)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        processes.protect(self._process.pid)
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"sshd exited at start: {self.log()[-2000:]}")
            try:
                socket.create_connection((self.address, self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"sshd did not listen on {self.port}: {self.log()[-2000:]}") from None
                time.sleep(0.02)

    def drop_sessions(self) -> None:
        """Kill every per-connection process (and what runs in it): each client sees its connection drop.
        What a command detached with setsid lives on, as on a real machine."""
        if self._process:
            processes.kill_and_reap(processes.descendants(self._process.pid, but_detached=True))

    def stop(self) -> None:
        """Stop the listener and every session it started; wait() on all of them."""
        if self._process is None:
            return
        sessions = processes.descendants(self._process.pid)
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        processes.unprotect(self._process.pid)
        processes.kill_and_reap(sessions)
        self._process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cleanup(self) -> None:
        """Stop, and remove the working directory if this object made it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()
