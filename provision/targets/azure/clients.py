"""The Azure SDK clients, built lazily so that `provision --help` never imports azure.*."""

import time
from functools import cached_property
from typing import Any

from provision.plan import Owner
from provision.settings import Settings
from provision.targets.azure import polling
from provision.targets.azure.identity import owner_from_token

ARM_SCOPE = "https://management.azure.com/.default"
# Transient ARM faults (429 with Retry-After, 5xx, dropped connections) are retried by
# azure-core's RetryPolicy within these bounds. An ARM that cannot be reached is reported in
# well under a minute: 4 tries (3 connect or read retries), 0 + 1 + 2 s apart, each refused at
# once or given up after CONNECT_TIMEOUT s (azure-core's defaults: 300 s to connect, 300 to read).
RETRY = {
    "retry_total": 6,
    "retry_connect": 3,
    "retry_read": 3,
    "retry_backoff_factor": 0.5,
    "retry_backoff_max": 30,
    "connection_timeout": 10,
    "read_timeout": 60,
}
# GET /subscriptions/{id}: the Subscriptions API version `az account` sends (azure-mgmt-resource
# 26 no longer ships a SubscriptionClient, so it goes through the resource client's pipeline).
SUBSCRIPTIONS_API = "2022-12-01"
# The first read answers "can I reach Azure at all": an ARM that takes a connection and never answers
# is reported within about a minute (3 tries of 15 s), not after the 4 x 60 s a slow later read may take.
FIRST_READ = {"read_timeout": 15, "retry_read": 2}
SOVEREIGN_SCOPES = {
    "china": "https://management.chinacloudapi.cn/.default",
    "usgov": "https://management.usgovcloudapi.net/.default",
}


class StaticTokenCredential:
    """A bearer token handed over as it is (PROVISION_ARM_TOKEN): private endpoints and tests."""

    def __init__(self, token: str):
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)

    def __repr__(self) -> str:
        return "StaticTokenCredential(<redacted>)"


def credential_for(settings: Settings):
    if settings.arm_token:
        return StaticTokenCredential(settings.arm_token)
    from azure.identity import AzureAuthorityHosts, DefaultAzureCredential

    authority = {
        "china": AzureAuthorityHosts.AZURE_CHINA,
        "usgov": AzureAuthorityHosts.AZURE_GOVERNMENT,
    }.get(settings.cloud, AzureAuthorityHosts.AZURE_PUBLIC_CLOUD)
    return DefaultAzureCredential(authority=authority)


class Clients:
    """One credential and one client per service, made on first use."""

    def __init__(self, settings: Settings, subscription: str | None = None):
        self.settings = settings
        self.subscription = subscription or settings.subscription
        self.credential = credential_for(settings)

    @property
    def scope(self) -> str:
        return SOVEREIGN_SCOPES.get(self.settings.cloud, ARM_SCOPE)

    @cached_property
    def owner(self) -> Owner:
        """The signed-in principal, from a token of the credential the clients use."""
        source = "PROVISION_ARM_TOKEN" if self.settings.arm_token else "DefaultAzureCredential"
        return owner_from_token(self.credential.get_token(self.scope).token, source=source)

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "base_url": self.settings.arm_endpoint,
            "credential_scopes": [self.scope],
            "polling_interval": self.settings.poll_interval,
            **RETRY,
        }
        if self.settings.arm_ca_bundle:
            options["connection_verify"] = self.settings.arm_ca_bundle
        return options

    def polling(self) -> Any:
        """A fresh polling method for one long-running operation (`polling=` of a begin_* call)."""
        return polling.polling(self.settings.poll_interval, self.settings.arm_endpoint)

    def read_subscription(self) -> dict:
        """GET the subscription: one cheap read that proves the credential and the subscription id
        (401 InvalidAuthenticationToken, 404 SubscriptionNotFound, 403 AuthorizationFailed)."""
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError, map_error
        from azure.core.rest import HttpRequest
        from azure.mgmt.core.exceptions import ARMErrorFormat

        request = HttpRequest("GET", f"/subscriptions/{self.subscription}", params={"api-version": SUBSCRIPTIONS_API})
        response = self.resource.send_request(request, **FIRST_READ)
        if response.status_code != 200:
            map_error(response.status_code, response, {401: ClientAuthenticationError, 404: ResourceNotFoundError})
            raise HttpResponseError(response=response, error_format=ARMErrorFormat)
        return response.json()

    @cached_property
    def resource(self):
        from azure.mgmt.resource.resources import ResourceManagementClient

        return ResourceManagementClient(self.credential, self.subscription, **self._options())

    @cached_property
    def network(self):
        from azure.mgmt.network import NetworkManagementClient

        return NetworkManagementClient(self.credential, self.subscription, **self._options())

    @cached_property
    def compute(self):
        from azure.mgmt.compute import ComputeManagementClient

        return ComputeManagementClient(self.credential, self.subscription, **self._options())

    @cached_property
    def quota(self):
        """Azure's Quota API (Microsoft.Quota): quota limits, usages and increase requests."""
        from azure.mgmt.quota import QuotaMgmtClient

        return QuotaMgmtClient(self.credential, self.subscription, **self._options())
