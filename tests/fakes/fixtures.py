"""Fixtures for the machine-side tests: a booted fake VM, an SSH or local Remote, notebooks.

Import the fixtures you use into a test module (`from tests.fakes.fixtures import vm, remote`).
Every fixture that starts processes checks at teardown that none is left behind.
"""

from __future__ import annotations

import pwd
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
import yaml

from bootstrap.remote import Endpoint, LocalRemote, Remote, SSHRemote, connect
from tests.fakes import processes
from tests.fakes.sshd import KeyPair, free_port, new_ed25519_key
from tests.fakes.vm import BootSpec, FakeVMs, machine_python


def cloud_config(host_key: KeyPair) -> bytes:
    """customData as the kit sends it: cloud-config handing the VM its Ed25519 host key."""
    config = {"ssh_keys": {"ed25519_private": host_key.private_openssh,
                           "ed25519_public": host_key.public_line}}
    return b"#cloud-config\n" + yaml.safe_dump(config).encode()


@dataclass(frozen=True)
class Machine:
    """A VM as the kit asks for it: the boot request, and how to reach it once booted."""

    spec: BootSpec
    endpoint: Endpoint  # pins spec's host key; key_path is the client key in spec's authorized keys
    host_key: KeyPair
    client_key: KeyPair

    @property
    def user(self) -> str:
        return self.spec.admin_username


def new_machine(key_dir: Path, ssh_port: int) -> Machine:
    """Fresh host and client keys, a unique admin user ("dsvm" + hex), the client key file in key_dir."""
    host_key, client_key = new_ed25519_key(), new_ed25519_key()
    spec = BootSpec(vm_id="vm-" + secrets.token_hex(3), admin_username="dsvm" + secrets.token_hex(4),
                    ssh_public_keys=[client_key.public_line], custom_data=cloud_config(host_key),
                    public_ip="127.0.0.1")
    key_path = client_key.write_private(key_dir / f"id_ed25519_{spec.vm_id}")
    endpoint = Endpoint("127.0.0.1", ssh_port, spec.admin_username, key_path, host_key.public_line)
    return Machine(spec, endpoint, host_key, client_key)


def assert_nothing_left(user: str, sshd_pid: int | None) -> None:
    """No user, no process of it, no sshd, no orphan of ours (zombies included)."""
    with pytest.raises(KeyError):
        pwd.getpwnam(user)
    assert sshd_pid is None or not processes.exists(sshd_pid)
    assert processes.reap_orphans() == [], "processes were still running at teardown"


@dataclass(frozen=True)
class BootedVM:
    vms: FakeVMs
    machine: Machine
    python: str  # the VM's Python with torch, jupyter_server, papermill (first on its PATH)

    @property
    def endpoint(self) -> Endpoint:
        return self.machine.endpoint

    @property
    def sshd(self):
        return self.vms.sshd(self.machine.spec.vm_id)


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[BootedVM]:
    """A booted fake VM; at teardown it is halted and nothing of it may be left."""
    machine = new_machine(tmp_path, free_port())
    vms = FakeVMs(machine.endpoint.port)
    vms.boot(machine.spec)
    sshd_pid = vms.sshd(machine.spec.vm_id).pid
    try:
        yield BootedVM(vms, machine, vms.python)
    finally:
        vms.close()
    assert_nothing_left(machine.user, sshd_pid)


@pytest.fixture
def ssh_remote(vm: BootedVM) -> Iterator[SSHRemote]:
    remote = connect(vm.endpoint, timeout=30)
    yield remote
    remote.close()


@pytest.fixture
def local_remote(tmp_path: Path) -> Iterator[LocalRemote]:
    """This machine, with a fresh home directory; orphans it leaves are checked for and reaped."""
    processes.become_subreaper()
    home = tmp_path / "home"
    home.mkdir()
    yield LocalRemote(str(home))
    assert processes.reap_orphans() == [], "processes were still running at teardown"


@pytest.fixture(params=["ssh", "local"])
def remote(request) -> Remote:
    """Each test using it runs twice: over SSH to a fake VM, and on this machine."""
    return request.getfixturevalue(f"{request.param}_remote")


@pytest.fixture
def env_python(remote: Remote) -> str:
    """A Python on `remote` with torch, jupyter_server and papermill."""
    return machine_python() if isinstance(remote, SSHRemote) else sys.executable


def write_notebook(path: Path) -> Path:
    """A tiny notebook: `mode` "ok" writes its parameters and kernel facts to result_path,
    "raise" raises ValueError, "sleep" sleeps for an hour."""
    cells = [
        nbformat.v4.new_code_cell('mode = "ok"\nlearning_rate = 0.1\nresult_path = ""',
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell('import json, os, sys, time\nprint("hello from the kernel")'),
        nbformat.v4.new_code_cell('if mode == "raise":\n    raise ValueError("boom on purpose")\n'
                                  'if mode == "sleep":\n    time.sleep(3600)'),
        nbformat.v4.new_code_cell(
            'with open(result_path, "w") as f:\n'
            '    json.dump({"executable": sys.executable, "learning_rate": learning_rate,\n'
            '               "token_in_env": "JUPYTER_TOKEN" in os.environ}, f)'),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path
