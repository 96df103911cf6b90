"""Faults a fake VM fires when the kit runs a chosen command on it (FakeVMs.traps).

The VM user's ~/.bashrc sources the trap script first thing; bash reads ~/.bashrc before
the command of every SSH session (it does so when its stdin is a socket, as under sshd,
and ignores BASH_ENV then). An armed trap holds a fixed string: the first command
that contains it claims the trap (one shot), marks it fired, and waits while the test
process acts as root (drops the connection, restarts sshd with another host key...). Once
the trap is released, the command goes on, after sourcing the trap's shell snippet if it
has one (e.g. a `setsid` ahead on PATH that takes Jupyter's port first).

So a fault lands in a chosen step of `provision up`, before that step's command runs
(or, armed `at_exit`, after it did its work and before the kit hears it ended: an EXIT
trap), whatever the timing.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_POLL = 0.02  # seconds between looks for fired traps
_CLAIM_WAIT = 60  # seconds a fired trap's command waits to be released (or killed)

_SCRIPT = """\
# Sourced by the fake VM user's ~/.bashrc: fire the armed traps this command matches.
__fire() {{
  : >"$1.fired"
  __waited=0
  while [ ! -e "$1.released" ] && [ $__waited -lt {ticks} ]; do sleep 0.05; __waited=$((__waited + 1)); done
  [ ! -e "$1.snippet" ] || . "$1.snippet"
}}
for __trap in {directory}/*.armed; do
  [ -e "$__trap" ] || continue
  __trap=${{__trap%.armed}}
  case $BASH_EXECUTION_STRING in *"$(cat "$__trap.pattern")"*) ;; *) continue ;; esac
  rm "$__trap.armed" 2>/dev/null || continue
  if [ -e "$__trap.at_exit" ]; then trap "__fire $__trap" EXIT; else __fire "$__trap"; fi
done
unset __trap __waited
"""

# Binds 127.0.0.1:PORT, then leaves a child holding it (a bound socket, or an HTTP server that
# answers 200 to everything, as a careless web server would) and exits: the port is taken.
# The HTTP server marks (in the file MARK) any request that came with credentials.
_SQUATTER = """\
import http.server, os, socket, sys, time
port, mode, mark = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if mode == "http":
    class Everything(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.headers.get("Authorization") or "token=" in self.path:
                open(mark, "w").close()
            body = b'{"started": "now"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", port), Everything)
else:  # bound, not listening: Jupyter's bind fails all the same, and no probe hangs in a backlog nobody accepts
    server = socket.socket()
    server.bind(("127.0.0.1", port))
if os.fork():
    os._exit(0)
os.setsid()
if mode == "http":
    server.serve_forever()
time.sleep(3600)
"""


@dataclass
class Trap:
    """An armed trap: `fired` is set once a command claimed it and the test acted on it."""

    pattern: str
    action: Callable[[], None] | None
    release: bool
    fired: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None  # what the action raised, if anything

    def wait(self, timeout: float) -> bool:
        return self.fired.wait(timeout)


class Traps:
    """The trap script, the armed traps, and the thread that carries them out."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="fake-vm-traps-"))
        self.directory.chmod(0o777)  # the VM's users claim traps and write markers here
        self.script = self.directory / "trap.sh"
        self.script.write_text(_SCRIPT.format(directory=self.directory, ticks=int(_CLAIM_WAIT / 0.05)))
        self.script.chmod(0o644)
        self._squatter = self.directory / "squat.py"
        self._squatter.write_text(_SQUATTER)
        self._squatter.chmod(0o644)
        self._ids = itertools.count()
        self._pending: dict[str, Trap] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def bashrc_line(self) -> str:
        """The line, first in a VM user's ~/.bashrc, that lets the traps fire in that user's sessions."""
        return f"[ -r {self.script} ] && . {self.script}\n"

    def arm(
        self,
        pattern: str,
        action: Callable[[], None] | None = None,
        *,
        snippet: str = "",
        release: bool = True,
        at_exit: bool = False,
    ) -> Trap:
        """Fire once, on the first command containing `pattern`: run `action` here, then let the
        command go on (unless release=False: it waits, e.g. for a signal to reach `provision`).
        With at_exit, fire once the command has done its work, before its session reports the exit."""
        trap = Trap(pattern, action, release)
        name = f"t{next(self._ids)}"
        base = self.directory / name
        base.with_suffix(".pattern").write_text(pattern)
        if snippet:
            base.with_suffix(".snippet").write_text(snippet)
        if at_exit:
            base.with_suffix(".at_exit").touch()
        for path in base.parent.glob(f"{name}.*"):
            path.chmod(0o644)
        with self._lock:
            self._pending[name] = trap
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="fake-vm-traps", daemon=True)
                self._thread.start()
        base.with_suffix(".armed").touch()
        return trap

    def squat_snippet(self, *, http: bool) -> str:
        """Shell that makes the start of Jupyter find its port taken first: a `setsid` ahead on PATH that takes the
        port named by --ServerApp.port, then execs the real one (the process keeps its pid, as the kit expects)."""
        mode = "http" if http else "tcp"
        directory = self.directory / f"squat-{mode}"
        directory.mkdir(mode=0o755, exist_ok=True)
        wrapper = directory / "setsid"
        wrapper.write_text(
            "#!/bin/sh\n"
            "for arg; do case $arg in --ServerApp.port=*) port=${arg#--ServerApp.port=} ;; esac; done\n"
            f'python3 {self._squatter} "$port" {mode} {self._credentials_mark} && exec {shutil.which("setsid")} "$@"\n'
        )
        wrapper.chmod(0o755)
        return f"PATH={directory}:$PATH\n"

    @property
    def _credentials_mark(self) -> Path:
        return self.directory / "squatter-got-credentials"

    def squatter_got_credentials(self) -> bool:
        """True once a request with credentials (a token) reached a web server that took Jupyter's port."""
        return self._credentials_mark.exists()

    def _watch(self) -> None:
        while not self._stop.wait(_POLL):
            with self._lock:
                fired = [(n, t) for n, t in self._pending.items() if (self.directory / f"{n}.fired").exists()]
                for name, _ in fired:
                    del self._pending[name]
            for name, trap in fired:
                try:
                    if trap.action is not None:
                        trap.action()
                except Exception as e:  # reported through the trap, checked by the test
                    trap.error = e
                if trap.release:
                    (self.directory / f"{name}.released").touch()
                trap.fired.set()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        shutil.rmtree(self.directory, ignore_errors=True)
