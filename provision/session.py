"""The machine side of `up`, driven from the laptop: connect, Jupyter, notebooks, GPU check."""

import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

import bootstrap
from bootstrap import datasets, idle, jupyter, notebooks, pychoice
from bootstrap.gpucheck import Verdict, judge
from bootstrap.pyenv import install
from bootstrap.remote import ConnectTimeout, Endpoint, LocalRemote, Remote, connect
from provision.output import Output
from provision.public import PublicJupyter, deployment_certificate
from provision.settings import OPEN_TO_ALL, Settings
from provision.state import TOKEN_FILE, Journal, StateStore
from provision.targets import Machine

NOTEBOOK = notebooks.TRAINING
SSH_WAIT = 600  # seconds SSH may take to answer once Azure says the VM is created (its first boot)


def notebooks_dir() -> Path:
    """The notebooks to push: bundled in the wheel, or the repository's notebooks/."""
    bundled = Path(bootstrap.__file__).parent / "bundled_notebooks"
    return bundled if bundled.is_dir() else Path(__file__).resolve().parents[1] / "notebooks"


def open_remote(machine: Machine, out: Output, *, timeout: float = SSH_WAIT) -> Remote:
    """One connection to the machine, reused for every step (the local transport for local)."""
    if machine.local:
        return LocalRemote()
    assert machine.key_path and machine.host_key, "an SSH machine always has a key and a host key"
    endpoint = Endpoint(
        host=machine.host,
        port=machine.port,
        user=machine.user,
        key_path=Path(machine.key_path),
        host_key=machine.host_key,
    )
    with out.step(f"SSH to {machine.user}@{machine.host}:{machine.port} (host key pinned)") as step:
        try:
            return connect(endpoint, timeout=timeout, on_wait=step.update)
        except ConnectTimeout as e:
            if machine.ssh_from is None or machine.ssh_from in OPEN_TO_ALL:
                raise
            raise ConnectTimeout(
                f"{e}; the security group admits SSH only from {machine.ssh_from}: if you are on a VPN or "
                "behind a corporate NAT, your address as Azure sees it may differ: pass --allow-ip"
            ) from None


def start_jupyter(
    remote: Remote, settings: Settings, journal: Journal, out: Output, *, allow_cpu: bool = False
) -> tuple[jupyter.JupyterServer, str]:
    """A token-protected JupyterLab on the machine: the running one if its token works.

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
    with out.step("Pushing notebooks to ~/notebooks"):
        pushed = notebooks.push(remote, notebooks_dir())
        out.note(f"{len(pushed)} changed file(s)" if pushed else "all up to date")
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
        )
    verdict = judge(run.result, nvidia_smi=run.nvidia_smi, error=run.error, allow_cpu=settings.allow_cpu)
    journal.record.check = {
        "passed": verdict.passed,
        "summary": verdict.summary,
        "details": list(verdict.details),
        "executed": run.executed_path,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    journal.save()
    return verdict


def install_idle_stop(remote: Remote, settings: Settings, journal: Journal, out: Output, port: int) -> None:
    """The idle agent on the machine, when this deployment's VM may deallocate itself (record.idle has its id)."""
    policy = journal.record.idle or {}
    if policy.get("idle_stop") is None or "vm_id" not in policy:
        return
    window = float(policy["idle_stop"]) * 60
    config = {
        "vm_id": policy["vm_id"],
        "imds_url": settings.imds_url,
        "arm_endpoint": settings.arm_endpoint,
        "compute_api": policy["compute_api"],
        "window": window,
        "probe": min(settings.idle_probe, window),
        "warn": min(300.0, window / 2),
        "jupyter_port": port,
    }
    ca_pem = Path(settings.arm_ca_bundle).read_text() if settings.arm_ca_bundle else None
    with out.step(f"Idle stop: the VM deallocates itself after {policy['idle_stop']:g} min without use"):
        how = idle.install(remote, config, _token(journal), ca_pem)
        out.note(f"agent runs as a {'systemd service' if how == 'systemd' else 'detached process'}")
