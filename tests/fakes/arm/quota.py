"""Microsoft.Quota at a compute location (`{scope}` = /subscriptions/{s}/providers/Microsoft.Compute/locations/{r}):
quota limits, usages and increase requests, shaped as Azure's examples show them
(../shared/azure-rest-examples/Microsoft.Quota, the README's Quota rows).

Limits and use are compute's (ComputeModel.usage), so that a request once approved is what compute's usages list
reports next. A request for a new limit up to `auto_approve_up_to` vCPUs is approved at once: 200 with the quota
and a `location` naming its quotaRequests entry. A larger one is reviewed: 202 with `Retry-After` and a `location`
on an operationsStatus URL (putComputeOneSkuQuotaRequest.json), and InProgress until a verdict is given (approve,
or refuse with ContactSupport as getQuotaRequestStatusFailed.json shows). The kit follows a request on
quotaRequests/{id}, so the fake does not serve the operationsStatus URL itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import catalog
from .compute import ComputeModel
from .errors import ArmError, NotFound
from .models import ArmState, new_guid, utc_now
from .routes import Reply, Request

REVIEWED = ("approve", "refuse")
MESSAGES = {
    "InProgress": "Request processing",
    "Succeeded": "Request completed",
    "Failed": "Request failed, please contact support.",
}
REFUSAL = {"code": "ContactSupport", "message": MESSAGES["Failed"]}


@dataclass
class QuotaRequest:
    id: str
    location: str
    name: str  # the quota as Azure spells it
    label: str
    limit: int
    submitted: str
    sub_request: str
    state: str = "InProgress"


class QuotaModel:
    def __init__(self, state: ArmState, compute: ComputeModel):
        self.state = state
        self.compute = compute
        self.auto_approve_up_to = 16  # new limits up to this are approved at once (FakeARM.quota_review)
        self.verdict: str | None = None  # what becomes of larger ones: None (under review), approve or refuse
        self.retry_after = 30  # seconds, as putComputeOneSkuQuotaRequest.json's 202 asks
        self.requests: dict[str, QuotaRequest] = {}

    def routes(self) -> list[tuple[str, str, object]]:
        """(method, path under `{scope}/providers/microsoft.quota`, handler(request, loc, name))."""
        return [
            ("GET", "/quotas/{name}", self.get_quota),
            ("PUT", "/quotas/{name}", self.put_quota),
            ("GET", "/usages/{name}", self.get_usage),
            ("GET", "/quotarequests/{name}", self.get_request),
        ]

    # -- steering (FakeARM) --------------------------------------------------------------------

    def fresh_subscription(self) -> None:
        """A new pay-as-you-go subscription: every GPU family's limit is 0 in every region (DESIGN.md 9)."""
        for region in catalog.REGIONS:
            for family in sorted({size.family for size in catalog.VM_SIZES if size.gpus}):
                self.compute.set_limit(region.name, family, 0)

    def review(self, auto_approve_up_to: int, verdict: str | None) -> None:
        if verdict not in (None, *REVIEWED):
            raise ValueError(f"verdict must be None or one of {REVIEWED}")
        with self.state.lock:
            self.auto_approve_up_to, self.verdict = auto_approve_up_to, verdict

    # -- HTTP ----------------------------------------------------------------------------------

    def _at(self, loc: str) -> str:
        if catalog.normalize_location(loc) not in catalog.REGION_NAMES:
            raise NotFound(f"The location '{loc}' is not available for resource type 'Microsoft.Quota/quotas'.")
        return f"/subscriptions/{self.state.subscription_id}/providers/Microsoft.Compute/locations/{loc}"

    def _usage(self, loc: str, name: str) -> catalog.Usage:
        usage = self.compute.usage(loc, name)
        if usage is None:
            raise NotFound(f"The resource '{name}' was not found in scope '{self._at(loc)}'.")
        return usage

    def get_quota(self, request: Request, loc: str, name: str) -> Reply:
        """Quota_Get (getComputeOneSkuQuotaLimit.json)."""
        usage = self._usage(loc, name)
        return Reply(
            200,
            {
                "id": f"{self._at(loc)}/providers/Microsoft.Quota/Quotas/{usage.name}",
                "type": "Microsoft.Quota/Quotas",
                "name": usage.name,
                "properties": {
                    "limit": {"limitObjectType": "LimitValue", "value": usage.limit, "limitType": "Independent"},
                    "unit": "Count",
                    "name": {"value": usage.name, "localizedValue": usage.label},
                    "isQuotaApplicable": True,
                },
            },
        )

    def get_usage(self, request: Request, loc: str, name: str) -> Reply:
        """Usages_Get (getComputeOneSkuUsages.json)."""
        usage = self._usage(loc, name)
        return Reply(
            200,
            {
                "id": f"{self._at(loc)}/providers/Microsoft.Quota/Usages/{usage.name}",
                "type": "Microsoft.Quota/Usages",
                "name": usage.name,
                "properties": {
                    "usages": {"usagesType": "Individual", "value": usage.current},
                    "unit": "Count",
                    "name": {"value": usage.name, "localizedValue": usage.label},
                    "isQuotaApplicable": True,
                },
            },
        )

    def put_quota(self, request: Request, loc: str, name: str) -> Reply:
        """Quota_CreateOrUpdate (putComputeOneSkuQuotaRequest.json): an increase request."""
        usage = self._usage(loc, name)
        properties = (request.body or {}).get("properties") or {}
        limit = properties.get("limit") or {}
        value = limit.get("value")
        if limit.get("limitObjectType", "LimitValue") != "LimitValue" or not isinstance(value, int) or value < 0:
            raise ArmError("properties.limit must be {limitObjectType: LimitValue, value: a whole number}.")
        if catalog.family_key((properties.get("name") or {}).get("value", "")) != catalog.family_key(name):
            raise ArmError(f"properties.name.value must name the quota of the URL, '{name}'.")
        with self.state.lock:
            found = QuotaRequest(new_guid().upper(), loc, usage.name, usage.label, value, utc_now(), new_guid().upper())
            self.requests[found.id.lower()] = found
            if value <= self.auto_approve_up_to:
                self._decide(found, "approve")
        base = f"{request.base_url}{self._at(loc)}/providers/Microsoft.Quota"
        if found.state == "Succeeded":
            quota = {"limit": {"limitObjectType": "LimitValue", "value": value}, "name": {"value": usage.name}}
            return Reply(
                200,
                {
                    "id": f"{self._at(loc)}/providers/Microsoft.Quota/quotas/{usage.name}",
                    "type": "Microsoft.Quota/quotas",
                    "name": usage.name,
                    "properties": quota,
                },
                {"location": f"{base}/quotaRequests/{found.id}?api-version={request.api_version}"},
            )
        return Reply(
            202,
            None,
            {
                "Retry-After": str(self.retry_after),
                "location": f"{base}/operationsStatus/{found.id}?api-version={request.api_version}",
            },
        )

    def get_request(self, request: Request, loc: str, name: str) -> Reply:
        """QuotaRequestStatus_Get (getQuotaRequestStatusById, ...InProgress, ...Failed.json); a request under
        review meets the verdict, if one was given, when it is read."""
        with self.state.lock:
            found = self.requests.get(name.lower())
            if found is None or catalog.normalize_location(found.location) != catalog.normalize_location(loc):
                raise NotFound(f"The quota request '{name}' was not found in scope '{self._at(loc)}'.")
            if found.state == "InProgress" and self.verdict is not None:
                self._decide(found, self.verdict)
            message = MESSAGES[found.state]
            properties = {
                "requestSubmitTime": found.submitted,
                "message": message,
                "provisioningState": found.state,
                "value": [
                    {
                        "limit": {"limitObjectType": "LimitValue", "value": found.limit},
                        "unit": "Count",
                        "name": {"value": found.name, "localizedValue": found.label},
                        "message": message,
                        "provisioningState": found.state,
                        "subRequestId": found.sub_request,
                    }
                ],
            }
            if found.state == "Failed":
                properties["error"] = dict(REFUSAL)
        return Reply(
            200,
            {
                "id": f"{self._at(loc)}/providers/Microsoft.Quota/quotaRequests/{found.id}",
                "type": "Microsoft.Quota/quotaRequests",
                "name": found.id,
                "properties": properties,
            },
        )

    def _decide(self, found: QuotaRequest, verdict: str) -> None:
        """Approved: the new limit is what compute reports from now on; refused: nothing changes."""
        found.state = "Succeeded" if verdict == "approve" else "Failed"
        if found.state == "Succeeded":
            self.compute.set_limit(found.location, found.name, found.limit)
