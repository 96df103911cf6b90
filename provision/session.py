"""The machine side of `up`, driven from the laptop: connect, Jupyter, notebooks, GPU check."""

import math
import secrets
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bootstrap
from bootstrap import datasets, idle, jupyter, notebooks, pychoice
from bootstrap.gpucheck import Verdict, judge
from bootstrap.pyenv import install
from bootstrap.remote import ConnectTimeout, Endpoint, LocalRemote, Remote, SSHRemote, connect
from bootstrap.workdir import WORKDIR
from provision.output import Output
from provision.public import PublicJupyter, deployment_certificate
from provision.settings import OPEN_TO_ALL, Settings
from provision.state import TOKEN_FILE, Journal, Record, StateStore
from provision.targets import Machine

NOTEBOOK = notebooks.TRAINING
SSH_WAIT = 600  # seconds SSH may take to answer once Azure says the VM is created (its first boot)


def notebooks_dir() -> Path:
    """The notebooks to push: bundled in the wheel, or the repository's notebooks/."""
    return shipped("notebooks")


def shipped(folder: str) -> Path:
    """A folder of the repository the kit pushes to machines (notebooks, examples): bundled in the wheel as
    bootstrap/bundled_<folder>, else the repository's own."""
    bundled = Path(bootstrap.__file__).parent / f"bundled_{folder}"
    return bundled if bundled.is_dir() else Path(__file__).resolve().parents[1] / folder


def endpoint(machine: Machine) -> Endpoint:
    """How to reach the machine over SSH, its host key pinned."""
    assert machine.key_path and machine.host_key, "an SSH machine always has a key and a host key"
    return Endpoint(
        host=machine.host,
        port=machine.port,
        user=machine.user,
        key_path=Path(machine.key_path),
        host_key=machine.host_key,
    )


def _ssh_step(machine: Machine) -> str:
    return f"SSH to {machine.user}@{machine.host}:{machine.port} (host key pinned)"


def _with_address_hint(error: ConnectTimeout, machine: Machine) -> ConnectTimeout:
    if machine.ssh_from is None or machine.ssh_from in OPEN_TO_ALL:
        return error
    return ConnectTimeout(
        f"{error}; the security group admits SSH only from {machine.ssh_from}: if you are on a VPN or "
        "behind a corporate NAT, your address as Azure sees it may differ: pass --allow-ip"
    )


def open_remote(machine: Machine, out: Output, *, timeout: float = SSH_WAIT) -> Remote:
    """One connection to the machine, reused for every step (the local transport for local)."""
    if not machine.over_ssh:
        return LocalRemote()
    with out.step(_ssh_step(machine)) as step:
        try:
            return connect(endpoint(machine), timeout=timeout, on_wait=step.update)
        except ConnectTimeout as e:
            raise _with_address_hint(e, machine) from None


class EarlySSH:
    """SSH to a machine still being made: connecting (pinned host key, backoff) begins in the background
    as soon as its address is known (`start`, a target's on_address), so that the bootstrap begins the
    moment sshd answers rather than once the cloud reports the machine made and a poll notices it.
    `cancel` gives it up (a failed create), closing what it may have opened."""

    def __init__(self) -> None:
        self._dial: _Dial | None = None

    def start(self, machine: Machine) -> None:
        if not machine.over_ssh or (self._dial is not None and self._dial.machine == machine):
            return
        self.cancel()  # an earlier attempt's machine (another region): it is gone
        self._dial = _Dial(machine)

    def cancel(self) -> None:
        if self._dial is not None:
            self._dial.cancel()
            self._dial = None

    def remote(self, machine: Machine, out: Output, *, timeout: float = SSH_WAIT) -> Remote:
        """The connection to `machine`: the one begun early, waited for at most `timeout` s more, else a new one."""
        dial, self._dial = self._dial, None
        if dial is None or dial.machine != machine:
            if dial is not None:
                dial.cancel()
            return open_remote(machine, out, timeout=timeout)
        with out.step(_ssh_step(machine)):
            try:
                return dial.result(timeout)
            except ConnectTimeout as e:
                raise _with_address_hint(e, machine) from None


class _Dial:
    """One background connection attempt to one machine, without a deadline of its own."""

    def __init__(self, machine: Machine):
        self.machine = machine
        self._cancel, self._done, self._lock = threading.Event(), threading.Event(), threading.Lock()
        self._remote: SSHRemote | None = None
        self._error: BaseException | None = None
        self._last = "no attempt yet"
        threading.Thread(target=self._run, name=f"ssh-{machine.host}", daemon=True).start()

    def _run(self) -> None:
        try:
            remote = connect(endpoint(self.machine), timeout=math.inf, on_wait=self._waiting, cancel=self._cancel)
        except BaseException as e:  # handed to whoever waits for the result
            self._error = e
        else:
            with self._lock:
                if self._cancel.is_set():
                    remote.close()
                else:
                    self._remote = remote
        self._done.set()

    def _waiting(self, message: str) -> None:
        self._last = message

    def cancel(self) -> None:
        with self._lock:
            self._cancel.set()
            remote, self._remote = self._remote, None
        if remote is not None:
            remote.close()

    def result(self, timeout: float) -> Remote:
        if not self._done.wait(timeout):
            self.cancel()
            where = f"{self.machine.host}:{self.machine.port}"
            raise ConnectTimeout(f"SSH to {where} did not answer in {timeout:g} s (last: {self._last})")
        if self._error is not None:
            raise self._error
        assert self._remote is not None
        return self._remote


def start_jupyter(
    remote: Remote, settings: Settings, journal: Journal, out: Output, *, allow_cpu: bool = False
) -> tuple[jupyter.JupyterServer, str]:
    """A token-protected JupyterLab on the machine: the running one if its token works."""
    return serve_jupyter(remote, prepare(remote, settings, out, allow_cpu=allow_cpu), settings, journal, out)


def prepare(remote: Remote, settings: Settings, out: Output, *, allow_cpu: bool = False) -> str:
    """What both Jupyter and the check need: the machine's Python, and the notebooks pushed.

    The Python is the best the machine has (see bootstrap.pychoice); one whose torch sees no
    GPU only with `allow_cpu` (or settings.allow_cpu).
    """
    # On this machine, the Python running `provision` has the [local] extra installed.
    preferred = settings.remote_python or (sys.executable if isinstance(remote, LocalRemote) else None)
    with out.step("Finding the Python environment with PyTorch and Jupyter"):
        choice = pychoice.choose(remote, preferred, allow_cpu=allow_cpu or settings.allow_cpu)
        python = choice.python
        out.note(choice.describe())
        if choice.env.missing:
            install(remote, python, choice.env.missing)
            out.note(f"installed {', '.join(choice.env.missing)} into {python}")
    with out.step(f"Pushing notebooks to {WORKDIR}"):
        pushed = notebooks.push(remote, notebooks_dir())
        out.note(f"{len(pushed)} changed file(s)" if pushed else "all up to date")
    return python


def serve_jupyter(
    remote: Remote, python: str, settings: Settings, journal: Journal, out: Output
) -> tuple[jupyter.JupyterServer, str]:
    """JupyterLab in `python`'s environment, token required: the running server if its token works."""
    token = _token(journal)
    public = _public(settings, journal)
    where = f"TLS on port {public.port}, pinned certificate" if public else "127.0.0.1 on the machine"
    with out.step(f"Starting JupyterLab ({where}, token required)"):
        server = jupyter.find_running(remote)
        reuse_check = public.through_ssh(remote, server) if public and server else None
        if server and jupyter.token_works(remote, server, token, get=reuse_check):
            out.note(f"reusing the running server (pid {server.pid})")
        else:
            if server:
                jupyter.stop(remote)  # a server whose token (or certificate) this record does not know
            tls_files = public.install(remote) if public else None
            server = jupyter.start(remote, python, token, port=public.port if public else None, tls=tls_files)
        jupyter.wait_ready(remote, server, token, get=public.from_here() if public else None)
    if settings.dataset != "cifar10":  # else the check downloads it, and two downloads would collide
        with out.step("Downloading CIFAR-10 on the machine in the background, for your own runs"):
            why_not = datasets.fetch_cifar10_in_background(remote, python)
            out.note(f"not started: {why_not}" if why_not else f"into {datasets.DATA_DIR}, log in {datasets.LOG_FILE}")
    journal.record.jupyter = {
        "python": python,
        "port": server.port,
        "pid": server.pid,
        "root": server.root,
        **({"tls_sha256": public.cert.fingerprint} if public else {}),
    }
    journal.save()
    return server, token


def alongside(*steps: Callable[[], Any]) -> list[Any]:
    """Run the steps at once, each in a thread of its own (sharing one connection: SSH channels are
    concurrent); their results in order once all ended, or the first one's error. Daemon threads: a
    Ctrl-C reaches the caller at once, and the process does not wait for them to exit."""
    results: list[Any] = [None] * len(steps)
    errors: list[BaseException | None] = [None] * len(steps)

    def run(i: int) -> None:
        try:
            results[i] = steps[i]()
        except BaseException as e:  # handed to the caller
            errors[i] = e

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(steps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    error = next((e for e in errors if e is not None), None)
    if error is not None:
        raise error
    return results


def _public(settings: Settings, journal: Journal) -> PublicJupyter | None:
    """With --access public: the port and the deployment's certificate; None for the tunnel."""
    if settings.access != "public":
        return None
    machine = Machine.from_dict(journal.record.machine or {})
    cert = deployment_certificate(journal.store, journal.record.name, machine)
    return PublicJupyter(machine, settings.jupyter_port, cert)


def read_token(store: StateStore, name: str) -> str | None:
    """The deployment's Jupyter token, if one was made."""
    token = store.read_secret(name, TOKEN_FILE)
    return token.strip() if token else None


def _token(journal: Journal) -> str:
    """The deployment's Jupyter token, made once and kept in a 0600 file."""
    store, name = journal.store, journal.record.name
    token = read_token(store, name)
    if token is None:
        token = secrets.token_urlsafe(32)
        store.write_secret(name, TOKEN_FILE, token)
    return token


def run_check(remote: Remote, python: str, settings: Settings, journal: Journal, out: Output) -> Verdict:
    """Run the training notebook headless on the machine and judge whether it used the GPU."""
    label = f"Running {NOTEBOOK} headless ({settings.dataset}, {settings.epochs} epoch(s))"
    with out.step(label):
        run = notebooks.execute(
            remote,
            python,
            NOTEBOOK,
            parameters={"dataset": settings.dataset, "epochs": settings.epochs, "device": "auto"},
            timeout=settings.check_timeout,
            kernel=check_kernel(journal.record),
        )
    verdict = judge(run.result, nvidia_smi=run.nvidia_smi, error=run.error, allow_cpu=settings.allow_cpu)
    journal.record.check = {
        "passed": verdict.passed,
        "summary": verdict.summary,
        "details": list(verdict.details),
        "executed": run.executed_path,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": (journal.record.environment or {}).get("name"),
        "python": (run.result or {}).get("python"),  # the kernel's, as the notebook saw it
    }
    journal.save()
    return verdict


def check_kernel(record: Record) -> str:
    """The kernel the check runs in: the project's when it has an environment, else `python3` (the base)."""
    return (record.environment or {}).get("kernel") or "python3"


def install_idle_stop(remote: Remote, settings: Settings, journal: Journal, out: Output, port: int) -> None:
    """The idle agent on the machine, when this deployment's VM may deallocate itself (record.idle has its id)."""
    policy = journal.record.idle or {}
    if policy.get("idle_stop") is None or "vm_id" not in policy:
        return
    window = float(policy["idle_stop"]) * 60
    config = {
        "vm_id": policy["vm_id"],
        "vm_ids": policy.get("vm_ids") or [policy["vm_id"]],
        "imds_url": settings.imds_url,
        "arm_endpoint": settings.arm_endpoint,
        "compute_api": policy["compute_api"],
        "window": window,
        "probe": min(settings.idle_probe, window),
        "warn": min(300.0, window / 2),
        "jupyter_port": port,
        "workers": [f"{node['private_ip']}:{node['port']}" for node in journal.record.nodes[1:]],
    }
    ca_pem = Path(settings.arm_ca_bundle).read_text() if settings.arm_ca_bundle else None
    with out.step(f"Idle stop: the VM deallocates itself after {policy['idle_stop']:g} min without use"):
        how = idle.install(remote, config, _token(journal), ca_pem)
        journal.record.idle = {**policy, "agent": how}
        journal.save()
        out.note(f"agent runs as a {'systemd service' if how == 'systemd' else 'detached process'}")
