"""The command that starts one node's share of a torchrun job, in a process group of its own.

Runs on the node's shell: prints the group's id first (the laptop kills the whole group on Ctrl-C), then
execs torchrun with a static rendezvous at the head's private address.
"""

import shlex
from dataclasses import dataclass

# NC sizes have no InfiniBand: NCCL must use the VM's Ethernet (DESIGN.md 8, "Several nodes").
AZURE_NCCL = {"NCCL_SOCKET_IFNAME": "eth0", "NCCL_IB_DISABLE": "1"}
RANK_PREFIX = "[rank${rank}]:"  # torchrun's log line prefix template: each line of each rank, with its global rank
# Every line as it is printed: torchrun's stdout (where --tee copies its workers' lines) is the SSH channel, a pipe,
# which Python buffers by blocks; a line of a long job would wait there until torchrun exits. Its workers too.
UNBUFFERED = {"PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class Job:
    python: str
    workdir: str  # on the node
    script: str  # relative to workdir
    args: tuple[str, ...]
    nodes: int
    procs_per_node: int
    master_addr: str
    master_port: int
    torchrun_args: tuple[str, ...] = ()


def interface_probe(peer: str) -> str:
    """Shell that prints the interface this node reaches `peer` through (eth0 on Azure, lo on one machine)."""
    return f"ip -o route get {shlex.quote(peer)} | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'"


def command(job: Job, node_rank: int, env: dict[str, str]) -> str:
    """Shell for node `node_rank`: `setsid` gives torchrun a process group whose id (= its pid) is printed first."""
    argv = [
        job.python,
        *("-m", "torch.distributed.run", "--nnodes", str(job.nodes), "--nproc-per-node", str(job.procs_per_node)),
        *("--node-rank", str(node_rank), "--master-addr", job.master_addr, "--master-port", str(job.master_port)),
        *("--tee", "3"),
        *job.torchrun_args,
        job.script,
        *job.args,
    ]
    exports = " ".join(
        f"{k}={shlex.quote(v)}"
        for k, v in {**env, **UNBUFFERED, "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": RANK_PREFIX}.items()
    )
    inner = f"echo $$; cd {shlex.quote(job.workdir)} && exec env {exports} {shlex.join(argv)}"
    return f"exec setsid -w sh -c {shlex.quote(inner)} 2>&1"


FREE_PORT = "import socket; s = socket.socket(); s.bind(('', 0)); print(s.getsockname()[1])"
