"""One connection to the machine: run commands, move files, reach its loopback ports.

`connect()` gives an `SSHRemote` (paramiko, the host key pinned, one SSH
connection reused for every step); `LocalRemote` is the same protocol on this
machine. Paths starting with `~` are expanded against `home` here, never by a
remote shell.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.client
import logging
import os
import secrets
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self

import paramiko

LOG_CHANNEL = "bootstrap.ssh"  # paramiko logs our connected transports under this name
_HANDSHAKE_LOG_CHANNEL = f"{LOG_CHANNEL}.handshake"  # ... and those still connecting under this one
RECONNECT_TIMEOUT = 30.0  # seconds a dropped session may take to come back
_ATTEMPT_TIMEOUT = 15.0  # seconds for one TCP connect / banner / auth exchange
# Backoff between connection attempts. A machine still booting refuses at once (or drops the SYN, and
# the kernel resends it 1 and 3 s later): an attempt a second costs nothing and finds sshd within a
# second of it answering.
_FIRST_DELAY, _MAX_DELAY = 0.5, 1.0
_CHANNEL_OPEN_TIMEOUT = 30.0
_DROP_GRACE = 5.0  # seconds to tell a dropped connection from an error on a live one
# An SSH keepalive this often: an Azure public IP drops a TCP flow idle for 4 minutes (its default
# idle timeout, https://learn.microsoft.com/azure/virtual-network/ip-services/public-ip-addresses),
# and the notebook step can send nothing for longer.
KEEPALIVE = 30


@dataclass(frozen=True)
class Endpoint:
    """Where the machine answers SSH, who we are there, and the host key we expect."""

    host: str
    port: int
    user: str
    key_path: Path  # client private key, OpenSSH format
    host_key: str  # pinned host public key, "ssh-ed25519 AAAA..."


class BootstrapError(Exception):
    """An expected failure; str(e) is one line a user can act on and holds no secret."""


class HostKeyMismatch(BootstrapError):
    """The machine presented a host key other than the pinned one; nothing was sent."""


class ConnectTimeout(BootstrapError):
    """SSH did not answer within the limit."""


class AuthenticationFailed(BootstrapError):
    """The machine refused our key."""


class ConnectCanceled(BootstrapError):
    """Connecting was given up on request (the machine will not come)."""


@dataclass(frozen=True)
class CommandResult:
    exit_code: int  # -1 when the command died without an exit status (signal)
    stdout: str
    stderr: str


class CommandFailed(BootstrapError):
    """A remote command exited non-zero; `.result` holds its output."""

    def __init__(self, step: str, result: CommandResult):
        self.step = step
        self.result = result
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        last = lines[-1][:300] if lines else "no error output"
        super().__init__(f"{step} failed on the machine (exit code {result.exit_code}): {last}")


class CommandTimedOut(BootstrapError):
    """A remote command did not finish within its time limit."""

    def __init__(self, step: str, timeout: float):
        self.step = step
        super().__init__(f"{step} did not finish on the machine within {timeout:g} s")


class Forward:
    """A local 127.0.0.1 port that reaches a port on the machine, until closed.

    This base class forwards nothing: it stands for a port that is already local.
    """

    def __init__(self, local_port: int):
        self.local_port = local_port

    def close(self) -> None:
        """Stop forwarding (nothing to stop here)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Remote(Protocol):
    """What the bootstrap steps need from a machine."""

    home: str

    def run(
        self,
        command: str,
        *,
        stdin: str | None = None,
        timeout: float | None = None,
        check: bool = True,
        step: str | None = None,
    ) -> CommandResult: ...
    def put(self, local: Path, remote_path: str) -> None: ...
    def get(self, remote_path: str, local: Path) -> None: ...
    def read_text(self, remote_path: str) -> str: ...
    def write_text(self, remote_path: str, text: str, mode: int = 0o600) -> None: ...
    def http_get(
        self, port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 10
    ) -> tuple[int, bytes]: ...
    def forward(self, remote_port: int, local_port: int = 0) -> Forward: ...
    def close(self) -> None: ...


def expand(remote: Remote, path: str) -> str:
    """`path` with a leading `~` replaced by the machine's home directory."""
    if path == "~":
        return remote.home
    if path.startswith("~/"):
        return remote.home.rstrip("/") + path[1:]
    return path


def _step_name(command: str) -> str:
    words = command.split()
    return f"`{words[0][:40]}`" if words else "an empty command"


def _check(result: CommandResult, check: bool, step: str | None, command: str) -> CommandResult:
    if check and result.exit_code != 0:
        raise CommandFailed(step or _step_name(command), result)
    return result


def _http_get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str] | None) -> tuple[int, bytes]:
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------- SSH


class _Demote(logging.Filter):
    """Turn the records it matches into DEBUG ones: expected noise, shown only to who asks for it."""

    def __init__(self, matches: Callable[[str], bool]):
        super().__init__()
        self._matches = matches

    def filter(self, record: logging.LogRecord) -> bool:
        if self._matches(record.getMessage()):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


# "open FAILED ... Connection refused": a tunnel to a server that is still starting.
logging.getLogger(LOG_CHANNEL).addFilter(_Demote(lambda message: "open FAILED" in message))
# A transport that has not connected yet logs its failures (banner errors, with tracebacks)
# at ERROR; _open_client retries them and reports through on_wait and its exceptions.
logging.getLogger(_HANDSHAKE_LOG_CHANNEL).addFilter(_Demote(lambda message: True))


def _known_host_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _parse_host_key(host_key: str) -> paramiko.PKey:
    fields = host_key.split()
    if len(fields) < 2:
        raise BootstrapError("the pinned host key must look like 'ssh-ed25519 AAAA...'")
    try:
        return paramiko.PKey.from_type_string(fields[0], base64.b64decode(fields[1], validate=True))
    except (binascii.Error, paramiko.SSHException, ValueError) as e:
        raise BootstrapError(f"the pinned host key is not a valid {fields[0]} public key: {e}") from None


def _load_client_key(path: Path) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(path)
    except (OSError, ValueError, TypeError, paramiko.SSHException) as e:
        raise BootstrapError(f"cannot use SSH key {path}: {type(e).__name__}: {e}") from None


def _short(error: BaseException) -> str:
    if isinstance(error, paramiko.ssh_exception.NoValidConnectionsError) and error.errors:
        error = next(iter(error.errors.values()))  # e.g. ConnectionRefusedError
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _open_client(
    endpoint: Endpoint,
    timeout: float,
    on_wait: Callable[[str], None] | None,
    cancel: threading.Event | None = None,
    through: Callable[[], paramiko.Channel] | None = None,
) -> paramiko.SSHClient:
    """An authenticated SSHClient, retrying (with capped backoff) while SSH is not up yet, until `cancel` is set;
    over a channel that `through` opens (to endpoint's host and port, from a jump host) instead of a TCP connection
    if given."""
    pinned = _parse_host_key(endpoint.host_key)
    pkey = _load_client_key(endpoint.key_path)
    where = f"{endpoint.host}:{endpoint.port}"
    deadline = time.monotonic() + timeout
    delay, attempts = _FIRST_DELAY, 0
    cancel = cancel or threading.Event()
    while True:
        if cancel.is_set():
            raise ConnectCanceled(f"SSH to {where} given up ({attempts} attempts)")
        attempts += 1
        remaining = deadline - time.monotonic()
        client = paramiko.SSHClient()
        client.set_log_channel(_HANDSHAKE_LOG_CHANNEL)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.get_host_keys().add(_known_host_name(endpoint.host, endpoint.port), pinned.get_name(), pinned)
        attempt_timeout = max(1.0, min(_ATTEMPT_TIMEOUT, remaining))
        try:
            client.connect(
                endpoint.host,
                endpoint.port,
                sock=through() if through else None,
                username=endpoint.user,
                pkey=pkey,
                timeout=attempt_timeout,
                banner_timeout=attempt_timeout,
                auth_timeout=attempt_timeout,
                channel_timeout=_CHANNEL_OPEN_TIMEOUT,
                look_for_keys=False,
                allow_agent=False,
            )
            client.get_transport().set_log_channel(LOG_CHANNEL)
            client.get_transport().set_keepalive(KEEPALIVE)
            return client
        except paramiko.BadHostKeyException as e:
            client.close()
            raise HostKeyMismatch(
                f"{where} presented host key {e.key.get_name()} {e.key.fingerprint}, not the pinned "
                f"{e.expected_key.fingerprint}: the host may not be the machine we created; "
                "nothing was sent to it"
            ) from None
        except paramiko.AuthenticationException as e:
            client.close()
            raise AuthenticationFailed(
                f"{where} refused key {endpoint.key_path} for user {endpoint.user!r} ({e})"
            ) from None
        except paramiko.IncompatiblePeer as e:
            client.close()
            raise BootstrapError(f"cannot agree on SSH algorithms with {where}: {e}") from None
        except (OSError, EOFError, paramiko.SSHException) as e:  # not up yet: refused, timeout, banner
            client.close()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectTimeout(
                    f"SSH to {where} did not answer in {timeout:g} s ({attempts} attempts; last error: {_short(e)})"
                ) from None
            pause = min(delay, remaining)
            if on_wait:
                on_wait(f"SSH on {where} not ready ({_short(e)}); retrying in {pause:.1f} s")
            cancel.wait(pause)
            delay = min(delay * 2, _MAX_DELAY)


def fetch_host_key(host: str, port: int, timeout: float = 15) -> str:
    """The host key a server presents ("type base64"), for a person to confirm; nothing is trusted."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            transport = paramiko.Transport(sock)
            try:
                transport.start_client(timeout=timeout)
                key = transport.get_remote_server_key()
            finally:
                transport.close()
    except (OSError, EOFError, paramiko.SSHException) as e:
        raise BootstrapError(f"could not read the host key of {host}:{port}: {_short(e)}") from None
    return f"{key.get_name()} {key.get_base64()}"


def connect(
    endpoint: Endpoint,
    *,
    timeout: float = 300,
    on_wait: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> SSHRemote:
    """Connect to the machine, waiting up to `timeout` seconds for SSH to come up (ConnectCanceled once
    `cancel` is set)."""
    return SSHRemote(endpoint, _open_client(endpoint, timeout, on_wait, cancel))


def connect_through(
    head: SSHRemote, endpoint: Endpoint, *, timeout: float = 300, on_wait: Callable[[str], None] | None = None
) -> SSHRemote:
    """Connect to a machine only `head` can reach (a node at its private address): SSH over a direct-tcpip
    channel of the head's connection, as OpenSSH's ProxyJump does; the machine's own host key pinned.
    No connection to endpoint.host is made from here."""

    def channel() -> paramiko.Channel:
        return head._session(
            lambda transport: transport.open_channel(
                "direct-tcpip", (endpoint.host, endpoint.port), ("127.0.0.1", 0), timeout=_CHANNEL_OPEN_TIMEOUT
            )
        )

    return SSHRemote(endpoint, _open_client(endpoint, timeout, on_wait, through=channel), channel)


class SSHRemote:
    """The Remote protocol over one SSH connection (exec channels, SFTP, direct-tcpip)."""

    connections_opened = 0  # every SSH connection any SSHRemote opened, reconnections included
    _count_lock = threading.Lock()

    def __init__(
        self,
        endpoint: Endpoint,
        client: paramiko.SSHClient,
        through: Callable[[], paramiko.Channel] | None = None,
    ):
        self.endpoint = endpoint
        self._client = client
        self._through = through  # opens the channel a machine behind a jump host is reached by
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.RLock()
        self._sftp_lock = threading.Lock()  # one SFTP request at a time; exec channels run side by side
        self._count()
        self.home = self.run('printf %s "$HOME"', step="reading $HOME").stdout

    @classmethod
    def _count(cls) -> None:
        with cls._count_lock:
            cls.connections_opened += 1

    # -- the session, reconnected once when it dropped

    def _reconnect(self, dead: paramiko.Transport | None) -> paramiko.Transport:
        """A live transport: a new connection unless another thread already replaced `dead`."""
        with self._lock:
            current = self._client.get_transport()
            if current is not dead and current is not None and current.is_active():
                return current
            self._client.close()
            self._sftp = None
            self._client = _open_client(self.endpoint, RECONNECT_TIMEOUT, None, through=self._through)
            self._count()
            return self._client.get_transport()

    def _session(self, operation):
        """Run operation(transport); if the connection has dropped, reconnect once and (re)run it.

        So every command must be safe to run twice: those that start something (Jupyter,
        a notebook run) look for what an earlier try started first, under a lock or a claim.
        """
        transport = self._client.get_transport()
        if transport is not None and transport.is_active():
            try:
                return operation(transport)
            except paramiko.ChannelException:
                raise  # the machine refused that channel; the connection is fine
            except (EOFError, ConnectionError, paramiko.SSHException):
                transport.join(_DROP_GRACE)  # the transport's thread ends at once if it dropped
                if transport.is_active():
                    raise
        return operation(self._reconnect(transport))

    def _sftp_client(self, transport: paramiko.Transport) -> paramiko.SFTPClient:
        with self._lock:
            if self._sftp is None or self._sftp.get_channel().get_transport() is not transport:
                self._sftp = paramiko.SFTPClient.from_transport(transport)
            return self._sftp

    def _with_sftp(self, operation):
        with self._sftp_lock:
            return self._session(lambda transport: operation(self._sftp_client(transport)))

    # -- commands

    def run(
        self,
        command: str,
        *,
        stdin: str | None = None,
        timeout: float | None = None,
        check: bool = True,
        step: str | None = None,
    ) -> CommandResult:
        """Run `command` in the user's shell on the machine."""
        result = self._session(lambda transport: self._exec(transport, command, stdin, timeout, step))
        return _check(result, check, step, command)

    def open_command(self, command: str) -> paramiko.Channel:
        """Start `command` and hand back its channel (stderr merged into stdout) to read as it runs."""

        def start(transport: paramiko.Transport) -> paramiko.Channel:
            channel = transport.open_session(timeout=_CHANNEL_OPEN_TIMEOUT)
            channel.set_combine_stderr(True)
            channel.exec_command(command)
            channel.shutdown_write()
            return channel

        return self._session(start)

    @staticmethod
    def _exec(
        transport: paramiko.Transport, command: str, stdin: str | None, timeout: float | None, step: str | None
    ) -> CommandResult:
        channel = transport.open_session(timeout=_CHANNEL_OPEN_TIMEOUT)
        try:
            channel.exec_command(command)
            if stdin is not None:
                channel.sendall(stdin.encode())
            channel.shutdown_write()
            deadline = None if timeout is None else time.monotonic() + timeout
            out, err = bytearray(), bytearray()
            while True:
                if channel.recv_ready():
                    out += channel.recv(65536)
                elif channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                elif channel.exit_status_ready() or channel.closed:
                    break
                else:
                    wait = 1.0 if deadline is None else deadline - time.monotonic()
                    if wait <= 0:
                        raise CommandTimedOut(step or _step_name(command), timeout)
                    select.select([channel], [], [], min(wait, 1.0))
            if channel.recv_exit_status() == -1 and not channel.eof_received:
                raise EOFError("the SSH connection dropped during the command")
            return CommandResult(channel.recv_exit_status(), out.decode(errors="replace"), err.decode(errors="replace"))
        finally:
            channel.close()

    # -- files (SFTP)

    def put(self, local: Path, remote_path: str) -> None:
        target = expand(self, remote_path)

        def upload(sftp: paramiko.SFTPClient) -> None:
            _sftp_makedirs(sftp, os.path.dirname(target))
            sftp.put(str(local), target)

        self._with_sftp(upload)

    def get(self, remote_path: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        self._with_sftp(lambda sftp: sftp.get(expand(self, remote_path), str(local)))

    def read_text(self, remote_path: str) -> str:
        def read(sftp: paramiko.SFTPClient) -> str:
            with sftp.open(expand(self, remote_path), "r") as f:
                return f.read().decode()

        return self._with_sftp(read)

    def write_text(self, remote_path: str, text: str, mode: int = 0o600) -> None:
        """Write atomically; the file has `mode` before any content is written."""
        target = expand(self, remote_path)

        def write(sftp: paramiko.SFTPClient) -> None:
            _sftp_makedirs(sftp, os.path.dirname(target))
            partial = f"{target}.partial-{secrets.token_hex(4)}"
            with sftp.open(partial, "w") as f:
                sftp.chmod(partial, mode)
                f.write(text.encode())
            sftp.posix_rename(partial, target)

        self._with_sftp(write)

    # -- the machine's loopback ports (direct-tcpip)

    def _open_direct(self, port: int, timeout: float = _CHANNEL_OPEN_TIMEOUT) -> paramiko.Channel:
        try:
            return self._session(
                lambda transport: transport.open_channel(
                    "direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0), timeout=timeout
                )
            )
        except paramiko.ChannelException as e:
            raise ConnectionRefusedError(f"nothing answers on 127.0.0.1:{port} on the machine ({e.text})") from None

    def http_get(
        self, port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 10
    ) -> tuple[int, bytes]:
        """GET http://127.0.0.1:port/path as seen from the machine; raises ConnectionRefusedError."""
        connection = _ChannelHTTPConnection(self, port, timeout)
        try:
            return _http_get(connection, path, headers)
        finally:
            connection.close_channel()

    def forward(self, remote_port: int, local_port: int = 0) -> Forward:
        return _SSHForward(self, remote_port, local_port)

    def close(self) -> None:
        with self._lock:
            self._client.close()
            self._sftp = None


def _sftp_makedirs(sftp: paramiko.SFTPClient, directory: str) -> None:
    if not directory or directory == "/":
        return
    try:
        sftp.stat(directory)
    except FileNotFoundError:
        _sftp_makedirs(sftp, os.path.dirname(directory))
        sftp.mkdir(directory)


class _ChannelHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection over a direct-tcpip channel to the machine's loopback.

    http.client closes its socket as soon as a "Connection: close" response has
    its headers, counting on the response's file to keep a real socket open; a
    channel would drop the unread body. So the socket it sees ignores close(),
    and close_channel() ends the channel once the body is read.
    """

    def __init__(self, remote: SSHRemote, port: int, timeout: float):
        super().__init__("127.0.0.1", port, timeout=timeout)
        self._remote = remote
        self._channel: paramiko.Channel | None = None

    def connect(self) -> None:
        self._channel = self._remote._open_direct(self.port, self.timeout)
        self._channel.settimeout(self.timeout)
        self.sock = _UnclosableChannel(self._channel)

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()


class _UnclosableChannel:
    """The socket face of a channel that http.client needs: sendall, makefile, and a no-op close."""

    def __init__(self, channel: paramiko.Channel):
        self._channel = channel

    def sendall(self, data: bytes) -> None:
        self._channel.sendall(data)

    def makefile(self, mode: str):
        return self._channel.makefile(mode)

    def close(self) -> None:
        """Left to _ChannelHTTPConnection.close_channel()."""


class _SSHForward(Forward):
    """A local listener whose every connection is a direct-tcpip channel to the machine."""

    def __init__(self, remote: SSHRemote, remote_port: int, local_port: int):
        self._remote = remote
        self._remote_port = remote_port
        self._listener = socket.create_server(("127.0.0.1", local_port))
        self._open: set[socket.socket | paramiko.Channel] = set()
        self._open_lock = threading.Lock()
        self._closed = False
        super().__init__(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, name=f"forward-{self.local_port}", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            channel = self._remote._open_direct(self._remote_port)
        except (OSError, BootstrapError):
            client.close()
            return
        with self._open_lock:
            if self._closed:
                client.close()
                channel.close()
                return
            self._open.update((client, channel))
        try:
            _pump(client, channel)
        except (OSError, ValueError, EOFError):
            pass  # either end went away, or close() closed them under us
        finally:
            with self._open_lock:
                self._open.difference_update((client, channel))
            client.close()
            channel.close()

    def close(self) -> None:
        with self._open_lock:
            self._closed = True
            ends = list(self._open)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self._listener.close()
        for end in ends:
            end.close()


def _pump(client: socket.socket, channel: paramiko.Channel) -> None:
    """Copy bytes both ways until either side closes."""
    while True:
        readable, _, _ = select.select([client, channel], [], [], 5.0)
        for source, sink in ((client, channel), (channel, client)):
            if source in readable:
                data = source.recv(65536)
                if not data:
                    return
                sink.sendall(data)


# ------------------------------------------------------------------------- local


class LocalRemote:
    """The Remote protocol on this machine: bash, file copies, plain HTTP; no SSH."""

    def __init__(self, home: str | None = None, env: dict[str, str] | None = None):
        self.home = home or str(Path.home())
        self._env = {**os.environ, **(env or {}), "HOME": self.home}

    def run(
        self,
        command: str,
        *,
        stdin: str | None = None,
        timeout: float | None = None,
        check: bool = True,
        step: str | None = None,
    ) -> CommandResult:
        try:
            done = subprocess.run(
                ["bash", "-c", command],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=self.home,
                env=self._env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise CommandTimedOut(step or _step_name(command), timeout) from None
        return _check(CommandResult(done.returncode, done.stdout, done.stderr), check, step, command)

    def put(self, local: Path, remote_path: str) -> None:
        target = Path(expand(self, remote_path))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)

    def get(self, remote_path: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(expand(self, remote_path), local)

    def read_text(self, remote_path: str) -> str:
        return Path(expand(self, remote_path)).read_text()

    def write_text(self, remote_path: str, text: str, mode: int = 0o600) -> None:
        target = Path(expand(self, remote_path))
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.partial-{secrets.token_hex(4)}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w") as f:
            os.fchmod(fd, mode)  # O_CREAT's mode is masked by the umask
            f.write(text)
        os.replace(partial, target)

    def http_get(
        self, port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 10
    ) -> tuple[int, bytes]:
        return _http_get(http.client.HTTPConnection("127.0.0.1", port, timeout=timeout), path, headers)

    def forward(self, remote_port: int, local_port: int = 0) -> Forward:
        return Forward(remote_port)

    def close(self) -> None:
        """Nothing to close."""
