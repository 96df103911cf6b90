"""A fake Azure Instance Metadata Service: managed-identity tokens for the fake VMs, over plain HTTP on
127.0.0.1 (the real one is http://169.254.169.254, reachable only from the VM).

Azure's IMDS knows which VM asks from where the request comes. The fake VMs all live on this machine,
each as its own Unix user, so this one tells them apart by the user owning the client's socket
(/proc/net/tcp), and answers for the running VM whose admin user that is.

`GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/` with the
header `Metadata: true` (learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-
token): 200 {access_token, client_id, expires_in, expires_on, not_before, resource, token_type}; 400 without the
header or for a VM with no managed identity. Which identity: the one whose client_id the request names; else the
VM's system-assigned one; else its only user-assigned one ("client_id ... Required, if your VM has multiple
user-assigned managed identities", the same page); with several and none named, 400.
"""

from __future__ import annotations

import json
import pwd
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from ..serving import serve, stop
from .tokens import access_token

TOKEN_PATH = "/metadata/identity/oauth2/token"


@dataclass(frozen=True)
class Identity:
    resource_id: str  # the user-assigned identity's id, or the VM's for its system-assigned identity
    principal: str
    client_id: str | None  # None: the system-assigned identity


# The managed identities of each running VM whose admin user this is.
IdentitiesOf = Callable[[str], list[list[Identity]]]


def socket_owner(client_port: int, server_port: int) -> str | None:
    """The Unix user owning the local TCP socket 127.0.0.1:client_port connected to server_port."""
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, uid = fields[1], fields[2], int(fields[7])
            if int(local.split(":")[1], 16) == client_port and int(remote.split(":")[1], 16) == server_port:
                try:
                    return pwd.getpwuid(uid).pw_name
                except KeyError:
                    return None
    return None


class FakeIMDS:
    """The token endpoint; `statuses` lists what it answered, in order."""

    def __init__(self, identities_of: IdentitiesOf):
        self.identities_of = identities_of
        self.statuses: list[int] = []
        imds = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = imds.answer(self.path, self.headers.get("Metadata"), self.client_address[1])
                imds.statuses.append(status)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = serve(self._server)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, raw_path: str, metadata: str | None, client_port: int) -> tuple[int, dict]:
        split = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        if split.path != TOKEN_PATH:
            return 404, {"error": "Not found"}
        if (metadata or "").lower() != "true":
            return 400, {"error": "invalid_request", "error_description": "Required metadata header not specified"}
        if not query.get("api-version") or not query.get("resource"):
            return 400, {"error": "invalid_request", "error_description": "Required query variable missing"}
        user = socket_owner(client_port, self._server.server_address[1])
        vms = [found for found in (self.identities_of(user) if user else []) if found]
        identity = self._chosen(vms[0], query.get("client_id")) if vms else None
        if identity is None:
            return 400, {"error": "invalid_request", "error_description": "Identity not found"}
        now = int(time.time())
        # Claims of a managed identity's token: oid the principal, xms_mirid the resource it belongs to.
        token = access_token(identity.principal, xms_mirid=identity.resource_id, idtyp="app")
        return 200, {
            "access_token": token,
            "client_id": identity.client_id or identity.principal,
            "expires_in": "86399",
            "expires_on": str(now + 86399),
            "ext_expires_in": "86399",
            "not_before": str(now),
            "resource": query["resource"],
            "token_type": "Bearer",
        }

    @staticmethod
    def _chosen(identities: list[Identity], client_id: str | None) -> Identity | None:
        if client_id:
            return next((i for i in identities if i.client_id == client_id), None)
        system = [i for i in identities if i.client_id is None]
        return system[0] if system else identities[0] if len(identities) == 1 else None

    def stop(self) -> None:
        stop(self._server)
