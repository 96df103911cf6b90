"""HTTP in/out for the fake ARM: method + path -> model call -> status, headers, JSON.

Paths match case-insensitively (ARM treats `resourceGroups` and `resourcegroups` alike); any
api-version is accepted. A request the fake does not serve gets 501 NotImplementedInFakeARM,
never a misleading 404.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import catalog, pacing
from .authorization import AuthorizationModel
from .compute import ComputeModel
from .errors import (
    ArmError,
    AuthenticationFailed,
    InvalidAuthenticationToken,
    InvalidRequestContent,
    NotImplementedInFake,
    SubscriptionNotFound,
)
from .faults import Fault, FaultRegistry
from .marketplace import MarketplaceModel
from .models import ArmState, DeleteResult, Operation, PutResult
from .network import NetworkModel
from .tokens import claims_of

if TYPE_CHECKING:
    from .quota import QuotaModel

PROVIDER_AT = "/providers/microsoft.authorization"
_BEARER = re.compile(r"^Bearer\s+(\S+)$")
_FILTER_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: dict
    body: Any
    status: int | None  # None: the connection was dropped without a response
    is_poll: bool
    at: float = 0.0  # time.monotonic() when it was answered
    principal: str = ""  # who sent it: the bearer token's oid (a VM's identity for its own deallocate)
    received: float = 0.0  # time.monotonic() when it arrived
    operation: str | None = None  # the long-running operation it started or polled
    retry_after: float | None = None  # the Retry-After its answer sent (seconds)


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    operation: Operation | None = None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    base_url: str
    failure: ArmError | None = None
    principal: str = ""  # the token's oid ("" for a token that is no JWT)

    def param(self, name: str) -> str | None:
        for key, value in self.query.items():
            if key.lower() == name.lower():
                return value
        return None

    @property
    def api_version(self) -> str:
        return self.param("api-version") or ""


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable[..., Reply]
    lro: bool = False  # may start a long-running operation (so async faults apply)
    poll: bool = False  # an operation-status URL


def _compile(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts))
    return re.compile(regex, re.IGNORECASE)


def _error_reply(error: ArmError) -> Reply:
    return Reply(error.status, error.envelope())


def parse_filter(text: str | None, allowed: set[str]) -> dict[str, str]:
    """`tagName eq 'k' and tagValue eq 'v'` -> {"tagname": "k", "tagvalue": "v"}."""
    if not text:
        return {}
    clauses = {}
    for clause in re.split(r"\s+and\s+", text, flags=re.IGNORECASE):
        match = _FILTER_CLAUSE.match(clause)
        if match is None or match.group(1).lower() not in allowed:
            raise NotImplementedInFake(
                f"The fake ARM does not support the filter {text!r} "
                f"(supported: {', '.join(sorted(allowed))} with eq, joined by 'and')."
            )
        clauses[match.group(1).lower()] = match.group(2).replace("''", "'")
    return clauses


def tags_match(clauses: dict[str, str], tags: dict) -> bool:
    if "tagname" not in clauses:
        return "tagvalue" not in clauses
    names = [name for name in tags if name.lower() == clauses["tagname"].lower()]
    return bool(names) and ("tagvalue" not in clauses or tags[names[0]] == clauses["tagvalue"])


class Routes:
    def __init__(
        self,
        state: ArmState,
        network: NetworkModel,
        compute: ComputeModel,
        faults: FaultRegistry,
        *,
        marketplace: MarketplaceModel,
        authorization: AuthorizationModel,
        quota: QuotaModel,
        tenant_id: str,
        token: str | None,
    ):
        self.state = state
        self.network = network
        self.compute = compute
        self.faults = faults
        self.marketplace = marketplace
        self.authorization = authorization
        self.quota = quota
        self.tenant_id = tenant_id
        self.token = token
        self.partition = str(uuid.uuid4())  # Compute's operation URLs carry one (`p=`, recording B)
        self._log: list[LoggedRequest] = []
        self._log_lock = threading.Lock()
        self._routes: list[Route] = []
        self._add_routes()

    # -- request log ---------------------------------------------------------------------------

    def log(self) -> list[LoggedRequest]:
        with self._log_lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    # -- the route table -----------------------------------------------------------------------

    def _add(self, method: str, template: str, handler: Callable[..., Reply], **flags: bool) -> None:
        self._routes.append(Route(method, _compile(template), handler, **flags))

    def _add_at_scope(self, method: str, tail: str, handler: Callable[..., Reply]) -> None:
        """A Microsoft.Authorization route at any scope: `{scope}/providers/microsoft.authorization/{tail}`."""
        pattern = re.compile(r"(?P<scope>/subscriptions/[^/]+(?:/.+?)?)" + _compile(PROVIDER_AT + tail).pattern, re.I)
        self._routes.append(Route(method, pattern, handler))

    def _add_routes(self) -> None:
        sub = "/subscriptions/{sub}"
        group = sub + "/resourcegroups/{rg}"
        compute_at = sub + "/providers/microsoft.compute/locations/{loc}"
        image = compute_at + "/publishers/{publisher}/artifacttypes/vmimage/offers/{offer}/skus/{sku}/versions"
        vm = group + "/providers/microsoft.compute/virtualmachines/{name}"
        subnets = group + "/providers/microsoft.network/virtualnetworks/{vnet}/subnets"
        typed = group + "/providers/{ns}/{type}"
        terms = (
            sub + "/providers/microsoft.marketplaceordering/offertypes/virtualmachine"
            "/publishers/{publisher}/offers/{offer}/plans/{plan}/agreements/current"
        )
        for method, tail, handler in (
            ("GET", "/permissions", self.get_permissions),
            ("GET", "/roledefinitions", self.list_role_definitions),
            ("PUT", "/roledefinitions/{guid}", self.put_role_definition),
            ("GET", "/roledefinitions/{guid}", self.get_role_definition),
            ("DELETE", "/roledefinitions/{guid}", self.delete_role_definition),
            ("GET", "/roleassignments", self.list_role_assignments),
            ("PUT", "/roleassignments/{guid}", self.put_role_assignment),
            ("GET", "/roleassignments/{guid}", self.get_role_assignment),
            ("DELETE", "/roleassignments/{guid}", self.delete_role_assignment),
        ):
            self._add_at_scope(method, tail, handler)
        add = self._add
        add("GET", "/subscriptions", self.list_subscriptions)
        add("GET", sub, self.get_subscription)
        add("GET", sub + "/locations", self.list_locations)
        add("GET", sub + "/resourcegroups", self.list_groups)
        add("PUT", group, self.put_group)
        add("GET", group, self.get_group)
        add("HEAD", group, self.head_group)
        add("PATCH", group, self.patch_group)
        add("DELETE", group, self.delete_group, lro=True)
        add("GET", group + "/resources", self.list_group_resources)
        add("GET", sub + "/resources", self.list_subscription_resources)
        add("GET", sub + "/operationresults/{op}", self.poll_group_operation, poll=True)
        add("GET", sub + "/providers/{ns}/locations/{loc}/operations/{op}", self.poll_status, poll=True)
        add("GET", sub + "/providers/{ns}/locations/{loc}/operationresults/{op}", self.poll_result, poll=True)
        add("GET", sub + "/providers/microsoft.compute/skus", self.list_skus)
        add("GET", compute_at + "/usages", self.list_usages)
        for method, tail, handler in self.quota.routes():  # Microsoft.Quota at a compute location (quota.py)
            add(method, compute_at + "/providers/microsoft.quota" + tail, handler)
        add("GET", image, self.list_image_versions)
        add("GET", image + "/{version}", self.get_image)
        add("GET", terms, self.get_terms)
        add("PUT", terms, self.put_terms)
        add("GET", vm, self.get_vm)
        add("GET", vm + "/instanceview", self.get_instance_view)
        add("GET", vm + "/vmsizes", self.list_vm_sizes)
        add("POST", vm + "/{action}", self.vm_action, lro=True)
        add("GET", subnets, self.list_subnets)
        add("PUT", subnets + "/{subnet}", self.put_subnet, lro=True)
        add("GET", subnets + "/{subnet}", self.get_subnet)
        add("DELETE", subnets + "/{subnet}", self.delete_subnet, lro=True)
        add("GET", sub + "/providers/{ns}/{type}", self.list_kind_in_subscription)
        add("GET", typed, self.list_kind_in_group)
        add("PUT", typed + "/{name}", self.put_resource, lro=True)
        add("GET", typed + "/{name}", self.get_resource)
        add("DELETE", typed + "/{name}", self.delete_resource, lro=True)

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for route in self._routes:
            if route.method == method:
                match = route.pattern.fullmatch(path)
                if match:
                    return route, match.groupdict()
        return None, {}

    # -- dispatch ------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers, raw_body: bytes) -> Reply:
        received = time.monotonic()
        split = urlsplit(raw_path)
        path = unquote(split.path).rstrip("/") or "/"
        query = {key: values[-1] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
        body, principal = None, ""
        route, params = self._match(method, path)
        try:
            principal = self._authenticate(headers.get("Authorization"))
            if route is not None and route.handler != self.get_permissions:  # anyone may ask what they may do
                self.authorization.require(principal, method, path)
            body = self._parse_body(raw_body)
            fault = self.faults.take(method, path, asynchronous=False, polled_kind=self._polled_kind(route, params))
            if fault is not None:
                reply = self._fault_reply(fault)
            elif route is None:
                raise NotImplementedInFake(f"The fake ARM does not serve {method} {path}.")
            else:
                self.state.settle()
                request = Request(method, path, query, body, f"https://{headers.get('Host')}", principal=principal)
                reply = self._call(route, params, request)
        except ArmError as error:
            reply = _error_reply(error)
        reply.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
        retry_after = pacing.seconds_asked(reply.headers)
        with self._log_lock:
            self._log.append(
                LoggedRequest(
                    method,
                    path,
                    query,
                    body,
                    None if reply.drop else reply.status,
                    bool(route and route.poll),
                    time.monotonic(),
                    principal,
                    received,
                    reply.operation.id if reply.operation else None,
                    retry_after,
                )
            )
        return reply

    def _polled_kind(self, route: Route | None, params: dict[str, str]) -> str | None:
        """The kind of the operation a status poll asks about (None for other requests)."""
        if route is None or not route.poll:
            return None
        try:
            return self.state.operation(params["op"]).kind
        except ArmError:
            return None

    def _authenticate(self, authorization: str | None) -> str:
        """The principal (the bearer token's oid) after checking the header as ARM does."""
        if not authorization:
            raise AuthenticationFailed("Authentication failed. The 'Authorization' header is missing.")
        match = _BEARER.match(authorization.strip())
        if match is None:
            raise AuthenticationFailed(
                "Authentication failed. The 'Authorization' header is provided in an invalid format."
            )
        if self.token is not None and match.group(1) != self.token:
            raise InvalidAuthenticationToken("The access token is invalid.")
        return str(claims_of(match.group(1)).get("oid", ""))

    @staticmethod
    def _parse_body(raw_body: bytes) -> Any:
        if not raw_body:
            return None
        try:
            return json.loads(raw_body)
        except ValueError:
            raise InvalidRequestContent("The request content was invalid and could not be deserialized.") from None

    def _fault_reply(self, fault: Fault) -> Reply:
        if fault.drop_connection:
            return Reply(0, drop=True)
        return Reply(fault.status, fault.error().envelope(), fault.headers(self.state.time_scale))

    def _call(self, route: Route, params: dict[str, str], request: Request) -> Reply:
        subscription = params.pop("sub", None)
        if subscription is not None and subscription.lower() != self.state.subscription_id.lower():
            raise SubscriptionNotFound(subscription)
        if not request.api_version:
            raise ArmError(
                "The api-version query parameter (?api-version=) is required for all requests.",
                code="MissingApiVersionParameter",
            )
        fault = self.faults.take(request.method, request.path, asynchronous=True) if route.lro else None
        request.failure = fault.error() if fault else None
        try:
            reply = route.handler(request, **params)
        except BaseException:
            if fault is not None:
                self.faults.give_back(fault)
            raise
        if fault is not None and reply.operation is None:
            self.faults.give_back(fault)
        return reply

    # -- LRO headers ---------------------------------------------------------------------------

    def _status_url(self, request: Request, operation: Operation, *, monitor: bool = False) -> str:
        """Azure-AsyncOperation's URL as Azure shapes it (recording B): .../providers/{namespace}/locations/{loc}/
        operations/{id}, Compute's with a partition `p=` first; Compute's Location is the same with monitor=true."""
        query = f"api-version={request.api_version}"
        if operation.namespace == "Microsoft.Compute":
            query = f"p={self.partition}&" + ("monitor=true&" if monitor else "") + query
        return (
            f"{request.base_url}/subscriptions/{self.state.subscription_id}/providers/{operation.namespace}"
            f"/locations/{operation.location}/operations/{operation.id}?{query}"
        )

    def _result_url(self, request: Request, operation: Operation) -> str:
        """Location's URL: a group's operationresults (recording D), Compute's monitor URL (recording B), Network's
        operationResults (NetworkSecurityGroupDelete.json)."""
        base = f"{request.base_url}/subscriptions/{self.state.subscription_id}"
        if operation.namespace == "Microsoft.Resources":
            return f"{base}/operationresults/{operation.id}?api-version={request.api_version}"
        if operation.namespace == "Microsoft.Compute":
            return self._status_url(request, operation, monitor=True)
        return (
            f"{base}/providers/{operation.namespace}/locations/{operation.location}/operationResults"
            f"/{operation.id}?api-version={request.api_version}"
        )

    def _started(self, reply: Reply, operation: Operation) -> Reply:
        """The response that starts an operation, with the Retry-After Azure sends on it (pacing.py)."""
        seconds = self.state.retry_after(operation, first=True)
        if seconds:
            reply.headers.update(pacing.headers(seconds, self.state.time_scale))
        return reply

    def _put_reply(self, request: Request, result: PutResult) -> Reply:
        headers = dict(result.headers)
        if result.operation is None:
            return Reply(201 if result.created else 200, result.body, headers)
        headers["Azure-AsyncOperation"] = self._status_url(request, result.operation)
        reply = Reply(201 if result.created else 200, result.body, headers, operation=result.operation)
        return self._started(reply, result.operation)

    def _accepted(self, request: Request, operation: Operation) -> Reply:
        """202 with Location; but for a group's delete (recording D), with Azure-AsyncOperation too (recordings B, I)."""
        headers = {"Location": self._result_url(request, operation)}
        if operation.namespace != "Microsoft.Resources":
            headers["Azure-AsyncOperation"] = self._status_url(request, operation)
        return self._started(Reply(202, None, headers, operation=operation), operation)

    def _delete_reply(self, request: Request, result: DeleteResult) -> Reply:
        if result.operation is not None:
            return self._accepted(request, result.operation)
        return Reply(200 if result.existed else 204)

    # -- subscriptions -------------------------------------------------------------------------

    def _subscription_body(self) -> dict:
        subscription_id = self.state.subscription_id
        return {
            "id": f"/subscriptions/{subscription_id}",
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": subscription_id,
            "tenantId": self.tenant_id,
            "displayName": "Fake ARM subscription",
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
            "tags": {},
        }

    def list_subscriptions(self, request: Request) -> Reply:
        return Reply(200, {"value": [self._subscription_body()], "count": {"type": "Total", "value": 1}})

    def get_subscription(self, request: Request) -> Reply:
        return Reply(200, self._subscription_body())

    def list_locations(self, request: Request) -> Reply:
        subscription_id = self.state.subscription_id
        return Reply(200, {"value": [catalog.location_body(r, subscription_id) for r in catalog.REGIONS]})

    # -- resource groups -----------------------------------------------------------------------

    def list_groups(self, request: Request) -> Reply:
        clauses = parse_filter(request.param("$filter"), {"tagname", "tagvalue"})
        return Reply(200, {"value": self.state.list_groups(lambda tags: tags_match(clauses, tags))})

    def put_group(self, request: Request, rg: str) -> Reply:
        result = self.state.put_group(rg, request.body or {})
        return Reply(201 if result.created else 200, result.body)

    def get_group(self, request: Request, rg: str) -> Reply:
        return Reply(200, self.state.get_group(rg))

    def head_group(self, request: Request, rg: str) -> Reply:
        try:
            self.state.require_group(rg)
        except ArmError:
            return Reply(404)
        return Reply(204)

    def patch_group(self, request: Request, rg: str) -> Reply:
        return Reply(200, self.state.patch_group(rg, request.body or {}))

    def delete_group(self, request: Request, rg: str) -> Reply:
        return self._accepted(request, self.state.delete_group(rg, request.failure))

    def _resource_summaries(self, entries, clauses: dict[str, str]) -> list[dict]:
        summaries = []
        for entry in entries:
            body = entry.body
            if not tags_match(clauses, body.get("tags") or {}):
                continue
            if any(
                key in clauses and clauses[key].lower() != str(body.get(field_name, "")).lower()
                for key, field_name in (("resourcetype", "type"), ("location", "location"), ("name", "name"))
            ):
                continue
            summary = {
                key: body[key]
                for key in ("id", "name", "type", "location", "tags", "sku", "zones", "managedBy")
                if key in body
            }
            summaries.append(summary)
        return sorted(summaries, key=lambda s: s["id"].lower())

    def list_group_resources(self, request: Request, rg: str) -> Reply:
        clauses = parse_filter(request.param("$filter"), {"tagname", "tagvalue", "resourcetype", "location", "name"})
        group = self.state.require_group(rg)
        with self.state.lock:
            return Reply(200, {"value": self._resource_summaries(self.state.entries_in_group(group.name), clauses)})

    def list_subscription_resources(self, request: Request) -> Reply:
        clauses = parse_filter(request.param("$filter"), {"tagname", "tagvalue", "resourcetype", "location", "name"})
        with self.state.lock:
            return Reply(200, {"value": self._resource_summaries(list(self.state.entries.values()), clauses)})

    # -- operation status ----------------------------------------------------------------------

    def poll_status(self, request: Request, ns: str, loc: str, op: str) -> Reply:
        operation = self.state.operation(op)
        if (request.param("monitor") or "").lower() == "true":
            return self._paced(operation, self._result_reply(operation))
        return self._paced(operation, Reply(200, operation.status_body()))

    def poll_result(self, request: Request, ns: str, loc: str, op: str) -> Reply:
        operation = self.state.operation(op)
        return self._paced(operation, self._result_reply(operation))

    def poll_group_operation(self, request: Request, op: str) -> Reply:
        """202 with its own URL as Location while the group's delete runs, then 200 (recording D)."""
        operation = self.state.operation(op)
        reply = self._result_reply(operation)
        if reply.status == 202:
            reply.headers["Location"] = self._result_url(request, operation)
        return self._paced(operation, reply)

    def _paced(self, operation: Operation, reply: Reply) -> Reply:
        """While the operation runs, the Retry-After Azure sends on its polls (pacing.py; FakeARM.pace overrides):
        "the number of seconds to wait before checking the status of the asynchronous operation"
        (https://learn.microsoft.com/azure/azure-resource-manager/management/async-operations)."""
        reply.operation = operation
        if operation.status == "InProgress":
            seconds = self.state.retry_after(operation, first=False)
            if seconds:
                reply.headers.update(pacing.headers(seconds, self.state.time_scale))
        return reply

    @staticmethod
    def _result_reply(operation: Operation) -> Reply:
        """Location-header semantics: 202 while running, 200 when done, the error when it failed."""
        if operation.status == "InProgress":
            return Reply(202)
        if operation.status == "Succeeded":
            return Reply(200)
        error = operation.error
        return Reply(error.status if error.status >= 400 else 400, error.envelope())

    # -- compute catalog -----------------------------------------------------------------------

    def list_skus(self, request: Request) -> Reply:
        clauses = parse_filter(request.param("$filter"), {"location"})
        return Reply(200, {"value": self.compute.list_skus(clauses.get("location")), "nextLink": None})

    def list_usages(self, request: Request, loc: str) -> Reply:
        return Reply(200, {"value": self.compute.list_usages(loc)})

    def list_image_versions(self, request: Request, loc: str, publisher: str, offer: str, sku: str) -> Reply:
        top = request.param("$top")
        return Reply(
            200,
            self.compute.list_image_versions(
                loc, publisher, offer, sku, orderby=request.param("$orderby"), top=int(top) if top else None
            ),
        )

    def get_image(self, request: Request, loc: str, publisher: str, offer: str, sku: str, version: str) -> Reply:
        return Reply(200, self.compute.get_image(loc, publisher, offer, sku, version))

    # -- marketplace terms ---------------------------------------------------------------------

    def get_terms(self, request: Request, publisher: str, offer: str, plan: str) -> Reply:
        return Reply(200, self.marketplace.get_terms(publisher, offer, plan))

    def put_terms(self, request: Request, publisher: str, offer: str, plan: str) -> Reply:
        return Reply(200, self.marketplace.put_terms(publisher, offer, plan, request.body or {}))

    # -- virtual machines ----------------------------------------------------------------------

    def get_vm(self, request: Request, rg: str, name: str) -> Reply:
        return Reply(200, self.compute.get_vm(rg, name, request.param("$expand")))

    def get_instance_view(self, request: Request, rg: str, name: str) -> Reply:
        return Reply(200, self.compute.get_instance_view(rg, name))

    def list_vm_sizes(self, request: Request, rg: str, name: str) -> Reply:
        return Reply(200, {"value": self.compute.available_sizes(rg, name)})

    def vm_action(self, request: Request, rg: str, name: str, action: str) -> Reply:
        """202, empty, both Azure-AsyncOperation and Location (recordings A, B, C); should the action fail, its
        status poll answers 200 `{"status": "Failed", "error": ...}`."""
        return self._accepted(request, self.compute.act(rg, name, action, request.failure))

    # -- subnets -------------------------------------------------------------------------------

    def list_subnets(self, request: Request, rg: str, vnet: str) -> Reply:
        return Reply(200, {"value": self.network.list_subnets(rg, vnet)})

    def put_subnet(self, request: Request, rg: str, vnet: str, subnet: str) -> Reply:
        return self._put_reply(request, self.network.put_subnet(rg, vnet, subnet, request.body or {}, request.failure))

    def get_subnet(self, request: Request, rg: str, vnet: str, subnet: str) -> Reply:
        return Reply(200, self.network.get_subnet(rg, vnet, subnet))

    def delete_subnet(self, request: Request, rg: str, vnet: str, subnet: str) -> Reply:
        return self._delete_reply(request, self.network.delete_subnet(rg, vnet, subnet, request.failure))

    # -- any registered resource type ----------------------------------------------------------

    def _spec(self, ns: str, type_name: str):
        spec = self.state.kind_spec(ns, type_name)
        if spec is None:
            raise NotImplementedInFake(f"The fake ARM does not serve resource type '{ns}/{type_name}'.")
        return spec

    def list_kind_in_subscription(self, request: Request, ns: str, type: str) -> Reply:
        spec = self._spec(ns, type)
        with self.state.lock:
            return Reply(200, {"value": [spec.view(entry) for entry in self.state.entries_of(spec.kind)]})

    def list_kind_in_group(self, request: Request, rg: str, ns: str, type: str) -> Reply:
        spec = self._spec(ns, type)
        group = self.state.require_group(rg)
        with self.state.lock:
            return Reply(200, {"value": [spec.view(entry) for entry in self.state.entries_of(spec.kind, group.name)]})

    def put_resource(self, request: Request, rg: str, ns: str, type: str, name: str) -> Reply:
        spec = self._spec(ns, type)
        if spec.put is None:
            raise NotImplementedInFake(f"The fake ARM does not create '{spec.kind}' directly.")
        return self._put_reply(request, spec.put(rg, name, request.body or {}, request.failure))

    def get_resource(self, request: Request, rg: str, ns: str, type: str, name: str) -> Reply:
        spec = self._spec(ns, type)
        entry = self.state.require(rg, spec.kind, name)
        return Reply(200, self.state.view(entry))

    def delete_resource(self, request: Request, rg: str, ns: str, type: str, name: str) -> Reply:
        spec = self._spec(ns, type)
        if spec.delete is None:
            raise NotImplementedInFake(f"The fake ARM does not delete '{spec.kind}'.")
        return self._delete_reply(request, spec.delete(rg, name, request.failure))

    # -- Microsoft.Authorization at any scope (authorization.py) ------------------------------------

    def get_permissions(self, request: Request, scope: str) -> Reply:
        return Reply(200, self.authorization.permissions(request.principal, scope))

    def list_role_definitions(self, request: Request, scope: str) -> Reply:
        clauses = parse_filter(request.param("$filter"), {"rolename"})
        return Reply(200, self.authorization.list_definitions(scope, clauses.get("rolename")))

    def put_role_definition(self, request: Request, scope: str, guid: str) -> Reply:
        return Reply(201, self.authorization.put_definition(scope, guid, request.body or {}, request.principal))

    def get_role_definition(self, request: Request, scope: str, guid: str) -> Reply:
        return Reply(200, self.authorization.get_definition(scope, guid))

    def delete_role_definition(self, request: Request, scope: str, guid: str) -> Reply:
        found = self.authorization.delete_definition(scope, guid)
        return Reply(200, found) if found else Reply(204)

    def list_role_assignments(self, request: Request, scope: str) -> Reply:
        text = (request.param("$filter") or "").strip()
        at_scope = text.lower() == "atscope()"
        clauses = {} if at_scope else parse_filter(text, {"principalid"})
        return Reply(200, self.authorization.list_assignments(scope, clauses.get("principalid"), at_scope=at_scope))

    def put_role_assignment(self, request: Request, scope: str, guid: str) -> Reply:
        created, body = self.authorization.put_assignment(scope, guid, request.body or {}, request.principal)
        return Reply(201 if created else 200, body)

    def get_role_assignment(self, request: Request, scope: str, guid: str) -> Reply:
        return Reply(200, self.authorization.get_assignment(scope, guid))

    def delete_role_assignment(self, request: Request, scope: str, guid: str) -> Reply:
        found = self.authorization.delete_assignment(scope, guid)
        return Reply(200, found) if found else Reply(204)
