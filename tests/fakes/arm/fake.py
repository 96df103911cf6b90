"""FakeARM: the fake Azure Resource Manager a test starts, steers and inspects."""

from __future__ import annotations

from .authorization import AuthorizationModel, Lag
from .boot import Booter
from .catalog import PlatformImage
from .compute import ComputeModel
from .faults import Fault, FaultRegistry
from .identity import IdentityModel
from .imds import FakeIMDS, Identity
from .marketplace import MarketplaceModel
from .models import ArmState
from .network import NetworkModel
from .quota import QuotaModel
from .routes import LoggedRequest, Routes
from .server import HttpsServer

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
DEFAULT_TENANT = "00000000-0000-0000-0000-0000000000aa"
# Seconds at time scale 1. Reads of a role definition or assignment lag its PUT by "a few seconds" (recording F: a
# list 3 to 4 s after an update still came back empty); a new managed identity's principal replicates to the
# directory in about as long (nothing records how long: Azure/avdaccelerator#99 only shows that it happens).
READ_LAG = 4.0
REPLICATION = 5.0
FAST = 0.002  # the time scale of tests that drive the kit: Azure's waits in five-hundredths


class FakeARM:
    """An HTTPS ARM endpoint for the real azure-mgmt clients (use as a context manager).

    Point a client at it with `**arm.client_kwargs()` (base_url, connection_verify,
    polling_interval, retry_total) and any credential that returns a bearer token.

    Long-running operations answer as Azure's recordings show (DESIGN.md section 9, tests/test_recorded_azure.py):
    PUTs 201/200 with Azure-AsyncOperation, deletes and VM actions 202 with Location (and Azure-AsyncOperation but
    for a group's delete), each with the Retry-After Azure sends (pacing.py). An operation stays InProgress for its
    kind's hold time and completes lazily, on the first request (or accessor of this object) after that, so a
    booter's boot()/halt() runs inside that request. Without a hold, an operation completes right after the request
    that started it: a network PUT answers "Updating", a VM's "Creating", a NIC's "Succeeded" at once.

    time_scale multiplies the waits Azure imposes: the Retry-After values sent (1: as recorded; otherwise as
    retry-after-ms, see pacing.headers), how long reads of role writes lag, and how long a new identity's principal
    takes to replicate (READ_LAG, REPLICATION; FakeARM.lag sets them outright).
    """

    def __init__(
        self,
        booter: Booter | None = None,
        subscription_id: str = DEFAULT_SUBSCRIPTION,
        public_ip: str = "127.0.0.1",
        *,
        tenant_id: str = DEFAULT_TENANT,
        token: str | None = None,
        cloud: str = "public",
        loopback_private_ips: bool = False,
        time_scale: float = 1.0,
    ):
        """`cloud` (public, china, usgov) decides the DNS zone of public IPs' fqdn. With loopback_private_ips,
        NICs get private addresses 127.0.0.2, 127.0.0.3, ... (where fake VMs' sshd can listen) for the subnet's."""
        self.subscription_id = subscription_id
        self._state = ArmState(subscription_id, public_ip, booter, time_scale=time_scale)
        if loopback_private_ips:
            self._state.loopback_private_ips = {"": public_ip}  # the public IP's address is never a NIC's
        self._network = NetworkModel(self._state, cloud)
        self._marketplace = MarketplaceModel(self._state)
        self._identities = IdentityModel(self._state, tenant_id)
        self._compute = ComputeModel(self._state, self._network, self._marketplace, self._identities)
        self._compute.tenant_id = tenant_id
        self._authorization = AuthorizationModel(
            subscription_id,
            tenant_id,
            self._managed_identities,
            self._scope_exists,
            self._state.clock,
            Lag(READ_LAG * time_scale, REPLICATION * time_scale),
        )
        self._quota = QuotaModel(self._state, self._compute)
        self._faults = FaultRegistry()
        self._routes = Routes(
            self._state,
            self._network,
            self._compute,
            self._faults,
            marketplace=self._marketplace,
            authorization=self._authorization,
            quota=self._quota,
            tenant_id=tenant_id,
            token=token,
        )
        self._server: HttpsServer | None = None
        self._imds: FakeIMDS | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeARM:
        self._server = HttpsServer(self._routes.handle)
        self._imds = FakeIMDS(self._identities_of_user)
        return self

    def stop(self) -> None:
        """Stop serving and halt every VM still booted (the cloud is gone)."""
        if self._server is None:
            return
        self._server.stop()
        self._server = None
        if self._imds is not None:
            self._imds.stop()
            self._imds = None
        for vm in self._state.entries_of("Microsoft.Compute/virtualMachines"):
            self._compute.release_vm(vm)

    def __enter__(self) -> FakeARM:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self._running().url

    @property
    def ca_bundle(self) -> str:
        return self._running().ca_bundle

    @property
    def imds_url(self) -> str:
        """The fake instance metadata service the fake VMs get managed-identity tokens from (imds.py)."""
        self._running()
        assert self._imds is not None
        return self._imds.url

    def _running(self) -> HttpsServer:
        if self._server is None:
            raise RuntimeError("FakeARM is not started (use it as a context manager)")
        return self._server

    def client_kwargs(self, *, polling_interval: float = 0.05, retry_total: int = 3) -> dict:
        """Keyword arguments that point an azure-mgmt client at this fake."""
        return {
            "base_url": self.url,
            "connection_verify": self.ca_bundle,
            "polling_interval": polling_interval,
            "retry_total": retry_total,
        }

    # -- request log ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        return self._routes.log()

    def clear_log(self) -> None:
        self._routes.clear_log()

    # -- steering ------------------------------------------------------------------------------

    def hold(self, kind: str, seconds: float) -> None:
        """Operations on `kind` ("*" for all) stay InProgress this long after they begin.

        The hold is read when an operation is checked, so `hold(kind, 0)` releases the ones
        still pending (a test can hold for minutes, look at the in-progress state, then release).

        Applies to creates (PUT) and deletes of that type; VM power actions count as
        "Microsoft.Compute/virtualMachines" and subnet writes as their VNet's kind. A resource
        group's create is synchronous in ARM, so "Microsoft.Resources/resourceGroups" holds deletes.
        """
        self._state.hold(kind, seconds)

    def boot_after(self, seconds: float | None) -> None:
        """A VM's create boots its OS (a booter's boot()) `seconds` after the PUT, while the operation
        may still be InProgress; None (the default): when the operation completes. On Azure the OS boots,
        cloud-init runs and sshd starts while ARM still reports the VM Creating: the create succeeds once
        the guest agent reports provisioning done (https://learn.microsoft.com/azure/virtual-machines/
        linux/provisioning, "the VM is considered provisioned when the agent reports ready")."""
        self._state.boot_after = seconds

    def pace(self, kind: str, seconds: float) -> None:
        """Status polls of running operations on `kind` answer with `Retry-After: seconds` (0: none), whatever
        Azure's recordings show and whatever the time scale."""
        self._state.pace(kind, seconds)

    def lag(self, *, reads: float | None = None, replication: float | None = None) -> None:
        """A fault: reads of role definitions and assignments lag their PUTs by `reads` seconds; a new managed
        identity stays unknown to the directory for `replication` seconds, even to an assignment that names its
        principalType (MicrosoftDocs/azure-docs#103085). Unscaled seconds."""
        lag = self._authorization.lag
        if reads is not None:
            lag.reads = reads
        if replication is not None:
            lag.replication, lag.strict = replication, True

    def inject(
        self,
        method: str,
        path_regex: str,
        *,
        status: int | None = None,
        code: str | None = None,
        message: str = "injected fault",
        retry_after: float | None = None,
        async_failure: bool = False,
        drop_connection: bool = False,
        times: int = 1,
        poll_of: str | None = None,
    ) -> Fault:
        """Answer the next `times` requests matching method and path_regex (searched in the lower-cased
        path) with an error status, a dropped connection, or (for a request that starts an operation)
        an operation that ends Failed. `poll_of` narrows a GET fault to status polls of operations on
        that kind ("Microsoft.Network/networkSecurityGroups"), whose URLs do not name the resource."""
        return self._faults.add(
            method,
            path_regex,
            status=status,
            code=code,
            message=message,
            retry_after=retry_after,
            async_failure=async_failure,
            drop_connection=drop_connection,
            times=times,
            poll_of=poll_of,
        )

    def clear_faults(self) -> None:
        """Forget every injected fault not yet used up (the network is back, the outage is over)."""
        self._faults.clear()

    def add_resource_group(self, name: str, location: str = "eastus", tags: dict | None = None) -> None:
        self._state.add_group(name, location, tags)

    def set_quota(self, location: str, family: str, limit: int, current: int = 0) -> None:
        self._compute.set_quota(location, family, limit, current)

    def fresh_subscription(self) -> None:
        """A new pay-as-you-go subscription: every GPU family's limit is 0 in every region (DESIGN.md 9)."""
        self._quota.fresh_subscription()

    def quota_review(self, *, auto_approve_up_to: int = 16, verdict: str | None = None) -> None:
        """Quota requests for a new limit up to `auto_approve_up_to` vCPUs are approved at once; larger ones stay
        InProgress until a verdict ("approve" or "refuse", with ContactSupport) is given, which those still under
        review meet when they are next read."""
        self._quota.review(auto_approve_up_to, verdict)

    def quota_requests(self) -> list[dict]:
        """Every quota request filed: id, location, quota name, limit asked for, state."""
        self._state.settle()
        with self._state.lock:
            return [
                {"id": r.id, "location": r.location, "name": r.name, "limit": r.limit, "state": r.state}
                for r in self._quota.requests.values()
            ]

    def restrict_sku(self, location: str, size: str, reason: str = "NotAvailableForSubscription") -> None:
        self._compute.restrict_sku(location, size, reason)

    def set_capability(self, size: str, name: str, value: str) -> None:
        """Override one ResourceSkus capability of a size ("AcceleratedNetworkingEnabled", "False")."""
        self._compute.set_capability(size, name, value)

    def no_capacity(self, size: str, gone: bool = True) -> None:
        """Azure has no hardware for `size` now (gone=False: again): an operation that must place a VM of that size
        (a start, the resize of a running VM) ends Failed with AllocationFailed."""
        self._compute.set_no_capacity(size, gone)

    def add_image(self, image: PlatformImage) -> None:
        """Offer another platform image (a Gen1 one, a larger OS disk, a purchase plan)."""
        self._compute.add_image(image)

    def accept_terms(self, publisher: str, offer: str, plan: str) -> None:
        """Accept an image plan's marketplace terms, as `az vm image terms accept` would."""
        self._marketplace.put_terms(publisher, offer, plan, {"properties": {"accepted": True}})

    def set_image_plan(self, publisher: str, offer: str, sku: str, plan: dict | None) -> None:
        self._compute.set_image_plan(publisher, offer, sku, plan)

    def evict(self, vm_id: str) -> None:
        """Evict a Spot VM now: Azure deallocates it out of band (its sshd and processes stop, its disk stays)."""
        self._state.settle()
        self._compute.evict(vm_id)

    def make_caller_contributor(self) -> None:
        """The signed-in caller holds Contributor, not Owner: no Microsoft.Authorization/*/Write or Delete."""
        self._authorization.caller_role = "Contributor"

    def make_caller_reader(self) -> None:
        """The signed-in caller holds Reader: it may read, and nothing else (a quota request is refused 403)."""
        self._authorization.caller_role = "Reader"

    def add_principal(self, principal_id: str, principal_type: str = "User") -> None:
        """A principal the directory knows (role assignments to unknown ones fail with PrincipalNotFound)."""
        self._authorization.extra_principals[principal_id] = principal_type

    # -- identities and scopes (for the authorization model and the IMDS) --------------------------

    def _vms(self):
        return self._state.entries_of("Microsoft.Compute/virtualMachines")

    def _managed_identities(self) -> dict[str, tuple[str, float]]:
        """principalId -> (its resource's id, when it was made) for every managed identity: user-assigned ones and
        VMs' system-assigned ones."""
        found = self._identities.principals()
        with self._state.lock:
            for vm in self._vms():
                principal = (vm.body.get("identity") or {}).get("principalId")
                if principal:
                    found[principal] = (vm.id, vm.meta["principal_since"])
        return found

    def _identities_of_user(self, user: str) -> list[list[Identity]]:
        """The managed identities of each running VM of that admin user. The nodes of one deployment share their
        user (vm.py), so the IMDS cannot tell them apart: it answers for the first that has an identity (the head;
        the kit gives workers none)."""
        with self._state.lock:
            return [
                self._vm_identities(vm)
                for vm in self._vms()
                if (vm.body["properties"].get("osProfile") or {}).get("adminUsername") == user and vm.meta.get("booted")
            ]

    @staticmethod
    def _vm_identities(vm) -> list[Identity]:
        identity = vm.body.get("identity") or {}
        system = [Identity(vm.id, identity["principalId"], None)] if identity.get("principalId") else []
        return system + [
            Identity(resource_id, value["principalId"], value["clientId"])
            for resource_id, value in (identity.get("userAssignedIdentities") or {}).items()
        ]

    def _scope_exists(self, scope: str) -> bool:
        parts = scope.strip("/").split("/")
        if len(parts) < 4 or parts[2].lower() != "resourcegroups":
            return True
        return parts[3].lower() in self._state.groups

    # -- inspection ----------------------------------------------------------------------------

    def inventory(self) -> list[str]:
        self._state.settle()
        return self._state.inventory()

    def role_definitions(self) -> list[dict]:
        """The custom role definitions (built-in roles are not listed)."""
        return self._authorization.definitions()

    def role_assignments(self) -> list[dict]:
        """Every role assignment in the subscription, as written (whether or not reads see it yet)."""
        self._state.settle()
        return self._authorization.assignments()

    def resource(self, resource_id: str) -> dict | None:
        """The REST body GET would return for this resource group or resource, or None."""
        self._state.settle()
        return self._state.body_of(resource_id)
