"""Fixtures for the machine-side tests: a booted fake VM, an SSH or local Remote, a notebook.

Use them with `pytest_plugins = ["tests.fakes.fixtures"]` in a test module (do not
import from this module in tests: pytest could then not rewrite its asserts).
Every fixture that starts processes checks at teardown that none is left behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootstrap.remote import Endpoint, LocalRemote, Remote, SSHRemote, connect
from tests.fakes import processes
from tests.fakes.notebook import write_notebook
from tests.fakes.sshd import SSHD, free_port
from tests.fakes.vm import FakeVMs, Machine, leftovers, machine_python, new_machine


@dataclass(frozen=True)
class BootedVM:
    vms: FakeVMs
    machine: Machine
    python: str  # the VM's Python with torch, jupyter_server, papermill (first on its PATH)

    @property
    def endpoint(self) -> Endpoint:
        return self.machine.endpoint

    @property
    def sshd(self) -> SSHD:
        return self.vms.sshd(self.machine.spec.vm_id)


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[BootedVM]:
    """A booted fake VM; at teardown it is halted and nothing of it may be left."""
    machine = new_machine(tmp_path, free_port())
    vms = FakeVMs()
    vms.boot(machine.spec)
    sshd_pid = vms.sshd(machine.spec.vm_id).pid
    try:
        yield BootedVM(vms, machine, vms.python)
    finally:
        vms.close()
    assert leftovers(machine.user, sshd_pid) == []


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
def env_python() -> str:
    """A Python on `remote` with torch, jupyter_server and papermill: the fake VMs' (this venv's packages, without the
    IRI grammar jsonschema builds in 2.5 s at each Jupyter or papermill start; see tests/fakes/vm.py), on either side.
    The local target's own choice, this venv's Python, is under test in tests/test_targets.py."""
    return machine_python()


@pytest.fixture
def notebook_dir(tmp_path: Path) -> Path:
    """A local notebooks directory holding demo.ipynb (see tests.fakes.notebook.write_notebook)."""
    directory = tmp_path / "local-notebooks"
    write_notebook(directory / "demo.ipynb")
    return directory
