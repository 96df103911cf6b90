"""Plan: names, tags and REST-shaped request bodies as pure functions of the settings."""

import base64
import json
import subprocess
from datetime import UTC, datetime

import pytest

from provision import keys
from provision.plan import Owner, cloud_config, is_ours, make_plan, names_for, redacted, summary_rows, tags_for
from provision.settings import load

SUB = "11111111-2222-3333-4444-555555555555"
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
HOST_KEY = keys.generate()
ANA = Owner("6f1c2a9e-0000-4000-8000-00000000a0a0", "ana@contoso.example")
CLIENT_KEY = keys.generate()


def plan_for(**flags):
    settings = load(flags, env={"AZURE_SUBSCRIPTION_ID": SUB}, cwd=None)
    return make_plan(
        settings,
        region=settings.region,
        size=settings.size,
        allow_ip="203.0.113.7/32",
        ssh_public_key=CLIENT_KEY.public_openssh,
        host_key=HOST_KEY,
        owner=ANA,
        now=NOW,
    )


def bodies(plan):
    return {step.kind: step.body for step in plan.steps()}


def test_names_follow_the_deployment_name():
    n = names_for("exp1", SUB)
    assert (n.resource_group, n.vnet, n.nsg, n.public_ip, n.nic, n.vm) == (
        "dsvm-exp1",
        "exp1-vnet",
        "exp1-nsg",
        "exp1-ip",
        "exp1-nic",
        "exp1",
    )
    assert n.dns_label.startswith("exp1-") and len(n.dns_label) == len("exp1-") + 6
    assert names_for("exp1", SUB.replace("1", "9")).dns_label != n.dns_label


def test_creation_order_and_ids():
    plan = plan_for(name="exp1")
    assert [s.kind for s in plan.steps()] == [
        "resource_group",
        "vnet",
        "nsg",
        "public_ip",
        "nic",
        "vm",
    ]
    assert (
        plan.vm_id == f"/subscriptions/{SUB}/resourceGroups/dsvm-exp1/providers/Microsoft.Compute/virtualMachines/exp1"
    )


def test_every_body_is_tagged():
    plan = plan_for(name="exp1")
    expected = {
        "managed-by": "dsvm-kit",
        "deployment": "exp1",
        "owner": ANA.id,
        "owner-name": ANA.name,
        "created": "2026-11-22T09:30:00+00:00",
    }
    for body in bodies(plan).values():
        assert body["tags"] == expected and body["location"] == "eastus"
    assert is_ours(expected, "exp1") and not is_ours(expected, "exp2") and not is_ours(None, "exp1")


def test_owner_tags_carry_the_principal_within_azure_limits():
    service_principal = tags_for("exp1", Owner("oid-of-app"), NOW)
    assert service_principal["owner"] == "oid-of-app" and "owner-name" not in service_principal
    long_name = tags_for("exp1", Owner("oid", "x" * 300), NOW)["owner-name"]
    assert long_name == "x" * 256  # Azure refuses tag values over 256 characters


def test_nsg_allows_ssh_from_the_caller_only():
    rules = bodies(plan_for())["nsg"]["properties"]["securityRules"]
    assert [(r["properties"]["sourceAddressPrefix"], r["properties"]["destinationPortRange"]) for r in rules] == [
        ("203.0.113.7/32", "22")
    ]
    public = bodies(plan_for(access="public"))["nsg"]["properties"]["securityRules"]
    assert {r["properties"]["destinationPortRange"] for r in public} == {"22", "8888"}
    assert all(r["properties"]["sourceAddressPrefix"] == "203.0.113.7/32" for r in public)


def test_public_ip_is_standard_static_with_dns_label():
    plan = plan_for(name="exp1")
    body = bodies(plan)["public_ip"]
    assert body["sku"]["name"] == "Standard"
    assert body["properties"]["publicIPAllocationMethod"] == "Static"
    assert body["properties"]["dnsSettings"]["domainNameLabel"] == plan.names.dns_label


def test_nic_references_subnet_ip_and_nsg():
    plan = plan_for(name="exp1")
    props = bodies(plan)["nic"]["properties"]
    ipconfig = props["ipConfigurations"][0]["properties"]
    assert ipconfig["subnet"]["id"] == plan.subnet_id
    assert ipconfig["publicIPAddress"]["id"].endswith("/publicIPAddresses/exp1-ip")
    assert props["networkSecurityGroup"]["id"].endswith("/networkSecurityGroups/exp1-nsg")


def test_vm_body_is_rest_shaped():
    vm = bodies(plan_for(name="exp1", sizes="Standard_NC24ads_A100_v4", os_disk_gb=512))["vm"]
    props = vm["properties"]
    assert props["hardwareProfile"] == {"vmSize": "Standard_NC24ads_A100_v4"}
    assert props["storageProfile"]["imageReference"] == {
        "publisher": "microsoft-dsvm",
        "offer": "ubuntu-2204",
        "sku": "2204-gen2",
        "version": "latest",
    }
    disk = props["storageProfile"]["osDisk"]
    assert disk["diskSizeGB"] == 512 and disk["deleteOption"] == "Delete"
    linux = props["osProfile"]["linuxConfiguration"]
    assert linux["disablePasswordAuthentication"] is True
    assert linux["ssh"]["publicKeys"] == [
        {"path": "/home/azureuser/.ssh/authorized_keys", "keyData": CLIENT_KEY.public_openssh}
    ]
    assert "adminPassword" not in props["osProfile"]
    assert props["networkProfile"]["networkInterfaces"][0]["properties"]["deleteOption"] == "Delete"
    assert props["diagnosticsProfile"] == {"bootDiagnostics": {"enabled": True}}
    assert "plan" not in vm


def test_custom_data_carries_the_host_key():
    vm = bodies(plan_for())["vm"]
    user_data = base64.b64decode(vm["properties"]["osProfile"]["customData"]).decode()
    assert user_data.startswith("#cloud-config\n")
    config = json.loads(user_data.split("\n", 1)[1])
    assert config["ssh_keys"]["ed25519_private"] == HOST_KEY.private_openssh
    assert config["ssh_keys"]["ed25519_public"] == HOST_KEY.public_openssh
    assert len(vm["properties"]["osProfile"]["customData"]) < 64 * 1024


def test_redacted_hides_the_private_host_key():
    vm = bodies(plan_for())["vm"]
    shown = json.dumps(redacted(vm))
    assert "PRIVATE KEY" not in shown and "<redacted>" in shown
    assert "PRIVATE KEY" in base64.b64decode(vm["properties"]["osProfile"]["customData"]).decode()


def test_summary_names_every_resource_and_no_secret():
    rows = summary_rows(plan_for(name="exp1"))
    assert [r[1] for r in rows] == [
        "dsvm-exp1",
        "exp1-vnet",
        "exp1-nsg",
        "exp1-ip",
        "exp1-nic",
        "exp1",
    ]
    text = " ".join(" ".join(r) for r in rows)
    assert "PRIVATE" not in text and "SHA256:" in text and "203.0.113.7/32" in text


@pytest.mark.parametrize("port", [22, 2222])
def test_user_data_passes_cloud_inits_own_validator(tmp_path, port):
    user_data = tmp_path / "user-data"
    user_data.write_text(cloud_config(HOST_KEY, port))
    result = subprocess.run(["cloud-init", "schema", "--config-file", str(user_data)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_a_non_default_ssh_port_is_configured_in_sshd_through_cloud_init():
    def user_data(**flags):
        vm = bodies(plan_for(**flags))["vm"]
        return json.loads(base64.b64decode(vm["properties"]["osProfile"]["customData"]).decode().split("\n", 1)[1])

    assert "write_files" not in user_data() and "runcmd" not in user_data()  # 22: the image's own sshd_config
    config = user_data(ssh_port=2222)
    assert config["write_files"] == [
        {"path": "/etc/ssh/sshd_config.d/60-dsvm-kit-port.conf", "permissions": "0644", "content": "Port 2222\n"}
    ]
    assert config["runcmd"] == [["systemctl", "try-reload-or-restart", "ssh"]]
    rules = bodies(plan_for(ssh_port=2222))["nsg"]["properties"]["securityRules"]
    assert [r["properties"]["destinationPortRange"] for r in rules] == ["2222"]


def test_cloud_init_validator_catches_a_bad_document(tmp_path):
    user_data = tmp_path / "user-data"
    user_data.write_text('#cloud-config\n{"ssh_keys": "not a mapping"}\n')
    result = subprocess.run(["cloud-init", "schema", "--config-file", str(user_data)], capture_output=True, text=True)
    assert result.returncode != 0
