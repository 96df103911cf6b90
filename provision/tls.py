"""The certificate Jupyter serves with `--access public`, and an HTTPS client that trusts only it.

The kit makes a self-signed ECDSA P-256 certificate (browsers accept P-256; most refuse
Ed25519) naming the VM's FQDN and public IP, valid for 90 days, and pins its SHA-256
fingerprint: a client here trusts that one certificate and nothing else.
"""

import hashlib
import http.client
import ipaddress
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = timedelta(days=90)
BACKDATE = timedelta(minutes=5)  # tolerate a client clock a little behind the VM's
SUBJECT = "dsvm-kit Jupyter"  # the names are in the SANs: an FQDN may exceed CN's 64 characters


@dataclass(frozen=True)
class ServerCertificate:
    """A PEM certificate and its PEM (PKCS#8) private key; the key is a secret, kept out of repr."""

    cert_pem: str
    key_pem: str

    def __repr__(self) -> str:
        return f"ServerCertificate(sha256={self.fingerprint}, hosts={self.hosts})"

    @property
    def _cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem.encode())

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER certificate as browsers show it: "AB:CD:...", 32 pairs."""
        return pem_fingerprint(self.cert_pem)

    @property
    def hosts(self) -> list[str]:
        """The DNS names and IP addresses the certificate is valid for."""
        names = self._cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return [*names.get_values_for_type(x509.DNSName), *map(str, names.get_values_for_type(x509.IPAddress))]

    @property
    def not_after(self) -> datetime:
        return self._cert.not_valid_after_utc

    def serves(self, hosts: Sequence[str], *, now: datetime, margin: timedelta) -> bool:
        """True when it names every host and stays valid for at least `margin` after `now`."""
        return set(hosts) <= set(self.hosts) and self.not_after - now >= margin


def fingerprint_of(der: bytes) -> str:
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())


def pem_fingerprint(cert_pem: str) -> str:
    return fingerprint_of(ssl.PEM_cert_to_DER_cert(cert_pem))


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_certificate(hosts: Sequence[str], *, now: datetime | None = None) -> ServerCertificate:
    """A fresh key and a self-signed server certificate for `hosts` (DNS names or IPs), 90 days."""
    if not hosts:
        raise ValueError("a server certificate needs at least one host name or address")
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SUBJECT)])
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([_san(host) for host in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return ServerCertificate(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem)


def pinned_context(cert_pem: str) -> ssl.SSLContext:
    """A client context whose only trust anchor is this certificate (host names still checked)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=cert_pem)
    return context


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to `address`, checking the certificate is the pinned one and names `server_name`.

    The address is where to connect (an IP, or a local end of a tunnel); the server name is
    what the URL says. A certificate other than the pinned one fails the handshake, before
    any request (or token) is sent.
    """

    def __init__(self, address: str, port: int, *, server_name: str, cert_pem: str, timeout: float):
        super().__init__(address, port, timeout=timeout, context=pinned_context(cert_pem))
        self.server_name = server_name
        self.fingerprint = pem_fingerprint(cert_pem)

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            self.sock = self._context.wrap_socket(sock, server_hostname=self.server_name)
        except BaseException:
            sock.close()
            raise
        presented = fingerprint_of(self.sock.getpeercert(binary_form=True))
        if presented != self.fingerprint:
            self.sock.close()
            raise ssl.SSLCertVerificationError(f"the server presented certificate {presented}, not the pinned one")


def https_get(
    address: str,
    port: int,
    path: str,
    *,
    server_name: str,
    cert_pem: str,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, bytes]:
    """GET https://server_name:port/path, connecting to address; (status, body)."""
    connection = PinnedHTTPSConnection(address, port, server_name=server_name, cert_pem=cert_pem, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": f"{server_name}:{port}", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
