"""The `provision` console script: exit codes, output, and no work before validation."""

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import console

NAME = "cli1"


def test_help_does_not_import_the_sdk():
    imported = (
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from provision.cli import run; run(['--help']); "
                "print(sorted({m.split('.')[0] for m in sys.modules} & {'azure', 'paramiko', 'torch'}))",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert imported == "[]"


def test_help_lists_the_commands():
    result = console("--help")
    assert result.exit_code == 0
    for command in (
        "up",
        "down",
        "status",
        "list",
        "plan",
        "check",
        "tunnel",
        "ssh",
        "ssh-config",
        "gc",
        "stop",
        "start",
    ):
        assert f"  {command} " in result.stdout


def test_plan_prints_a_table_and_sends_nothing(arm, azure_env):
    result = console("plan", "--name", NAME, env=azure_env)
    assert result.exit_code == 0, result.stderr
    for row in (
        "resource group",
        f"dsvm-{NAME}",
        f"{NAME}-vnet",
        f"{NAME}-nsg",
        "TCP 22 (SSH) from 127.0.0.1/32",
        "Standard_NC4as_T4_v3",
        "managed-by=dsvm-kit",
    ):
        assert row in result.stdout
    assert "PRIVATE KEY" not in result.stdout
    assert arm.requests == []


def test_plan_json_has_every_body(arm, azure_env):
    steps = json.loads(console("plan", "--name", NAME, "--json", env=azure_env).stdout)
    assert [s["kind"] for s in steps] == ["resource_group", "vnet", "nsg", "public_ip", "nic", "vm"]
    assert steps[-1]["body"]["properties"]["osProfile"]["customData"] == "<redacted>"


def test_up_status_list_down(arm, azure_env):
    up = console("up", "--name", NAME, "--no-bootstrap", env=azure_env)
    assert up.exit_code == 0, up.stderr
    assert "VM ready:" in up.stdout and ".eastus.cloudapp.azure.com" in up.stdout
    for step in (
        "Preflight: Standard_NC4as_T4_v3 in eastus",
        f"Resource group dsvm-{NAME} in eastus",
        "Network: virtual network, security group and public IP",
        f"VM {NAME}",
    ):
        assert f"✓ {step}" in up.stderr
    status = console("status", NAME, env=azure_env)
    assert status.exit_code == 0 and "running" in status.stdout and "127.0.0.1" in status.stdout
    listed = console("list", env=azure_env)
    assert listed.exit_code == 0 and NAME in listed.stdout
    down = console("down", NAME, "--yes", env=azure_env)
    assert down.exit_code == 0 and f"deployment '{NAME}' is gone" in down.stdout
    assert arm.inventory() == []
    assert json.loads(console("list", "--json", env=azure_env).stdout) == []


def test_quiet_prints_only_the_result(arm, azure_env):
    up = console("up", "--name", NAME, "--no-bootstrap", "--quiet", env=azure_env)
    assert up.exit_code == 0 and up.stderr == "" and "VM ready:" in up.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["up", "--name", "Bad_Name"], "deployment name 'Bad_Name'"),
        (["up", "--size", "Standard_D4s_v5"], "has no GPU"),
        (["up", "--allow-ip", "1.2.3"], "is not an address or CIDR block"),
        (["up", "--region", "East US"], "use the short form such as eastus"),
        (["up", "--admin-user", "root"], "is a name Azure refuses"),
    ],
)
def test_bad_input_exits_2_with_one_line_before_any_request(arm, azure_env, argv, message):
    result = console(*argv, env=azure_env)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert arm.requests == []


def test_unknown_option_is_a_usage_error():
    result = console("up", "--regoin", "eastus")
    assert result.exit_code == 2 and "No such option" in result.stderr


def test_status_of_an_unknown_deployment(state_dir):
    result = console("status", "ghost", env={"PROVISION_STATE_DIR": str(state_dir)})
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no deployment named 'ghost' here (known: none); see `provision list`"


def test_python_dash_m_provision():
    result = subprocess.run([sys.executable, "-m", "provision", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "Commands" in result.stdout


def test_the_laptop_install_needs_no_torch():
    from importlib.metadata import requires

    base = [r.split(";")[0].strip() for r in requires("dsvm-kit") if "extra ==" not in r]
    names = {re.split(r"[<>=!~ \[]", r, maxsplit=1)[0].lower() for r in base}
    assert "azure-mgmt-compute" in names and "paramiko" in names
    assert names.isdisjoint({"torch", "numpy", "jupyterlab", "papermill", "ipykernel", "scikit-learn"})


def test_a_subscription_azure_does_not_know(arm, azure_env):
    env = {**azure_env, "AZURE_SUBSCRIPTION_ID": "99999999-9999-9999-9999-999999999999"}
    result = console("up", "--name", NAME, "--no-bootstrap", env=env)
    assert result.exit_code == 1
    assert "SubscriptionNotFound" in result.stderr and "check AZURE_SUBSCRIPTION_ID" in result.stderr
    assert arm.inventory() == []


def test_output_prints_text_as_given_no_emoji_codes():
    import io

    from provision.output import Output

    out, err = io.StringIO(), io.StringIO()
    fingerprint = "F3:AB:CE:CD:C8:16:EF:CD:AB"  # ":CD:" and ":ab:" are emoji codes to rich
    Output(out=out, err=err).result(f"fingerprint is {fingerprint}")
    Output(out=out, err=err).warn(f"fingerprint is {fingerprint}")
    assert out.getvalue() == f"fingerprint is {fingerprint}\n"
    assert err.getvalue() == f"warning: fingerprint is {fingerprint}\n"
