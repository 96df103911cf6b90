"""Settings: provision.toml < environment < flags, and a one-line error for every bad value."""

import json

import pytest

from provision.errors import UsageError
from provision.settings import DEFAULT_IMAGE, DEFAULT_SIZE, load

SUB = "11111111-2222-3333-4444-555555555555"


def settings(flags=None, env=None, toml="", tmp_path=None, **kw):
    if toml:
        (tmp_path / "provision.toml").write_text(toml)
    return load(flags or {}, env={"AZURE_SUBSCRIPTION_ID": SUB, **(env or {})}, cwd=tmp_path)


def test_defaults(tmp_path):
    s = settings(tmp_path=tmp_path)
    assert (s.name, s.region, s.size, s.image, s.admin_user) == (
        "dsvm",
        "eastus",
        DEFAULT_SIZE,
        DEFAULT_IMAGE,
        "azureuser",
    )
    assert s.ssh_port == 22 and s.allow_ip is None and s.arm_endpoint == "https://management.azure.com"
    assert s.dataset == "synthetic"  # the check needs no download (the notebook makes it on the device)


def test_toml_then_environment_then_flags(tmp_path):
    toml = 'name = "team"\nregion = ["westus2", "eastus"]\nsize = "Standard_NC8as_T4_v3"\n'
    s = settings(tmp_path=tmp_path, toml=toml)
    assert s.name == "team" and s.regions == ("westus2", "eastus")
    s = settings(tmp_path=tmp_path, toml=toml, env={"PROVISION_REGION": "uksouth,northeurope"})
    assert s.regions == ("uksouth", "northeurope") and s.size == "Standard_NC8as_T4_v3"
    s = settings({"regions": "japaneast"}, tmp_path=tmp_path, toml=toml, env={"PROVISION_REGION": "uksouth"})
    assert s.regions == ("japaneast",)


def test_subscription_from_azure_cli_profile(tmp_path):
    profile = tmp_path / "azcli" / "azureProfile.json"
    profile.parent.mkdir()
    subscriptions = [{"id": "x", "isDefault": False}, {"id": SUB, "isDefault": True}]
    profile.write_text("\ufeff" + json.dumps({"subscriptions": subscriptions}), encoding="utf-8")
    s = load({}, env={"AZURE_CONFIG_DIR": str(profile.parent)}, cwd=tmp_path)
    assert s.subscription == SUB


def test_sovereign_cloud_and_private_endpoint(tmp_path):
    assert settings({"cloud": "china"}, tmp_path=tmp_path).arm_endpoint.endswith("chinacloudapi.cn")
    s = settings(env={"PROVISION_ARM_ENDPOINT": "https://127.0.0.1:8443"}, tmp_path=tmp_path)
    assert s.arm_endpoint == "https://127.0.0.1:8443"


def test_token_is_not_in_repr(tmp_path):
    s = settings(env={"PROVISION_ARM_TOKEN": "sekrit-token"}, tmp_path=tmp_path)
    assert s.arm_token == "sekrit-token" and "sekrit" not in repr(s)


def test_allow_ip_is_normalised(tmp_path):
    assert settings({"allow_ip": "203.0.113.7"}, tmp_path=tmp_path).allow_ip == "203.0.113.7/32"
    assert settings({"allow_ip": "10.1.2.3/24"}, tmp_path=tmp_path).allow_ip == "10.1.2.0/24"


def test_cpu_size_with_allow_cpu(tmp_path):
    s = settings({"sizes": "Standard_D4s_v5", "allow_cpu": True}, tmp_path=tmp_path)
    assert s.size == "Standard_D4s_v5"


def test_local_target_needs_no_subscription(tmp_path):
    s = load({"target": "local"}, env={}, cwd=tmp_path)
    assert s.target == "local" and s.subscription is None


def test_ssh_target_parsed(tmp_path):
    s = load({"target": "ssh://ubuntu@gpu.example.com:2222"}, env={}, cwd=tmp_path)
    assert s.ssh_target == ("ubuntu", "gpu.example.com", 2222)


@pytest.mark.parametrize(
    "flags, env, message",
    [
        ({"name": "My_VM"}, {}, "deployment name 'My_VM' must be 3-40 characters"),
        ({"name": "x; rm -rf /"}, {}, "deployment name"),
        ({"name": "a$(id)b"}, {}, "deployment name"),
        ({"admin_user": "root"}, {}, "admin user 'root' is a name Azure refuses"),
        ({"admin_user": "admin"}, {}, "is a name Azure refuses"),
        ({"admin_user": "Alice"}, {}, "admin user 'Alice' must be 1-32 characters"),
        ({"admin_user": "bob`id`"}, {}, "admin user"),
        ({"sizes": "Standard_D4s_v5"}, {}, "size Standard_D4s_v5 has no GPU"),
        ({"sizes": "Standard_NC6s_v3"}, {}, "Azure has retired"),
        ({"sizes": "NC4as_T4_v3"}, {}, "is not an Azure VM size name"),
        ({"sizes": ","}, {}, "size must name at least one VM size"),
        ({"allow_ip": "300.1.2.3"}, {}, "allow-ip '300.1.2.3' is not an address or CIDR block"),
        ({"allow_ip": "10.0.0.0/33"}, {}, "is not an address or CIDR block"),
        (
            {"regions": "East US"},
            {},
            "region 'East US' is not an Azure region name; use the short form such as eastus",
        ),
        ({"regions": "west-europe"}, {}, "such as westeurope"),
        ({"image": "microsoft-dsvm:ubuntu-2204"}, {}, "is not an image URN"),
        ({"os_disk_gb": 10}, {}, "os-disk-gb must be between 30 and 4095"),
        ({"ssh_port": 70000}, {}, "ssh-port must be between 1 and 65535"),
        ({}, {"PROVISION_SSH_PORT": "abc"}, "ssh-port must be a whole number"),
        ({"cloud": "mars"}, {}, "cloud 'mars' is not one of"),
        ({}, {"PROVISION_ARM_ENDPOINT": "http://127.0.0.1:1"}, "must be an https:// URL"),
        ({}, {"PROVISION_ARM_CA_BUNDLE": "/nonexistent/ca.pem"}, "is not a file"),
        ({}, {"AZURE_SUBSCRIPTION_ID": "not-a-guid"}, "is not a subscription id"),
        ({"target": "gcp"}, {}, "target 'gcp' is not one of azure, local or ssh://"),
        ({"target": "ssh://root;id@host"}, {}, "target"),
        ({"access": "open"}, {}, "access 'open' is not one of tunnel, public"),
        ({"dataset": "mnist"}, {}, "dataset 'mnist' is not one of"),
        ({"epochs": 0}, {}, "epochs must be at least 1"),
        ({"host_key": "not a key"}, {}, "host-key must be a public key line"),
        ({"identity": "/nonexistent/key"}, {}, "is not a file"),
    ],
)
def test_bad_values_give_one_line_errors(tmp_path, flags, env, message):
    with pytest.raises(UsageError) as error:
        settings(flags, env=env, tmp_path=tmp_path)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_subscription_says_how_to_fix(tmp_path):
    with pytest.raises(UsageError, match=r"az login.*--target local"):
        load({}, env={"AZURE_CONFIG_DIR": str(tmp_path)}, cwd=tmp_path)


def test_unknown_toml_key(tmp_path):
    with pytest.raises(UsageError, match="provision.toml: unknown setting 'regoin'"):
        settings(tmp_path=tmp_path, toml='regoin = "eastus"\n')


def test_toml_may_not_hold_the_token(tmp_path):
    with pytest.raises(UsageError, match="unknown setting 'arm_token'"):
        settings(tmp_path=tmp_path, toml='arm_token = "x"\n')


def test_broken_toml(tmp_path):
    with pytest.raises(UsageError, match="provision.toml"):
        settings(tmp_path=tmp_path, toml="name = \n")
