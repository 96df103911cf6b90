"""Fake VMs: what Azure + cloud-init would do at boot, on this machine.

Booting a VM creates its admin user, installs the SSH keys from the request,
takes the host key from customData (cloud-config `ssh_keys`) and starts a real
sshd on 127.0.0.1, on the port customData configures (an sshd_config.d drop-in in
`write_files`; 22 when none does, as on the image). Every VM user finds conda envs like
a DSVM's, only one of them suitable (`conda_root()`, as ~/miniconda3), and
`machine_python()` first on its PATH: Pythons that import torch (CPU), jupyter_server,
jupyterlab and papermill.
"""

from __future__ import annotations

import atexit
import base64
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Self

import filelock
import yaml

from bootstrap.remote import Endpoint
from tests.fakes import processes
from tests.fakes.arm import BootSpec
from tests.fakes.sshd import SSHD, KeyPair, new_ed25519_key
from tests.fakes.vm_faults import Trap, Traps

_USERS_LOCK = filelock.FileLock(Path(tempfile.gettempdir()) / "dsvm-kit-fake-vm-users.lock")


@cache
def machine_python() -> str:
    """A Python any user can run, with this test environment's packages (a venv + .pth).

    The test venv's own interpreter lives under /root (0700), out of other users' reach;
    this one is the system python of the same minor version, looking into the test
    venv's site-packages, with its share/ and etc/ Jupyter data linked in.
    """
    return str(_venv(_shared_dir("fakevm-python-") / "env", test_packages=True) / "bin" / "python")


CONDA_DIR = "miniconda3"  # in each VM user's home: a conda root the kit searches, as it does /anaconda
CONDA_ENVS = {  # like the DSVM's, in the order the kit finds them; only py38_default suits
    "azureml_py310_sdkv2": "no torch",
    "azureml_py38": "torch, but jupyter_server 1.24.0",
    "py38_default": "torch and jupyter_server 2",
}


@cache
def conda_root() -> Path:
    """A conda root shaped like a DSVM's /anaconda (envs/NAME/bin/python), cheap venvs inside:
    see CONDA_ENVS. Linked into each VM user's home as ~/miniconda3."""
    root = _shared_dir("fakevm-conda-")
    _venv(root / "envs" / "azureml_py310_sdkv2", test_packages=False)
    old = _venv(root / "envs" / "azureml_py38", test_packages=True)
    dist_info = _site_packages(old) / "jupyter_server-1.24.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: jupyter_server\nVersion: 1.24.0\n")
    _venv(root / "envs" / "py38_default", test_packages=True)
    return root


def _shared_dir(prefix: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def _site_packages(env: Path) -> Path:
    return env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _venv(env: Path, *, test_packages: bool) -> Path:
    """A venv of the system python; with test_packages, it sees the test venv's packages and data."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(f"/usr/bin/python{version}")
    if not base.exists():
        raise RuntimeError(f"fake VMs need {base} (the tests run on Python {version})")
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(env)], check=True)
    if test_packages:
        (_site_packages(env) / "test-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
        # jsonschema's optional IRI check: its grammar takes 1.4 s to build at each Jupyter or papermill start,
        # and it checks nothing the kit sends. Shadowed here (the venv's own site-packages comes first).
        (_site_packages(env) / "rfc3987_syntax.py").write_text('raise ImportError("left out of fake VMs")\n')
        for data in ("share", "etc"):
            if (Path(sys.prefix) / data / "jupyter").exists():
                (env / data).mkdir(exist_ok=True)
                (env / data / "jupyter").symlink_to(Path(sys.prefix) / data / "jupyter")
    return env


SSHD_DROP_INS = "/etc/ssh/sshd_config.d/"
DEFAULT_SSH_PORT = 22  # the port sshd listens on when its configuration names none


def cloud_config(host_key: KeyPair, ssh_port: int) -> bytes:
    """customData as the kit sends it: cloud-config handing the VM its Ed25519 host key and,
    in an sshd_config.d drop-in, the port sshd listens on."""
    config = {
        "ssh_keys": {"ed25519_private": host_key.private_openssh, "ed25519_public": host_key.public_line},
        "write_files": [{"path": f"{SSHD_DROP_INS}60-port.conf", "content": f"Port {ssh_port}\n"}],
    }
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
    """Fresh host and client keys, a unique admin user ("dsvm" + hex), the client key file in key_dir;
    its customData configures sshd on ssh_port."""
    host_key, client_key = new_ed25519_key(), new_ed25519_key()
    spec = BootSpec(
        vm_id="vm-" + secrets.token_hex(3),
        admin_username="dsvm" + secrets.token_hex(4),
        ssh_public_keys=[client_key.public_line],
        custom_data=cloud_config(host_key, ssh_port),
        public_ip="127.0.0.1",
    )
    key_path = client_key.write_private(key_dir / f"id_ed25519_{spec.vm_id}")
    endpoint = Endpoint("127.0.0.1", ssh_port, spec.admin_username, key_path, host_key.public_line)
    return Machine(spec, endpoint, host_key, client_key)


def leftovers(user: str, sshd_pid: int | None) -> list[str]:
    """What a halted VM left behind: its user, its sshd, orphans of ours (reaped on the way)."""
    found = []
    try:
        pwd.getpwnam(user)
        found.append(f"user {user}")
    except KeyError:
        pass
    if sshd_pid is not None and processes.exists(sshd_pid):
        found.append(f"sshd {sshd_pid}")
    found += [f"running orphan {pid}" for pid in processes.reap_orphans()]
    return found


def _cloud_config(custom_data: bytes) -> dict:
    """The cloud-config document in customData (raw, or base64 as ARM receives it)."""
    text = custom_data if custom_data.lstrip().startswith(b"#cloud-config") else base64.b64decode(custom_data)
    return yaml.safe_load(text) or {}


def host_key_from_custom_data(custom_data: bytes) -> str:
    """The Ed25519 host private key in a cloud-config."""
    return _cloud_config(custom_data)["ssh_keys"]["ed25519_private"]


def ssh_port_from_custom_data(custom_data: bytes) -> int:
    """The port sshd listens on once cloud-init has run: the last `Port` line of the sshd_config.d
    drop-ins that write_files writes (plain text only), else 22. The image's sshd_config
    includes sshd_config.d/*.conf; the fake VM has no other sshd configuration to read."""
    ports = [
        int(words[1])
        for entry in _cloud_config(custom_data).get("write_files") or []
        if entry.get("path", "").startswith(SSHD_DROP_INS) and entry["path"].endswith(".conf")
        for line in str(entry.get("content", "")).splitlines()
        if len(words := line.split()) == 2 and words[0].lower() == "port"
    ]
    return ports[-1] if ports else DEFAULT_SSH_PORT


@dataclass
class _VM:
    user: str
    created_user: bool
    sshd: SSHD
    late_start: threading.Timer | None = None  # sshd_delay: the start still to come


class FakeVMs:
    """Implements the fake ARM's Booter: each VM's sshd on its public IP (127.0.0.1), or, for a node with none,
    on its private address (a loopback address with FakeARM(loopback_private_ips=True)), at the
    port its customData configures. The nodes of one deployment share their admin user and its home. A port this machine cannot give it (taken, or 22 without
    the right to bind it) fails the boot with a message that says so, as the VM would never
    answer SSH there.

    Faults: `present_host_key` (another host key), `refuse_client_key` (authorized_keys
    without the kit's key), `sshd_delay` (SSH up only that long after boot); and, fired by
    the command the kit runs, the `*_at(pattern)` methods (dropped connection, sshd restart,
    new host key, revoked key, a paused command, Jupyter's port taken).
    """

    def __init__(self, *, present_host_key: str | None = None):
        processes.become_subreaper()
        self.python = machine_python()
        self.present_host_key = present_host_key  # used instead of customData's: a mismatch
        self.refuse_client_key = False  # authorized_keys holds another key than the kit's
        self.sshd_delay = 0.0  # seconds from boot until sshd listens
        self.traps = Traps()
        self.sshd_pids: list[int] = []  # every sshd listener started, for leftover checks
        self._vms: dict[str, _VM] = {}
        self._disks: dict[str, _VM] = {}  # halted, disk kept (deallocated): the next boot finds user and home
        self._lock = threading.RLock()

    def boot(self, spec: BootSpec) -> None:
        """First boot: make the user and its home, as cloud-init would. A boot after a halt that kept
        the disk (start after deallocate) finds them as they were: cloud-init runs once per instance."""
        with self._lock:
            if spec.vm_id in self._vms:
                return
            port = ssh_port_from_custom_data(spec.custom_data)
            address = spec.public_ip or spec.private_ip or "127.0.0.1"
            _require_free(address, port)
            kept = self._disks.pop(spec.vm_id, None)
            shared = self._user_in_use(spec.admin_username)  # another node of the deployment: same user and home
            created = kept.created_user if kept else _ensure_user(spec.admin_username)
            try:
                if kept is None and not shared:
                    keys = [new_ed25519_key().public_line] if self.refuse_client_key else spec.ssh_public_keys
                    _write_authorized_keys(spec.admin_username, keys)
                    _prepend_to_bashrc(spec.admin_username, self.traps.bashrc_line)
                    _link_conda(spec.admin_username)
                host_key = self.present_host_key or host_key_from_custom_data(spec.custom_data)
                path = f"{Path(self.python).parent}:/usr/local/bin:/usr/bin:/bin"
                sshd = SSHD(port, host_key, set_env={"PATH": path}, address=address)
                vm = self._vms[spec.vm_id] = _VM(spec.admin_username, created, sshd)
                if self.sshd_delay:
                    vm.late_start = threading.Timer(self.sshd_delay, self._start_sshd, (vm,))
                    vm.late_start.start()
                else:
                    self._start_sshd(vm)
            except BaseException:
                self._vms.pop(spec.vm_id, None)
                if created:
                    _remove_user(spec.admin_username)
                raise

    def _start_sshd(self, vm: _VM) -> None:
        """Start the VM's sshd unless it runs already or the VM was halted meanwhile."""
        with self._lock:
            if any(booted is vm for booted in self._vms.values()) and vm.sshd.pid is None:
                vm.sshd.start()
                self.sshd_pids.append(vm.sshd.pid)

    def halt(self, vm_id: str, *, keep_disk: bool = False) -> None:
        """Power off: stop sshd and kill every process of the user; keep_disk keeps the user and its home
        for the next boot (deallocate, eviction), else they go (delete, also of a VM halted before)."""
        with self._lock:
            vm = self._vms.pop(vm_id, None) or self._disks.pop(vm_id, None)
        if vm is None:
            return
        if vm.late_start is not None:
            vm.late_start.cancel()
        with self._lock:
            vm.sshd.cleanup()
        if keep_disk:
            _kill_processes_of(vm.user)
            with self._lock:
                self._disks[vm_id] = vm
        elif vm.created_user:
            with self._lock:
                heir = next((other for other in self._booted() if other.user == vm.user), None)
                if heir is not None:  # another node still uses the user: the last to go removes it
                    heir.created_user = True
            if heir is None:
                _remove_user(vm.user)

    def _booted(self) -> list[_VM]:
        return [*self._vms.values(), *self._disks.values()]

    def _user_in_use(self, user: str) -> bool:
        return any(vm.user == user for vm in self._booted())

    def running(self) -> list[str]:
        return [vm_id for vm_id, vm in self._vms.items() if vm.sshd.pid is not None]

    def sshd(self, vm_id: str) -> SSHD:
        """The running sshd of a VM (tests read its log or drop its sessions)."""
        return self._vms[vm_id].sshd

    def close(self) -> None:
        for vm_id in [*self._vms, *self._disks]:
            self.halt(vm_id)
        self.traps.close()

    # -- faults fired by a command the kit runs (see tests.fakes.vm_faults) ----------------------

    def _only_vm(self) -> _VM:
        with self._lock:
            (vm,) = self._vms.values()
            return vm

    def drop_at(self, pattern: str) -> Trap:
        """Drop the kit's connection as the command starts (the command then never ran)."""
        return self.traps.arm(pattern, lambda: self._only_vm().sshd.drop_sessions())

    def drop_after(self, pattern: str) -> Trap:
        """Drop the kit's connection once the command did its work, before the kit hears it ended."""
        return self.traps.arm(pattern, lambda: self._only_vm().sshd.drop_sessions(), at_exit=True)

    def restart_at(self, pattern: str, down_for: float) -> Trap:
        """Restart sshd as the command starts: the connection drops, SSH is down for `down_for` s."""
        return self.traps.arm(pattern, lambda: self._restart(down_for))

    def rekey_at(self, pattern: str) -> Trap:
        """Restart sshd with another host key as the command starts (an impostor takes over)."""
        return self.traps.arm(pattern, lambda: self._restart(0, new_ed25519_key().private_openssh))

    def revoke_at(self, pattern: str) -> Trap:
        """Take the kit's key out of authorized_keys and drop the connection as the command starts."""

        def revoke() -> None:
            vm = self._only_vm()
            _write_authorized_keys(vm.user, [new_ed25519_key().public_line])
            vm.sshd.drop_sessions()

        return self.traps.arm(pattern, revoke)

    def pause_at(self, pattern: str) -> Trap:
        """Hold the command before it runs (a minute at most); `fired` says the kit is waiting on it."""
        return self.traps.arm(pattern, release=False)

    def squat_port_at(self, pattern: str, *, http: bool) -> Trap:
        """In the command that starts Jupyter (the one matching `pattern`), take its port just
        before Jupyter binds it: a plain listener, or an HTTP server that answers 200 to anything."""
        return self.traps.arm(pattern, snippet=self.traps.squat_snippet(http=http))

    def _restart(self, down_for: float, host_key: str | None = None) -> None:
        vm = self._only_vm()
        with self._lock:
            vm.sshd.stop()
            if host_key:
                vm.sshd.set_host_key(host_key)
        time.sleep(down_for)
        self._start_sshd(vm)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _require_free(address: str, port: int) -> None:
    """Refuse a boot whose sshd could not listen (taken, or no right to bind it): sshd would exit,
    and a probe of the port would reach whatever holds it instead. SO_REUSEADDR, as sshd sets it."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as e:
            raise RuntimeError(
                f"the fake VM's sshd cannot listen on {address}:{port}, the port its customData "
                f"configures (22 when it names none): {e.strerror}"
            ) from None


def _ensure_user(name: str) -> bool:
    """Create the user (not locked, bash) unless it exists; True when created."""
    try:
        pwd.getpwnam(name)
        return False
    except KeyError:
        pass
    with _USERS_LOCK:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", "-p", "*", name], check=True, capture_output=True)
    return True


def _write_authorized_keys(user: str, public_keys: list[str]) -> None:
    entry = pwd.getpwnam(user)
    ssh_dir = Path(entry.pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text("".join(key.strip() + "\n" for key in public_keys))
    keys.chmod(0o600)
    for path in (ssh_dir, keys):
        shutil.chown(path, entry.pw_uid, entry.pw_gid)


def _prepend_to_bashrc(user: str, line: str) -> None:
    bashrc = Path(pwd.getpwnam(user).pw_dir) / ".bashrc"
    bashrc.write_text(line + (bashrc.read_text() if bashrc.exists() else ""))


def _link_conda(user: str) -> None:
    link = Path(pwd.getpwnam(user).pw_dir) / CONDA_DIR
    link.unlink(missing_ok=True)
    link.symlink_to(conda_root())


def _kill_processes_of(name: str) -> None:
    """What powering a VM off does to its user's processes (Jupyter, kernels, shells)."""
    uid = pwd.getpwnam(name).pw_uid
    left = processes.kill_and_reap(processes.pids_of_user(uid))
    if left:
        raise RuntimeError(f"processes of {name} survived SIGKILL: {left}")


def _remove_user(name: str) -> None:
    _kill_processes_of(name)
    with _USERS_LOCK:
        subprocess.run(["userdel", "-r", "-f", name], check=True, capture_output=True)
