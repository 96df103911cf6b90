"""`--access public`: JupyterLab over TLS on the VM's public address, with the kit's pinned certificate.

Readiness is checked from here, straight to https://<public IP>:<port>, trusting only the
pinned certificate: the same path the browser takes, so a printed URL is one proven to
work (security group rule, address, TLS, token). Whether a running server can be reused
is asked through the SSH connection instead: that is a fact about the server, not about
this laptop's network, and a changed address here must not restart a working server.
"""

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bootstrap import jupyter
from bootstrap.jupyter import HTTPGet, JupyterServer, TLSFiles
from bootstrap.remote import BootstrapError, Remote
from provision import tls, tunnel
from provision.output import Output
from provision.state import Record, StateStore
from provision.targets import Machine

CERT_FILE = "jupyter.crt"
KEY_FILE = "jupyter.key"
RENEW_MARGIN = timedelta(days=7)  # a certificate with less validity left is replaced


def access_label(access: str, port: int | None) -> str:
    """How Jupyter is reached, in words: "tunnel", or "public on port 8888"."""
    return f"public on port {port}" if access == "public" else access


class CertificateMismatch(BootstrapError):
    """The server presented a certificate other than the pinned one; no request was sent."""


def deployment_certificate(store: StateStore, name: str, machine: Machine) -> tls.ServerCertificate:
    """The deployment's certificate (0600 files here): the stored one while it names the
    machine and is not near its end, else a new one."""
    hosts = [host for host in (machine.fqdn, machine.host) if host]
    cert_pem, key_pem = store.read_secret(name, CERT_FILE), store.read_secret(name, KEY_FILE)
    if cert_pem and key_pem:
        stored = tls.ServerCertificate(cert_pem, key_pem)
        if stored.serves(hosts, now=datetime.now(UTC), margin=RENEW_MARGIN):
            return stored
    made = tls.make_certificate(hosts)
    store.write_secret(name, KEY_FILE, made.key_pem)
    store.write_secret(name, CERT_FILE, made.cert_pem)
    return made


@dataclass(frozen=True)
class PublicJupyter:
    """Where and how Jupyter is served publicly: the machine, the port and the certificate."""

    machine: Machine
    port: int
    cert: tls.ServerCertificate

    @property
    def server_name(self) -> str:
        return self.machine.fqdn or self.machine.host

    def install(self, remote: Remote) -> TLSFiles:
        return jupyter.install_tls(remote, self.cert.cert_pem, self.cert.key_pem)

    def _https_get(self, address: str, port: int, path: str, headers: dict[str, str], timeout: float):
        """GET over TLS trusting only the pinned certificate, for the machine's name."""
        return tls.https_get(
            address,
            port,
            path,
            server_name=self.server_name,
            cert_pem=self.cert.cert_pem,
            headers=headers,
            timeout=timeout,
        )

    def through_ssh(self, remote: Remote, server: JupyterServer) -> HTTPGet:
        """HTTPS to the server's port on the machine's loopback, over the SSH connection."""

        def get(path: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
            with remote.forward(server.port) as forward:
                return self._https_get("127.0.0.1", forward.local_port, path, headers, timeout)

        return get

    def from_here(self) -> HTTPGet:
        """HTTPS from this machine to the VM's public address, as the browser will connect."""
        where = f"https://{self.machine.host}:{self.port}"

        def get(path: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
            try:
                return self._https_get(self.machine.host, self.port, path, headers, timeout)
            except ssl.SSLCertVerificationError as e:
                raise CertificateMismatch(
                    f"{where} presented a certificate other than the pinned one ({e.verify_message or e}): "
                    "it may not be our server; the token was not sent"
                ) from None
            except OSError as e:
                raise OSError(f"{where} from here: {e} (the security group admits only --allow-ip)") from None

        return get


def show(record: Record, token: str, store: StateStore, out: Output) -> None:
    """The public URL, and how to tell the self-signed certificate is the kit's own."""
    machine = Machine.from_dict(record.machine or {})
    facts = record.jupyter or {}
    out.result(tunnel.lab_url(facts["port"], token, scheme="https", host=machine.fqdn or machine.host))
    out.result(
        f"The certificate is the kit's own (self-signed), so the browser warns: accept it only if its SHA-256 "
        f"fingerprint is {facts['tls_sha256']} (or trust {store.path(record.name, CERT_FILE)})"
    )
