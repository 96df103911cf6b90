"""Every wait has a bound and says, when it runs out, what it waited for and for how long.

The bounds fit a real boot (VM 15 min, SSH 10 min after that, Jupyter 3 min); here they are
scaled down through their parameters so that a test waits seconds.
"""

from __future__ import annotations

import io
import socket
import subprocess
from contextlib import contextmanager

import pytest

from bootstrap import jupyter
from bootstrap.remote import BootstrapError, ConnectTimeout, LocalRemote
from provision import keys, session
from provision.output import Output
from provision.state import StateStore
from provision.targets import Machine
from provision.targets.azure import CREATE_WAIT
from tests.conftest import provision
from tests.fakes.sshd import free_port

NAME = "slow"


@contextmanager
def silent_listener():
    """A TCP port that accepts connections and never says a word (no SSH banner)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def machine_at(port: int, tmp_path, ssh_from: str | None) -> Machine:
    pair = keys.generate()
    key_path = tmp_path / "id_ed25519"
    key_path.write_text(pair.private_openssh)
    key_path.chmod(0o600)
    host = keys.generate().public_openssh
    return Machine("127.0.0.1", port, "azureuser", str(key_path), host, ssh_from=ssh_from)


def test_ssh_that_never_answers_names_the_wait_and_the_address_the_security_group_admits(tmp_path):
    with silent_listener() as port:
        machine = machine_at(port, tmp_path, ssh_from="203.0.113.7/32")
        with pytest.raises(ConnectTimeout) as caught:
            session.open_remote(machine, Output(err=io.StringIO()), timeout=2)
    message = str(caught.value)
    assert message.startswith(f"SSH to 127.0.0.1:{port} did not answer in 2 s (")
    assert "the security group admits SSH only from 203.0.113.7/32" in message
    assert "VPN" in message and "--allow-ip" in message


def test_ssh_to_a_machine_without_a_security_group_gives_no_address_hint(tmp_path):
    port = free_port()  # nothing listens: refused, attempt after attempt
    with pytest.raises(ConnectTimeout) as caught:
        session.open_remote(machine_at(port, tmp_path, ssh_from=None), Output(err=io.StringIO()), timeout=1)
    message = str(caught.value)
    assert message.startswith(f"SSH to 127.0.0.1:{port} did not answer in 1 s (")
    assert "ConnectionRefusedError" in message and "security group" not in message


def test_azure_records_the_address_its_security_group_admits(arm, azure_env, state_dir):
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    assert StateStore(state_dir).require(NAME).machine["ssh_from"] == "127.0.0.1/32"


def test_jupyter_that_never_answers_names_the_wait(tmp_path):
    remote = LocalRemote(str(tmp_path))
    alive = subprocess.Popen(["sleep", "60"])  # a server process that runs but never listens
    try:
        server = jupyter.JupyterServer("python3", free_port(), alive.pid, str(tmp_path))
        with pytest.raises(BootstrapError) as caught:
            jupyter.wait_ready(remote, server, "a-token", timeout=1)
    finally:
        alive.kill()
        alive.wait()
    message = str(caught.value)
    assert message.startswith(f"Jupyter (pid {alive.pid}) did not answer on port {server.port} of the machine in 1 s")
    assert "ConnectionRefusedError" in message and "a-token" not in message


def test_a_vm_create_that_outlasts_its_bound_is_an_error_and_rolled_back(arm, azure_env, monkeypatch):
    monkeypatch.setitem(CREATE_WAIT, "vm", 0.5)
    arm.hold("Microsoft.Compute/virtualMachines", 5)
    result = provision("up", "--name", NAME, "--no-bootstrap")
    assert result.exit_code == 1
    assert f"create vm {NAME}: Azure had not finished in 0.5 s" in result.stderr
    assert "Traceback" not in result.stderr
    arm.hold("Microsoft.Compute/virtualMachines", 0)
    assert arm.inventory() == []
