"""The fake VM listens where the VM was configured to listen: the port in its customData."""

import base64
import errno
import pwd
import secrets
import socket
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from provision import keys
from provision.plan import cloud_config
from tests.conftest import provision
from tests.fakes import processes
from tests.fakes.arm import FAST, BootSpec, FakeARM
from tests.fakes.sshd import free_port
from tests.fakes.vm import FakeVMs, leftovers, ssh_port_from_custom_data


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

    with FakeVMs() as vms, FakeARM(booter=vms, time_scale=FAST) as arm, port_22_taken():
        for key, value in arm_env(arm, state_dir).items():
            monkeypatch.setenv(key, value)
        result = provision("up", "--name", "port22", "--no-bootstrap", "--admin-user", "dsvmport22")
        assert result.exit_code == 1
        error = result.stderr.strip().splitlines()[-1]
        assert "OSProvisioningInternalError" in error and "127.0.0.1:22" in error, result.stderr
        assert arm.inventory() == [] and vms.running() == []


def test_a_halt_that_keeps_the_disk_kills_the_users_processes_and_the_next_boot_finds_its_home():
    """Deallocate: sshd and every process of the user stop (a restarted VM runs no Jupyter); the
    home stays for the next boot, whose sshd presents the same host key; delete then removes it all."""
    port, user = free_port(), "dsvm" + secrets.token_hex(4)
    spec = BootSpec("vm-kept", user, [], cloud_config(keys.generate(), port).encode(), "127.0.0.1")
    with FakeVMs() as vms:
        vms.boot(spec)
        home = Path(pwd.getpwnam(user).pw_dir)
        (home / "work.txt").write_text("kept")
        kernel = subprocess.Popen(["sleep", "600"], user=user, start_new_session=True)
        vms.halt("vm-kept", keep_disk=True)
        assert not processes.exists(kernel.pid)
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
        assert (home / "work.txt").read_text() == "kept" and leftovers(user, None) == [f"user {user}"]
        vms.boot(spec)
        assert vms.running() == ["vm-kept"] and (home / "work.txt").read_text() == "kept"
        vms.halt("vm-kept")
        assert leftovers(user, None) == []
