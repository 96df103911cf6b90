"""`provision up --access public`: JupyterLab over TLS on the VM's public port, open to the caller only.

The end-to-end test goes real SDK -> fake ARM -> real sshd -> real JupyterLab serving HTTPS with
the kit's certificate, and checks it from outside with the standard library's TLS client.
"""

import hashlib
import http.client
import http.server
import ipaddress
import json
import pwd
import re
import socket
import ssl
import subprocess
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID

from provision import keys
from provision.errors import UsageError
from provision.plan import Owner, make_plan
from provision.public import CertificateMismatch, PublicJupyter, deployment_certificate
from provision.settings import load
from provision.state import StateStore
from provision.targets import Machine
from provision.tls import ServerCertificate, https_get, make_certificate
from tests.conftest import console, provision
from tests.fakes.serving import serve, stop
from tests.fakes.sshd import free_port

SUB = "11111111-2222-3333-4444-555555555555"
FQDN = "pub-abc123.eastus.cloudapp.azure.com"
FINGERPRINT = re.compile(r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$")
OPEN_TO_ALL = ("*", "Internet", "0.0.0.0/0")
REPO = Path(__file__).resolve().parents[1]


def home_of(user: str) -> Path:
    return Path(pwd.getpwnam(user).pw_dir)


# -- the certificate ---------------------------------------------------------------------------


def test_certificate_names_the_vm_and_lasts_90_days():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    made = make_certificate([FQDN, "203.0.113.7"], now=now)
    cert = x509.load_pem_x509_certificate(made.cert_pem.encode())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [FQDN]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("203.0.113.7")]
    assert made.hosts == [FQDN, "203.0.113.7"]
    assert cert.not_valid_before_utc <= now and cert.not_valid_after_utc == now + timedelta(days=90)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey) and cert.public_key().curve.name == "secp256r1"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ExtendedKeyUsageOID.SERVER_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    cert.verify_directly_issued_by(cert)  # self-signed
    assert load_pem_private_key(made.key_pem.encode(), None).public_key() == cert.public_key()
    assert made.serves([FQDN], now=now, margin=timedelta(days=7))
    assert not made.serves([FQDN, "203.0.113.8"], now=now, margin=timedelta(days=7))
    assert not made.serves([FQDN], now=now + timedelta(days=84), margin=timedelta(days=7))


def test_fingerprint_is_the_sha256_of_the_certificate_as_browsers_show_it(tmp_path):
    made = make_certificate([FQDN])
    der = ssl.PEM_cert_to_DER_cert(made.cert_pem)
    assert FINGERPRINT.match(made.fingerprint)
    assert made.fingerprint.replace(":", "").lower() == hashlib.sha256(der).hexdigest()
    (tmp_path / "cert.pem").write_text(made.cert_pem)
    openssl = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(tmp_path / "cert.pem")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert openssl.stdout.strip().endswith("=" + made.fingerprint)
    assert make_certificate([FQDN]).fingerprint != made.fingerprint


def test_private_key_is_in_no_repr():
    made = make_certificate([FQDN])
    key_body = "".join(made.key_pem.splitlines()[1:-1])
    for text in (repr(made), str(made)):
        assert "PRIVATE KEY" not in text and key_body[:40] not in text
    assert made.fingerprint in repr(made) and FQDN in repr(made)


@contextmanager
def https_server(cert: ServerCertificate, tmp_path: Path):
    """A real HTTPS server on 127.0.0.1 serving `cert`; every GET answers 200 "ok"."""

    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok " + self.headers.get("Host", "").encode())

        def log_message(self, *args):
            pass

    (tmp_path / "server.crt").write_text(cert.cert_pem)
    (tmp_path / "server.key").write_text(cert.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = serve(server)
    try:
        yield server.server_address[1], requests
    finally:
        stop(server)
        thread.join()


def test_pinned_client_trusts_the_pinned_certificate_and_nothing_else(tmp_path):
    pinned = make_certificate([FQDN, "127.0.0.1"])
    with https_server(pinned, tmp_path) as (port, _):
        status, body = https_get("127.0.0.1", port, "/", server_name=FQDN, cert_pem=pinned.cert_pem)
        assert (status, body) == (200, f"ok {FQDN}:{port}".encode())
        impostor = make_certificate([FQDN, "127.0.0.1"])  # same names, another key
        with pytest.raises(ssl.SSLCertVerificationError):
            https_get("127.0.0.1", port, "/", server_name=FQDN, cert_pem=impostor.cert_pem)
        with pytest.raises(ssl.SSLCertVerificationError, match="not valid for 'other.example'"):
            https_get("127.0.0.1", port, "/", server_name="other.example", cert_pem=pinned.cert_pem)


def test_deployment_certificate_is_kept_while_it_fits_the_machine(tmp_path):
    store = StateStore(tmp_path / "state")
    machine = Machine(host="203.0.113.7", port=22, user="azureuser", fqdn=FQDN)
    first = deployment_certificate(store, "pub", machine)
    assert first.hosts == [FQDN, "203.0.113.7"]
    assert (tmp_path / "state" / "pub" / "jupyter.key").stat().st_mode & 0o777 == 0o600
    assert deployment_certificate(store, "pub", machine) == first
    moved = Machine(host="203.0.113.8", port=22, user="azureuser", fqdn=FQDN)
    renewed = deployment_certificate(store, "pub", moved)
    assert renewed.fingerprint != first.fingerprint and "203.0.113.8" in renewed.hosts
    assert store.read_secret("pub", "jupyter.crt") == renewed.cert_pem


def test_readiness_from_here_stops_at_a_certificate_other_than_the_pinned_one(tmp_path):
    served = make_certificate([FQDN, "127.0.0.1"])
    with https_server(served, tmp_path) as (port, requests):
        machine = Machine(host="127.0.0.1", port=22, user="azureuser", fqdn=FQDN)
        public = PublicJupyter(machine, port, make_certificate([FQDN, "127.0.0.1"]))
        with pytest.raises(CertificateMismatch, match="other than the pinned one.*the token was not sent"):
            public.from_here()("/api/status", {"Authorization": "token sekrit"}, 10)
        assert requests == []
        assert PublicJupyter(machine, port, served).from_here()("/api/status", {}, 10)[0] == 200
    with pytest.raises(OSError, match="from here.*security group admits only --allow-ip"):
        public.from_here()("/api/status", {}, 10)


# -- settings and plan -------------------------------------------------------------------------


def settings(tmp_path, **flags):
    return load(flags, env={"AZURE_SUBSCRIPTION_ID": SUB}, cwd=tmp_path)


@pytest.mark.parametrize("source", [*OPEN_TO_ALL, "::/0", "198.51.100.7/0"])
def test_public_access_refuses_a_source_open_to_everyone(tmp_path, source):
    with pytest.raises(UsageError, match="would open Jupyter to the whole internet") as raised:
        settings(tmp_path, access="public", allow_ip=source)
    assert "\n" not in str(raised.value)
    assert settings(tmp_path, access="tunnel", allow_ip=source).allow_ip  # the tunnel keeps Jupyter private


def test_public_access_refuses_targets_without_a_security_group(tmp_path):
    with pytest.raises(UsageError, match="makes no sense with --target local"):
        settings(tmp_path, access="public", target="local")
    with pytest.raises(UsageError, match="needs --target azure"):
        settings(tmp_path, access="public", target="ssh://ana@gpu.example", host_key=keys.generate().public_openssh)


def test_jupyter_port_is_a_setting_and_the_only_port_the_nsg_opens_for_jupyter(tmp_path):
    env = {"AZURE_SUBSCRIPTION_ID": SUB, "PROVISION_JUPYTER_PORT": "9443"}
    chosen = load({"access": "public"}, env=env, cwd=tmp_path)
    assert chosen.jupyter_port == 9443 and settings(tmp_path).jupyter_port == 8888
    with pytest.raises(UsageError, match="jupyter-port must be between 1 and 65535"):
        settings(tmp_path, jupyter_port=70000)
    plan = make_plan(
        chosen,
        region="eastus",
        size=chosen.size,
        allow_ip="203.0.113.7/32",
        ssh_public_key=keys.generate().public_openssh,
        host_key=keys.generate(),
        owner=Owner("oid-ana", "ana@contoso.example"),
        now=datetime.now(UTC),
    )
    nsg = next(step.body for step in plan.steps() if step.kind == "nsg")
    rules = {r["name"]: r["properties"] for r in nsg["properties"]["securityRules"]}
    assert rules["allow-jupyter"]["destinationPortRange"] == "9443"
    assert {rule["sourceAddressPrefix"] for rule in rules.values()} == {"203.0.113.7/32"}


def test_up_refuses_public_access_open_to_everyone_before_any_request(azure_env, arm):
    result = provision("up", "--access", "public", "--allow-ip", "0.0.0.0/0", "--allow-cpu")
    assert result.exit_code == 2
    assert "would open Jupyter to the whole internet" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert arm.requests == []


# -- end to end --------------------------------------------------------------------------------


def https_status(port: int, fqdn: str, cert_pem: str, token: str | None = None) -> int:
    """GET /api/status from 127.0.0.1:port over TLS, trusting only `cert_pem`, checking `fqdn`."""
    context = ssl.create_default_context(cadata=cert_pem)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with context.wrap_socket(raw, server_hostname=fqdn) as tls:
            connection = http.client.HTTPConnection(fqdn, port, timeout=30)
            connection.sock = tls
            connection.request("GET", "/api/status", headers={"Authorization": f"token {token}"} if token else {})
            return connection.getresponse().status


def plain_http_answer(port: int) -> bytes:
    """What a plain-HTTP request to the port gets back (until the server closes or 5 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        try:
            while chunk := s.recv(4096):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return answer


def test_up_public_serves_tls_to_the_allowed_source_only_then_down(cloud, state_dir):
    port = free_port()
    env = {**cloud.env, "PROVISION_JUPYTER_PORT": str(port), "PYTHONPATH": str(REPO)}  # this tree, not main's
    argv = ("up", "--name", "pub", "--access", "public", "--detach", "--allow-cpu", "--skip-check")
    up = console(*argv, env=env, timeout=600)
    assert up.exit_code == 0, up.stderr
    record = StateStore(state_dir).require("pub")
    fqdn, fingerprint = record.machine["fqdn"], record.jupyter["tls_sha256"]
    url = re.search(
        rf"^https://{re.escape(fqdn)}:{port}/lab/tree/first_pytorch_classifier\.ipynb\?token=([\w-]+)$", up.stdout, re.M
    )
    assert url, up.stdout
    token = url.group(1)
    assert "http://" not in up.stdout, up.stdout
    assert f"fingerprint is {fingerprint}" in up.stdout, (fingerprint, up.stdout)
    assert record.settings["access"] == "public" and record.jupyter["port"] == port

    # The security group admits SSH and Jupyter from the allowed source alone.
    nsg = next(r.id for r in record.resources if r.kind == "nsg")
    rules = {r["name"]: r["properties"] for r in cloud.arm.resource(nsg)["properties"]["securityRules"]}
    assert rules["allow-jupyter"]["destinationPortRange"] == str(port)
    assert {rule["sourceAddressPrefix"] for rule in rules.values()} == {"127.0.0.1/32"}
    assert not any(rule["sourceAddressPrefix"] in OPEN_TO_ALL for rule in rules.values())

    # HTTPS with the pinned certificate as the only trust anchor: the token opens it, nothing else does.
    cert_pem = (state_dir / "pub" / "jupyter.crt").read_text()
    assert ServerCertificate(cert_pem, "").fingerprint == fingerprint
    assert fqdn in ServerCertificate(cert_pem, "").hosts
    assert https_status(port, fqdn, cert_pem, token) == 200
    assert https_status(port, fqdn, cert_pem) == 403
    assert https_status(port, fqdn, cert_pem, "wrong-token") == 403
    with pytest.raises(ssl.SSLCertVerificationError):
        https_status(port, fqdn, make_certificate([fqdn]).cert_pem, token)
    assert b"HTTP/" not in plain_http_answer(port)  # TLS only: no plain-HTTP Jupyter on the port

    # The key is 0600 in a 0700 directory, on the VM and here; no secret in argv or the log.
    tls_dir = home_of(cloud.user) / ".dsvm-kit" / "tls"
    assert (tls_dir.stat().st_mode & 0o777, (tls_dir / "jupyter.key").stat().st_mode & 0o777) == (0o700, 0o600)
    key_pem = (tls_dir / "jupyter.key").read_text()
    assert (state_dir / "pub" / "jupyter.key").read_text() == key_pem
    assert (state_dir / "pub" / "jupyter.key").stat().st_mode & 0o777 == 0o600
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout  # ww: untruncated
    key_body = "".join(key_pem.splitlines()[1:-1])
    assert token not in ps and key_body[:40] not in ps and "--ServerApp.certfile=" in ps
    log = (home_of(cloud.user) / ".dsvm-kit" / "jupyter.log").read_text()
    assert token not in log and key_body[:40] not in log
    assert token not in (state_dir / "pub" / "record.json").read_text() and token not in up.stderr

    # `status` shows the fingerprint; `tunnel` gives the public URL again.
    status = console("status", "pub", "--json", env=env)
    assert status.exit_code == 0, status.stderr
    facts = json.loads(status.stdout)
    assert (facts["access"], facts["tls_sha256"], facts["jupyter_port"]) == ("public", fingerprint, port)
    again_url = console("tunnel", "pub", env=env)
    assert again_url.exit_code == 0 and url.group(0) in again_url.stdout

    # Re-running `up` reuses the machine and the running server: same token, same certificate.
    writes = [r for r in cloud.arm.requests if r.method in ("PUT", "DELETE", "POST")]
    again = console(*argv, env=env, timeout=300)
    assert again.exit_code == 0, again.stderr
    assert url.group(0) in again.stdout and "reusing the running server" in again.stderr
    reused = StateStore(state_dir).require("pub")
    assert (reused.jupyter["pid"], reused.jupyter["tls_sha256"]) == (record.jupyter["pid"], fingerprint)
    assert [r for r in cloud.arm.requests if r.method in ("PUT", "DELETE", "POST")] == writes

    # Asking for the tunnel on a public deployment is refused, not silently switched.
    tunnel_up = console("up", "--name", "pub", "--detach", "--allow-cpu", "--skip-check", env=env)
    assert tunnel_up.exit_code == 1 and "was made with access public on port" in tunnel_up.stderr

    down = console("down", "pub", "--yes", env=env)
    assert down.exit_code == 0, down.stderr
    assert cloud.arm.inventory() == [] and cloud.vms.running() == []
    assert not (state_dir / "pub").exists()
