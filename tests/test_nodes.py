"""Several nodes (`--nodes N`): N VMs in one VNet and proximity placement group through the real SDK against the
fake ARM; only the head has a public IP; each node its own pinned host key; quota, rollback and down for the set."""

from pathlib import Path

import pytest

from provision.state import StateStore
from tests.conftest import provision

PPG_KIND = "Microsoft.Compute/proximityPlacementGroups"


def ids_of(arm, kind: str) -> list[str]:
    return [i for i in arm.inventory() if f"/providers/{kind}/".lower() in i.lower()]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nodes", "0"], "nodes must be between 1 and 16, not 0"),
        (["--nodes", "17"], "nodes must be between 1 and 16, not 17"),
        (["--nodes", "2", "--target", "local"], "--nodes 2 needs --target azure"),
        (["--nodes", "2", "--target", "ssh://me@example.com"], "--nodes 2 needs --target azure"),
    ],
)
def test_bad_node_counts_are_one_line_errors_before_any_write(azure_env, arm, state_dir, argv, message):
    result = provision("up", "--name", "bad", *argv)
    assert result.exit_code != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert arm.inventory() == [] and not (state_dir / "bad").exists()


def test_up_makes_four_nodes_in_one_placement_group_only_the_head_public(azure_env, arm, booter, state_dir):
    result = provision("up", "--name", "quad", "--nodes", "4", "--no-bootstrap")
    assert result.exit_code == 0, result.stderr
    vms = ids_of(arm, "Microsoft.Compute/virtualMachines")
    assert sorted(v.rsplit("/", 1)[1] for v in vms) == ["quad", "quad-1", "quad-2", "quad-3"]
    [ppg] = ids_of(arm, PPG_KIND)
    members = {m["id"].lower() for m in arm.resource(ppg)["properties"]["virtualMachines"]}
    assert members == {v.lower() for v in vms}
    assert len(ids_of(arm, "Microsoft.Network/publicIPAddresses")) == 1
    nics = {n.rsplit("/", 1)[1]: arm.resource(n) for n in ids_of(arm, "Microsoft.Network/networkInterfaces")}
    public = {
        name
        for name, nic in nics.items()
        if "publicIPAddress" in nic["properties"]["ipConfigurations"][0]["properties"]
    }
    assert public == {"quad-nic"}
    record = StateStore(state_dir).require("quad")
    assert [n["via_head"] for n in record.nodes] == [False, True, True, True]
    assert record.machine == record.nodes[0] and record.machine["host"] == "127.0.0.1"
    private = [
        nics[f"{vm.rsplit('/', 1)[1]}-nic"]["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"]
        for vm in sorted(vms)
    ]
    assert [n["private_ip"] for n in record.nodes] == private
    assert [n["host"] for n in record.nodes[1:]] == private[1:]  # workers are reached at their private address
    assert len({n["host_key"] for n in record.nodes}) == 4  # a host key of its own for each node...
    boots = {spec.private_ip: spec for event, spec in booter.events if event == "boot"}
    for node in record.nodes:  # ...each handed to its own VM in customData
        assert node["host_key"] in boots[node["private_ip"]].custom_data.decode()
    assert {spec.public_ip for spec in boots.values()} == {"127.0.0.1", None}


def test_preflight_counts_every_node_against_quota(azure_env, arm, state_dir):
    arm.set_quota("eastus", "standardNCASv3_T4Family", limit=15)  # 4 nodes of 4 vCPUs need 16
    result = provision("up", "--name", "quota", "--nodes", "4", "--no-bootstrap")
    assert result.exit_code != 0
    assert "has a limit of 15 vCPUs, 0 in use, and up needs 16 (4 nodes of 4); run " in result.stderr, result.stderr
    assert "provision quota request --size Standard_NC4as_T4_v3 --region eastus --vcpus 16`" in result.stderr
    assert arm.inventory() == [] and StateStore(state_dir).load("quota") is None


def test_node_3_of_4_failing_rolls_back_the_whole_set(azure_env, arm, booter, state_dir):
    arm.inject("PUT", r"/virtualmachines/roll-2$", code="AllocationFailed", async_failure=True, times=99)
    result = provision("up", "--name", "roll", "--nodes", "4", "--no-bootstrap")
    assert result.exit_code != 0
    assert "AllocationFailed" in result.stderr and "Traceback" not in result.stderr
    assert arm.inventory() == [] and booter.running == set()
    assert StateStore(state_dir).load("roll") is None


def test_down_deletes_every_node(azure_env, arm, booter, state_dir):
    assert provision("up", "--name", "gone", "--nodes", "3", "--no-bootstrap").exit_code == 0
    assert len(booter.running) == 3
    result = provision("down", "gone", "--yes")
    assert result.exit_code == 0, result.stderr
    assert arm.inventory() == [] and booter.running == set()
    assert StateStore(state_dir).load("gone") is None


def test_the_all_reduce_verdict_fails_on_a_wrong_sum_a_failed_rank_or_no_line():
    from provision.allreduce import judge

    passed = (
        "[rank0]:all-reduce passed: 4 processes (gloo), sum 10 (expected 10), 32 MiB in 9.0 ms, bus bandwidth 5.59 GB/s"
    )
    assert judge(passed, None).passed and judge(passed, None).summary == passed.removeprefix("[rank0]:")
    wrong = (
        "[rank0]:all-reduce FAILED: 4 processes (gloo), sum 9 (expected 10), 32 MiB in 9.0 ms, bus bandwidth 5.59 GB/s"
    )
    verdict = judge(wrong, "the job failed: node 0 (torchrun exited with 1); it ended with: ...")
    assert not verdict.passed and verdict.summary.startswith("all-reduce FAILED: 4 processes (gloo), sum 9")
    verdict = judge("", "the job failed: rank 2 on node 1 (torchrun exited with 1); it ended with: boom")
    assert not verdict.passed and verdict.summary.startswith("the all-reduce check failed: rank 2 on node 1")
    assert not judge("[rank0]:hello", None).passed


def _two_node_record(state_dir):
    from provision.state import Record

    store = StateStore(state_dir)
    head = {"host": "203.0.113.9", "port": 2222, "user": "me", "key_path": "/k", "host_key": "ssh-ed25519 HEAD"}
    worker = {**head, "host": "10.0.0.5", "host_key": "ssh-ed25519 WORKER", "private_ip": "10.0.0.5", "via_head": True}
    record = Record(name="two", target="azure", created="now", machine=head, nodes=[head, worker])
    store.save(record)
    return store, record


def test_ssh_to_a_worker_jumps_through_the_head_with_every_key_pinned(state_dir):
    import shlex

    from provision.sshfiles import ssh_argv, ssh_config_block, write_known_hosts
    from provision.targets import Machine

    store, record = _two_node_record(state_dir)
    head, worker = (Machine.from_dict(n) for n in record.nodes)
    write_known_hosts(store, "two", head, [worker])
    known = (state_dir / "two" / "known_hosts").read_text().splitlines()
    assert known == ["[203.0.113.9]:2222 ssh-ed25519 HEAD", "[10.0.0.5]:2222 ssh-ed25519 WORKER"]
    argv = ssh_argv(store, "two", ["hostname"], node=1)
    assert argv[-2:] == ["10.0.0.5", "hostname"]
    [proxy] = [a.removeprefix("ProxyCommand=") for a in argv if a.startswith("ProxyCommand=")]
    jump = shlex.split(proxy)
    assert jump[-3:] == ["-W", "%h:%p", "203.0.113.9"] and "StrictHostKeyChecking=yes" in jump and "Port=2222" in jump
    assert ssh_argv(store, "two", [])[-1] == "203.0.113.9" and not any("Proxy" in a for a in ssh_argv(store, "two", []))
    with pytest.raises(Exception, match="has no node 2: its nodes are 0 \\(the head\\) to 1"):
        ssh_argv(store, "two", [], node=2)
    head_block, worker_block = ssh_config_block(store, "two").split("\n\n")
    assert head_block.startswith("Host dsvm-two\n") and "ProxyJump" not in head_block
    assert worker_block.startswith("Host dsvm-two-node1\n")
    assert "    HostName 10.0.0.5" in worker_block and "    ProxyJump dsvm-two" in worker_block


def test_status_and_list_show_every_node_and_its_private_address(azure_env, arm, booter, state_dir):
    import json

    assert provision("up", "--name", "duo", "--nodes", "2", "--no-bootstrap").exit_code == 0
    head, worker = StateStore(state_dir).require("duo").nodes
    shown = f"2: head {head['private_ip']}, node1 {worker['private_ip']}"
    status = json.loads(provision("status", "duo", "--json").stdout)
    assert status["nodes"] == shown and status["last_allreduce"] == "never run"
    [row] = json.loads(provision("list", "--json").stdout)
    assert row["nodes"] == shown
    assert provision("down", "duo", "--yes").exit_code == 0


def test_the_head_agent_sees_a_connection_to_a_worker_sshd_in_proc_net_tcp():
    import socket

    from bootstrap.idle_agent import worker_connections

    with socket.socket() as server:
        server.bind(("127.0.0.3", 0))  # a worker's private address, as the fake cloud gives it
        server.listen()
        worker = f"127.0.0.3:{server.getsockname()[1]}"
        assert worker_connections([worker]) == 0  # listening only
        with socket.create_connection(server.getsockname()) as client:
            accepted, _ = server.accept()
            with accepted:
                assert worker_connections([worker]) == 1  # this end's row; the accepted end's remote is the client
                assert worker_connections(["127.0.0.4:22"]) == 0 and worker_connections([]) == 0
                client.close()
    assert worker_connections([worker]) == 0


def test_an_idle_deployment_of_two_nodes_deallocates_both_with_the_heads_identity(cloud, state_dir):
    from tests.conftest import console
    from tests.test_idle_stop import WINDOW_MIN, idle_env, wait_deallocated

    env = idle_env(cloud, PROVISION_IDLE_STOP=WINDOW_MIN)
    up = console("up", "--name", "idp", "--nodes", "2", "--detach", "--skip-check", env=env, timeout=600)
    assert up.exit_code == 0, up.stderr
    (role,) = cloud.arm.role_definitions()
    (assignment,) = cloud.arm.role_assignments()  # at the deployment's group: every node's VM and nothing else
    group = assignment["properties"]["scope"]
    assert group.endswith("/resourceGroups/dsvm-idp") and role["properties"]["assignableScopes"] == [group]
    vms = f"{group}/providers/Microsoft.Compute/virtualMachines"
    (carried,) = cloud.arm.resource(f"{vms}/idp")["identity"]["userAssignedIdentities"].values()
    assert assignment["properties"]["principalId"] == carried["principalId"]
    assert "identity" not in cloud.arm.resource(f"{vms}/idp-1")  # a worker needs none
    took = wait_deallocated(cloud, int(cloud.env["PROVISION_SSH_PORT"]), limit=90)
    agent_dir = Path(f"/home/{cloud.user}/.dsvm-kit/idle")
    logs = {f.name: f.read_text() for f in (agent_dir / "agent.log", agent_dir / "agent.out") if f.exists()}
    assert took is not None, f"still running: {cloud.vms.running()}; {logs}"
    posts = {
        r.path.lower().rsplit("/", 2)[-2]: r.status
        for r in cloud.arm.requests
        if r.method == "POST" and r.path.lower().endswith("/deallocate")
    }
    assert posts == {"idp": 202, "idp-1": 202}
    down = console("down", "idp", "--yes", "--discard", env=env, timeout=600)  # deallocated: unreadable
    assert down.exit_code == 0, down.stderr
    assert cloud.arm.role_definitions() == [] and cloud.arm.role_assignments() == []


def test_the_daily_auto_shutdown_covers_every_node(azure_env, arm, booter, state_dir):
    argv = ("--nodes", "3", "--no-bootstrap", "--idle-stop", "off", "--auto-shutdown", "19:30")
    assert provision("up", "--name", "nightly", *argv).exit_code == 0
    schedules = [r for r in arm.requests if r.method == "PUT" and "/microsoft.devtestlab/schedules/" in r.path.lower()]
    targets = {s.body["properties"]["targetResourceId"].rsplit("/", 1)[-1] for s in schedules}
    assert len(schedules) == len(targets) == 3, targets  # one schedule per VM, every VM one
    assert {s.path.rsplit("/", 1)[-1] for s in schedules} == {f"shutdown-computevm-{vm}" for vm in targets}
