"""A token-protected JupyterLab on the machine: start, wait ready, find, stop (bootstrap.pychoice
finds the Python it runs with).

The server binds 127.0.0.1 and is reached through the connection, unless it is given
TLS files: only then does it bind every interface, and it speaks HTTPS only. The token
travels over stdin, never on a command line, in a file or in the log, and the
kernels do not inherit it.
"""

from __future__ import annotations

import http.client
import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

from bootstrap.pyenv import pin_kernel_script
from bootstrap.remote import BootstrapError, Remote, expand
from bootstrap.workdir import WORKDIR

STATE_DIR = "~/.dsvm-kit"
STATE_FILE = f"{STATE_DIR}/jupyter.json"
LOG_FILE = f"{STATE_DIR}/jupyter.log"
TLS_DIR = f"{STATE_DIR}/tls"
# JupyterLab's user settings, in a directory of ours: there, "never fetch Jupyter news" is set
# (as the user's answer would be), so JupyterLab does not greet them with that question.
USER_SETTINGS_DIR = f"{STATE_DIR}/lab/user-settings"
_NEWS_SETTING = ("@jupyterlab/apputils-extension/notification.jupyterlab-settings", '{"fetchNews": "false"}')
LOCK_FILE = f"{STATE_DIR}/jupyter.lock"  # held while one command looks for a server and starts one
_LOCK_WAIT = 60  # seconds a start waits for another one on the machine

_FREE_PORT = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
# JupyterLab with the token taken out of the environment first, so kernels do not inherit it.
# Its first act: let go of the start lock (fd 9, inherited so that the lock outlives a start script killed with
# its connection, until this server's state is written and its command line is JupyterLab's).
_LAUNCH = """\
import os, sys
os.closerange(9, 10)
from traitlets.config import Config
from jupyterlab.labapp import LabApp
config = Config()
config.IdentityProvider.token = os.environ.pop("JUPYTER_TOKEN")
LabApp.initialize_server(argv=sys.argv[1:], config=config).start()
"""
_SERVER_MARK = "jupyterlab.labapp"  # in the server's command line
_STATE_PID_PORT = "import json, sys; s = json.load(open(sys.argv[1])); print(int(s['pid']), int(s['port']))"

# GET path with headers within a timeout, from the server: (status, body). Raises OSError.
HTTPGet = Callable[[str, dict[str, str], float], tuple[int, bytes]]


@dataclass(frozen=True)
class JupyterServer:
    python: str
    port: int
    pid: int
    root: str


@dataclass(frozen=True)
class TLSFiles:
    """Paths on the machine of the server's certificate and private key (PEM)."""

    certfile: str
    keyfile: str


def find_running(remote: Remote) -> JupyterServer | None:
    """The server start() left running, if its process is still that server."""
    try:
        state = json.loads(remote.read_text(STATE_FILE))
        server = JupyterServer(str(state["python"]), int(state["port"]), int(state["pid"]), str(state["root"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    cmdline = remote.run(f"tr '\\0' ' ' < /proc/{server.pid}/cmdline", check=False).stdout
    if _SERVER_MARK in cmdline and f"--ServerApp.port={server.port} " in cmdline:
        return server
    return None


def install_tls(remote: Remote, cert_pem: str, key_pem: str) -> TLSFiles:
    """Write the certificate and private key to TLS_DIR (0700), each file 0600 from the start."""
    directory = expand(remote, TLS_DIR)
    remote.run(
        f"umask 077 && mkdir -p {shlex.quote(directory)} && chmod 700 {shlex.quote(directory)}",
        step="making Jupyter's TLS directory",
    )
    files = TLSFiles(f"{directory}/jupyter.crt", f"{directory}/jupyter.key")
    remote.write_text(files.certfile, cert_pem, mode=0o600)
    remote.write_text(files.keyfile, key_pem, mode=0o600)
    return files


def start(
    remote: Remote,
    python: str,
    token: str,
    *,
    root: str = WORKDIR,
    port: int | None = None,
    tls: TLSFiles | None = None,
) -> JupyterServer:
    """Start JupyterLab (a free port unless given), detached, serving `root`.

    It binds 127.0.0.1, or with `tls` every interface, serving HTTPS only. Callers reuse
    a running server (find_running + token_works) instead of starting another. The check
    and the start run under a lock on the machine, in one command that also writes
    STATE_FILE: run again after a dropped connection, it answers with the server the
    first run started instead of starting a second one. The process that becomes the server
    writes STATE_FILE itself, under the lock, before it runs JupyterLab (and this command answers
    once it has): a start script killed with its connection (sshd restarted) cannot leave a
    server that no state file names.
    """
    python, root = expand(remote, python), expand(remote, root)
    py = shlex.quote(python)
    port_value = str(int(port)) if port else f"$({py} -c {shlex.quote(_FREE_PORT)})"
    options = [
        "--no-browser",
        f"--ServerApp.ip={'0.0.0.0' if tls else '127.0.0.1'}",
        '--ServerApp.port="$port"',
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={shlex.quote(root)}",
        f"--LabApp.user_settings_dir={shlex.quote(expand(remote, USER_SETTINGS_DIR))}",
    ]
    if tls:
        options += [
            f"--ServerApp.certfile={shlex.quote(tls.certfile)}",
            f"--ServerApp.keyfile={shlex.quote(tls.keyfile)}",
        ]
    state, lock, log = (shlex.quote(expand(remote, path)) for path in (STATE_FILE, LOCK_FILE, LOG_FILE))
    news = shlex.quote(f"{expand(remote, USER_SETTINGS_DIR)}/{_NEWS_SETTING[0]}")
    record = f'{{"python": {json.dumps(python)}, "port": %s, "pid": %s, "root": {json.dumps(root)}}}\\n'
    script = f"""\
umask 077
mkdir -p {shlex.quote(expand(remote, STATE_DIR))} {shlex.quote(root)} || exit 1
IFS= read -r JUPYTER_TOKEN || exit 1
export JUPYTER_TOKEN
exec 9>>{lock} || exit 1
flock -w {_LOCK_WAIT} 9 || {{ echo "another start of Jupyter held {LOCK_FILE} for {_LOCK_WAIT} s" >&2; exit 1; }}
set -- $({py} -c {shlex.quote(_STATE_PID_PORT)} {state} 2>/dev/null)
case "$#:$(tr '\\0' ' ' </proc/"$1"/cmdline 2>/dev/null)" in
  2:*{_SERVER_MARK}*"--ServerApp.port=$2 "*) echo "$1 $2"; exit 0 ;;  # an earlier try of this command started it
esac
[ -e {news} ] || {{ mkdir -p "$(dirname {news})" && printf '%s\\n' {shlex.quote(_NEWS_SETTING[1])} >{news}; }} || exit 1
{pin_kernel_script(remote, python)}port={port_value} || exit 1
as_root=; [ "$(id -u)" -ne 0 ] || as_root=--ServerApp.allow_root=True  # local target run as root
cd {shlex.quote(root)} || exit 1
pid=$( (
  pid=$(exec sh -c 'echo "$PPID"')
  printf {shlex.quote(record)} "$port" "$pid" >{state}.partial && mv {state}.partial {state} || exit 1
  echo "$pid"
  exec setsid {py} -c {shlex.quote(_LAUNCH)} {" ".join(options)} $as_root </dev/null >{log} 2>&1
) & )
[ -n "$pid" ] || exit 1
echo "$pid $port"
"""
    out = remote.run(script, stdin=token + "\n", step="starting Jupyter").stdout.split()
    return JupyterServer(python, int(out[1]), int(out[0]), root)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


def _plain_http(remote: Remote, server: JupyterServer) -> HTTPGet:
    """GET over plain HTTP from the machine's loopback (through the connection)."""
    return lambda path, headers, timeout: remote.http_get(server.port, path, headers, timeout)


def token_works(remote: Remote, server: JupyterServer, token: str, *, get: HTTPGet | None = None) -> bool:
    """True when /api/status answers 200 to this token (through `get`, else plain HTTP)."""
    get = get or _plain_http(remote, server)
    try:
        status, _ = get("/api/status", _auth(token), 10)
    except (OSError, http.client.HTTPException):
        return False
    return status == 200


READY_WAIT = 180.0  # seconds Jupyter may take to answer (first start on a cold disk imports a lot)


def wait_ready(
    remote: Remote, server: JupyterServer, token: str, *, timeout: float = READY_WAIT, get: HTTPGet | None = None
) -> None:
    """Poll /api/status (through `get`, else plain HTTP) until it accepts the token.

    Raise with the log's tail if the server dies; errors that `get` raises other than
    OSError and HTTPException are not retried.
    """
    get = get or _plain_http(remote, server)
    deadline = time.monotonic() + timeout
    while True:
        if _answers_without_token(remote, server):
            raise BootstrapError(
                f"port {server.port} on the machine answers without a token: another program holds it, "
                "not the Jupyter just started (it was not sent the token)"
            )
        try:
            status, _ = get("/api/status", _auth(token), 10)
            if status == 200:
                return
            if status == 403:
                raise BootstrapError(f"Jupyter on port {server.port} refuses the token")
            last = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        if not _is_alive(remote, server.pid):
            raise BootstrapError(f"Jupyter exited while starting: {_log_tail(remote, token)}")
        if time.monotonic() > deadline:
            raise BootstrapError(
                f"Jupyter (pid {server.pid}) did not answer on port {server.port} of the machine in {timeout:g} s "
                f"(last: {last}); its log: {_log_tail(remote, token) or 'empty'}"
            )
        time.sleep(0.25)


def _answers_without_token(remote: Remote, server: JupyterServer) -> bool:
    """True when the server's port answers /api/status without a token. Jupyter refuses that (403):
    so a process that took the port first answers, and must not be sent the token."""
    try:
        status, _ = remote.http_get(server.port, "/api/status", timeout=10)
    except (OSError, http.client.HTTPException):
        return False
    return status == 200


def _is_alive(remote: Remote, pid: int) -> bool:
    """True while pid runs and is not a zombie."""
    stat = remote.run(f"ps -o stat= -p {int(pid)}", check=False).stdout.strip()
    return bool(stat) and not stat.startswith("Z")


def _log_tail(remote: Remote, token: str, lines: int = 15) -> str:
    tail = remote.run(f"tail -n {lines} {shlex.quote(expand(remote, LOG_FILE))}", check=False).stdout
    return " | ".join(line.strip() for line in tail.replace(token, "<token>").splitlines() if line.strip())


def stop(remote: Remote) -> bool:
    """Stop the server start() left (SIGTERM, wait, SIGKILL) and forget it; True if one was running."""
    server = find_running(remote)
    state = shlex.quote(expand(remote, STATE_FILE))
    if server is None:
        remote.run(f"rm -f {state}", step="removing Jupyter's state file")
        return False
    pid = int(server.pid)
    script = f"""\
gone() {{ case "$(ps -o stat= -p {pid})" in ""|Z*) return 0;; esac; return 1; }}
kill -TERM {pid} 2>/dev/null
i=0
while ! gone && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
gone || kill -KILL {pid} 2>/dev/null
rm -f {state}
"""
    remote.run(script, step="stopping Jupyter")
    return True
