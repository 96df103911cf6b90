"""The security model as tests: pinned host keys, no open NSG, private files, no secrets leaked."""

import ast
import stat
from pathlib import Path

import pytest

from provision.targets.azure import caller
from tests.conftest import provision
from tests.fakes.serving import serve, stop

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = [*ROOT.glob("provision/**/*.py"), *ROOT.glob("bootstrap/**/*.py")]
OPEN_SOURCES = {"*", "0.0.0.0/0", "Internet", "Any", "any"}


def test_no_code_path_can_accept_an_unknown_host_key():
    """Only RejectPolicy; never AutoAdd/Warning, never the user's known_hosts."""
    names = set()
    for path in PRODUCT:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
    assert {"AutoAddPolicy", "WarningPolicy", "load_system_host_keys", "MissingHostKeyPolicy"} & names == set()
    assert "RejectPolicy" in names


def nsg_rules(arm):
    nsgs = [i for i in arm.inventory() if "/networksecuritygroups/" in i.lower()]
    assert len(nsgs) == 1
    return arm.resource(nsgs[0])["properties"]["securityRules"]


def test_by_default_no_rule_admits_everyone(arm, azure_env):
    assert provision("up", "--name", "sec", "--no-bootstrap").exit_code == 0
    rules = nsg_rules(arm)
    assert rules and all(r["properties"]["sourceAddressPrefix"] not in OPEN_SOURCES for r in rules)
    assert [r["properties"]["destinationPortRange"] for r in rules] == ["22"]


def test_the_detected_address_is_a_single_host(monkeypatch, arm, azure_env, tmp_path):
    """Without --allow-ip, the rule admits the caller's own address, a /32."""
    import http.server

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"198.51.100.23\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    serve(server)
    monkeypatch.setattr(caller, "ECHO_SERVICES", (f"http://127.0.0.1:{server.server_port}/",))
    monkeypatch.delenv("PROVISION_ALLOW_IP")
    try:
        assert provision("up", "--name", "sec", "--no-bootstrap").exit_code == 0
    finally:
        stop(server)
    assert [r["properties"]["sourceAddressPrefix"] for r in nsg_rules(arm)] == ["198.51.100.23/32"]


def test_no_detected_address_means_no_resources(monkeypatch, arm, azure_env):
    monkeypatch.setattr(caller, "ECHO_SERVICES", ("http://127.0.0.1:9/",))
    monkeypatch.delenv("PROVISION_ALLOW_IP")
    result = provision("up", "--name", "sec", "--no-bootstrap")
    assert result.exit_code == 1 and "pass --allow-ip with your address" in result.stderr
    assert arm.inventory() == []


def test_opening_to_everyone_must_be_explicit_and_is_shown(arm, azure_env):
    assert provision("up", "--name", "sec", "--no-bootstrap", "--allow-ip", "0.0.0.0/0").exit_code == 0
    assert [r["properties"]["sourceAddressPrefix"] for r in nsg_rules(arm)] == ["0.0.0.0/0"]


def test_state_key_and_token_files_are_private(cloud, state_dir):
    up = provision("up", "--name", "sec", "--detach", "--skip-check")
    assert up.exit_code == 0, up.stderr
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    for path in (state_dir / "sec").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert {p.name for p in (state_dir / "sec").iterdir()} >= {
        "record.json",
        "id_ed25519",
        "known_hosts",
        "jupyter_token",
        "tunnel.log",
        "tunnel.pid",
    }
    token = (state_dir / "sec" / "jupyter_token").read_text().strip()
    assert len(token) >= 43  # token_urlsafe(32): 256 bits
    assert token not in (state_dir / "sec" / "record.json").read_text()
    assert provision("down", "sec", "--yes").exit_code == 0


@pytest.mark.parametrize("name", ["a;b", "x$(id)", "a b", "../etc", "a`id`", "a|b"])
def test_shell_metacharacters_in_a_name_are_refused(arm, azure_env, name):
    result = provision("up", "--name", name, "--no-bootstrap")
    assert result.exit_code == 2 and arm.requests == []


@pytest.mark.parametrize("user", ["a;b", "x$(id)", "bob smith", "root", "a&b"])
def test_shell_metacharacters_in_a_user_are_refused(arm, azure_env, user):
    result = provision("up", "--name", "sec", "--admin-user", user, "--no-bootstrap")
    assert result.exit_code == 2 and arm.requests == []
