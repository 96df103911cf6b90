"""Azure SDK exceptions turned into one-line errors that say what to do next."""

import re

from provision.errors import ProvisionError

NO_CREDENTIAL = (
    "no Azure credentials found: run `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
    "AZURE_CLIENT_SECRET for a service principal (or try `provision up --target local`, "
    "which needs no cloud account)"
)
QUOTA_CODES = {"OperationNotAllowed", "QuotaExceeded"}
# Azure's codes for "no room for this size here now" (learn.microsoft.com, "Troubleshoot allocation
# failures" and "Resolve errors for SKU not available"): the next zone, region or size may have it.
CAPACITY_CODES = {
    "SkuNotAvailable",
    "AllocationFailed",
    "ZonalAllocationFailed",
    "OverconstrainedAllocationRequest",
    "OverconstrainedZonalAllocationRequest",
}
QUOTA_HINT = (
    "`provision quota` shows where there is room and `provision quota request --size SIZE --region REGION` asks "
    "Azure for more; or try another --region or --size"
)
HINTS = {
    "OperationNotAllowed": QUOTA_HINT,
    "QuotaExceeded": QUOTA_HINT,
    "SkuNotAvailable": "this size is not offered to your subscription there; try another --region or --size",
    "AllocationFailed": "Azure has no capacity for this size there right now; try another "
    "--region or --size, or again later",
    "ZonalAllocationFailed": "Azure has no capacity for this size in that zone right now; try "
    "another --region or --size, or again later",
    "OverconstrainedAllocationRequest": "Azure cannot place this size under the constraints asked "
    "(zone, accelerated networking, ...) right now; try another --region or --size, or again later",
    "OverconstrainedZonalAllocationRequest": "Azure cannot place this size in that zone under the "
    "constraints asked right now; try another --region or --size, or again later",
    "AuthorizationFailed": "ask for the Contributor role on the subscription (or the resource "
    "group), or pick another subscription with AZURE_SUBSCRIPTION_ID",
    "InvalidAuthenticationToken": "your Azure sign-in has expired or is for another cloud; run `az login` again",
    "InvalidAuthenticationTokenTenant": "the subscription belongs to another directory (tenant); "
    "run `az login --tenant TENANT_ID` with the subscription's tenant",
    "SubscriptionNotFound": "check AZURE_SUBSCRIPTION_ID (`az account list -o table`)",
    "DnsRecordInUse": "another public IP in this region holds that DNS name; choose another --name",
}


class AzureError(ProvisionError):
    """An ARM error with its code, so callers can decide (move on, stop) by code."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code

    @property
    def is_quota(self) -> bool:
        return self.code in QUOTA_CODES

    @property
    def is_capacity(self) -> bool:
        return self.code in CAPACITY_CODES


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def explain(error: Exception, action: str, endpoint: str) -> AzureError:
    """The one-line error for an azure.core exception raised while trying to `action`."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    odata = getattr(error, "error", None)
    code = getattr(odata, "code", None)
    if isinstance(error, ClientAuthenticationError) and not code:
        return AzureError(NO_CREDENTIAL, "NoCredential")
    if isinstance(error, HttpResponseError) and (code or error.response is not None):
        code = code or f"HTTP {error.status_code}"
        detail = one_line(getattr(odata, "message", None) or str(error.message))
        hint = HINTS.get(code)
        text = f"could not {action}: {code}: {detail}"
        return AzureError(f"{text} ({hint})" if hint else text, code)
    return AzureError(
        f"could not {action}: Azure Resource Manager at {endpoint} did not answer "
        f"({one_line(str(error))}); check your network connection and try again"
    )
