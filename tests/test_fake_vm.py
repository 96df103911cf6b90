"""The fake VM listens where the VM was configured to listen: the port in its customData."""

import base64
import errno
import socket
from contextlib import contextmanager

import pytest

from provision import keys
from provision.plan import cloud_config
from tests.conftest import provision
from tests.fakes.arm import BootSpec, FakeARM
from tests.fakes.vm import FakeVMs, ssh_port_from_custom_data


@pytest.mark.parametrize("port", [22, 2222])
def test_the_fake_reads_the_port_from_the_kits_cloud_config(port):
    user_data = cloud_config(keys.generate(), port).encode()
    assert ssh_port_from_custom_data(user_data) == port
    assert ssh_port_from_custom_data(base64.b64encode(user_data)) == port  # as ARM receives it


@contextmanager
def port_22_taken():
    """127.0.0.1:22 held by a listener of this test (or already unavailable here: taken, or not ours to bind)."""
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", 22))
            holder.listen()
        except OSError as e:
            assert e.errno in (errno.EADDRINUSE, errno.EACCES), e
        yield


def test_a_vm_whose_custom_data_names_no_port_tries_22_and_says_so():
    """No port in customData means sshd's default, 22: the fake tries it, and when this machine
    cannot give it 22 it refuses the boot in words rather than listen elsewhere."""
    spec = BootSpec("vm-no-port", "dsvmnoport", [], b'#cloud-config\n{"ssh_keys": {}}\n', "127.0.0.1")
    with FakeVMs() as vms, port_22_taken():
        with pytest.raises(RuntimeError, match=r"cannot listen on 127\.0\.0\.1:22, the port its customData"):
            vms.boot(spec)
        assert vms.running() == []


def test_the_kits_default_port_reaches_the_fake_vm_only_through_custom_data(state_dir, monkeypatch):
    """`up` without --ssh-port configures no port; the fake VM then needs 22, and its refusal
    reaches the user as Azure's provisioning failure, in one line, rolled back."""
    from tests.conftest import arm_env

    with FakeVMs() as vms, FakeARM(booter=vms) as arm, port_22_taken():
        for key, value in arm_env(arm, state_dir).items():
            monkeypatch.setenv(key, value)
        result = provision("up", "--name", "port22", "--no-bootstrap", "--admin-user", "dsvmport22")
        assert result.exit_code == 1
        error = result.stderr.strip().splitlines()[-1]
        assert "OSProvisioningInternalError" in error and "127.0.0.1:22" in error, result.stderr
        assert arm.inventory() == [] and vms.running() == []
