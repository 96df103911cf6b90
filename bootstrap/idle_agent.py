"""dsvm-kit's idle agent, run on the VM (Python standard library only): deallocates the VM after a window
with no activity, with the VM's own managed identity; on the head of several nodes, every node.

Activity, looked at every probe interval (README, "Idle stop"):
  - a Jupyter kernel that is busy, or whose last_activity (its last message: an execution, an output) lies
    within the window (GET /api/kernels with the token; not /api/status, which an open browser tab refreshes);
  - an SSH session of the VM's user (the one the kit logs in as) that runs a process: a session process
    of sshd (`sshd: USER@pts/N`, `sshd: USER@notty`; `sshd-session: ...` from OpenSSH 9.8) with a child
    other than an SFTP server. A session that only forwards
    ports (`ssh -N -L`, the kit's tunnel) has no child and does not count;
  - a GPU busier than GPU_BUSY_PERCENT (nvidia-smi), where there is one;
  - several nodes (the agent runs on the head): an established connection from here to a worker's sshd
    (config "workers", ADDRESS:PORT). Workers have no public address: every SSH session on one (`provision
    ssh --node K`, ProxyJump, `provision run`) is such a connection of the head's sshd.
After `window` seconds without any, it gets a token from the instance metadata service and POSTs ARM's
deallocate for its own VM; `warn` seconds before, it writes to every terminal (`wall`) and to the notice file.
Failures (403 while the role replicates, 429, the network) are logged and retried with backoff.

    python3 idle_agent.py CONFIG.json      (CONFIG 0600: see bootstrap/idle.py)
"""

import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

GPU_BUSY_PERCENT = 5
SESSION = re.compile(r"^sshd(-session)?: (?P<user>\S+)@(pts/\d+|notty)")
NOT_WORK = ("sftp-server", "@internal-sftp")  # file transfers (the kit's own bootstrap)
TCP_ESTABLISHED = "01"  # the st column of /proc/net/tcp (include/net/tcp_states.h)


def log(state_dir, message):
    line = f"{datetime.now(UTC).isoformat(timespec='seconds')} {message}\n"
    with open(os.path.join(state_dir, "agent.log"), "a") as f:
        f.write(line)


def write_json(path, data):
    partial = path + ".partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(partial, path)


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def kernels_activity(config, now):
    """(busy, latest last_activity as epoch seconds or 0) of the Jupyter server's kernels."""
    try:
        with open(config["token_file"]) as f:
            token = f.read().strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{config['jupyter_port']}/api/kernels", headers={"Authorization": f"token {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            kernels = json.load(response)
    except (OSError, ValueError):
        return False, 0.0
    busy = any(k.get("execution_state") == "busy" for k in kernels)
    latest = max((parse_time(k["last_activity"]) for k in kernels if k.get("last_activity")), default=0.0)
    return busy, min(latest, now)


def processes():
    """pid -> (ppid, command line) of every process."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError, ValueError):
            continue
        found[int(pid)] = (ppid, cmdline)
    return found


def ssh_sessions_at_work(user, table=None):
    """How many of `user`'s SSH sessions run a process (not an SFTP server); port forwarding alone runs none."""
    table = processes() if table is None else table
    sessions = {
        pid for pid, (_, cmd) in table.items() if SESSION.match(cmd) and SESSION.match(cmd).group("user") == user
    }
    working = set()
    for _pid, (ppid, cmd) in table.items():
        if ppid in sessions and not any(word in cmd for word in NOT_WORK):
            working.add(ppid)
    return len(working)


def worker_connections(workers, tcp_table="/proc/net/tcp"):
    """How many established IPv4 TCP connections this machine holds to the worker nodes' sshd ("IP:PORT")."""
    wanted = set()
    for worker in workers:
        address, port = worker.rsplit(":", 1)
        wanted.add(f"{struct.unpack('=I', socket.inet_aton(address))[0]:08X}:{int(port):04X}")  # /proc's notation
    if not wanted:
        return 0
    try:
        with open(tcp_table) as f:
            rows = [line.split() for line in f.readlines()[1:]]
    except OSError:
        return 0
    return sum(1 for row in rows if len(row) > 3 and row[3] == TCP_ESTABLISHED and row[2] in wanted)


def gpu_busy():
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return any(int(v) > GPU_BUSY_PERCENT for v in done.stdout.split() if v.isdigit())
    except (OSError, subprocess.SubprocessError):
        return False


def http(request, config):
    context = ssl.create_default_context(cafile=config.get("ca_bundle") or None)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
    return opener.open(request, timeout=30)


def deallocate(config):
    """Token from the instance metadata service, then ARM's deallocate of this VM (and, on the head of several
    nodes, of every worker first: config "vm_ids", head first); raises on failure."""
    token_url = (
        f"{config['imds_url']}/metadata/identity/oauth2/token?api-version=2018-02-01"
        "&resource=https://management.azure.com/"
    )
    request = urllib.request.Request(token_url, headers={"Metadata": "true"})
    with urllib.request.urlopen(request, timeout=30) as response:
        token = json.load(response)["access_token"]
    head, *workers = config.get("vm_ids") or [config["vm_id"]]
    for vm_id in [*workers, head]:  # this VM last: its deallocation ends this agent
        url = f"{config['arm_endpoint'].rstrip('/')}{vm_id}/deallocate?api-version={config['compute_api']}"
        request = urllib.request.Request(url, data=b"", method="POST", headers={"Authorization": f"Bearer {token}"})
        with http(request, config) as response:
            status = response.status
    return status


def tell(config, message):
    with open(os.path.join(config["state_dir"], "notice"), "a") as f:
        f.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} {message}\n")
    if shutil.which("wall"):
        subprocess.run(["wall"], input=message, text=True, timeout=20, check=False, capture_output=True)


def run(config):
    state_dir, window, probe, warn = config["state_dir"], config["window"], config["probe"], config["warn"]
    idle_since, warned, failures, last_error, last_reasons = time.time(), False, 0, None, None
    log(state_dir, f"started: window {window:g} s, probe {probe:g} s")
    while True:
        now = time.time()
        busy, kernel_latest = kernels_activity(config, now)
        sessions = ssh_sessions_at_work(config["user"])
        links = worker_connections(config.get("workers") or [])
        found = (("busy kernel", busy), (f"{sessions} SSH session(s)", sessions), (f"{links} SSH to workers", links))
        reasons = [r for r, on in found if on]
        reasons += ["busy GPU"] if gpu_busy() else []
        if reasons or last_reasons:  # active, or seen ended only now: the window starts when it is seen gone,
            idle_since, warned = now, False  # so that it is never cut short by up to a probe interval
        if reasons != last_reasons:
            log(state_dir, "active: " + ", ".join(reasons) if reasons else "no activity")
            last_reasons = reasons
        idle_since = max(idle_since, kernel_latest)
        idle = now - idle_since
        state = {
            "idle_since": idle_since,
            "idle_s": idle,
            "checked_at": now,
            "window": window,
            "last_error": last_error,
        }
        write_json(os.path.join(state_dir, "state.json"), state)
        if idle >= window - warn and not warned:
            tell(config, f"dsvm-kit: this VM deallocates itself in {max(window - idle, 0):.0f} s unless it is used")
            warned = True
        if idle >= window:
            try:
                status = deallocate(config)
                log(state_dir, f"deallocate accepted ({status}) after {idle:.1f} s idle")
                write_json(os.path.join(state_dir, "stopped.json"), {"reason": "idle", "at": now, "idle_s": idle})
                time.sleep(3600)  # the VM goes; should it not, look again
                continue
            except (OSError, ValueError, KeyError) as e:
                failures += 1
                status = getattr(e, "code", None)
                last_error = f"{type(e).__name__}: {status or e}"
                log(state_dir, f"deallocate failed ({last_error}); retrying")
                retry_after = e.headers.get("Retry-After") if isinstance(e, urllib.error.HTTPError) else None
                time.sleep(float(retry_after) if retry_after else min(probe * 2**failures, 300))
                continue
        failures = 0
        time.sleep(probe)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        run(json.load(f))
