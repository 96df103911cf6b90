"""Microsoft.Network: virtual networks (and subnets), NSGs, public IPs, NICs.

Bodies follow the 2026-01-01 examples: PUT answers 201/200 with the resource, sub-resources carry
ids, NSGs list the six default rules. ARM's dependency rules are enforced: a NIC needs its subnet,
NSG and public IP; what is in use cannot be deleted.

States and headers follow Azure's recordings (DESIGN.md section 9, recordings A, B, E, I), not the examples
(which show "Succeeded" at once): a VNet, subnet, NSG or public IP PUT answers "Updating" with
Azure-AsyncOperation and Retry-After 3, and its operation completes after the request (on the next one); a NIC
PUT answers already "Succeeded" (its operation says Succeeded at once). Deletes answer 202 with both
Azure-AsyncOperation and Location.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable

from . import pacing
from .errors import ArmError, InUse, InvalidParameter, InvalidResourceReference, NotFound
from .models import ArmState, DeleteResult, Entry, KindSpec, OperationCanceled, PutResult, new_guid

VNET = "Microsoft.Network/virtualNetworks"
SUBNET = "Microsoft.Network/virtualNetworks/subnets"  # follows its VNet's hold
NSG = "Microsoft.Network/networkSecurityGroups"
PUBLIC_IP = "Microsoft.Network/publicIPAddresses"
NIC = "Microsoft.Network/networkInterfaces"

# Where a public IP's DNS label lives: <label>.<region>.<zone> (learn.microsoft.com "Public IP
# addresses", DNS settings; Azure China's and Azure Government's developer notes for the others).
DNS_ZONES = {
    "public": "cloudapp.azure.com",
    "china": "cloudapp.chinacloudapi.cn",
    "usgov": "cloudapp.usgovcloudapi.net",
}

# name, description, source prefix, destination prefix, access, priority, direction
_DEFAULT_RULES = (
    (
        "AllowVnetInBound",
        "Allow inbound traffic from all VMs in VNET",
        "VirtualNetwork",
        "VirtualNetwork",
        "Allow",
        65000,
        "Inbound",
    ),
    (
        "AllowAzureLoadBalancerInBound",
        "Allow inbound traffic from azure load balancer",
        "AzureLoadBalancer",
        "*",
        "Allow",
        65001,
        "Inbound",
    ),
    ("DenyAllInBound", "Deny all inbound traffic", "*", "*", "Deny", 65500, "Inbound"),
    (
        "AllowVnetOutBound",
        "Allow outbound traffic from all VMs to all VMs in VNET",
        "VirtualNetwork",
        "VirtualNetwork",
        "Allow",
        65000,
        "Outbound",
    ),
    (
        "AllowInternetOutBound",
        "Allow outbound traffic from all VMs to Internet",
        "*",
        "Internet",
        "Allow",
        65001,
        "Outbound",
    ),
    ("DenyAllOutBound", "Deny all outbound traffic", "*", "*", "Deny", 65500, "Outbound"),
)

# The child collections whose provisioningState follows their parent's.
_CHILDREN = {
    VNET.lower(): ("subnets",),
    NSG.lower(): ("securityRules", "defaultSecurityRules"),
    NIC.lower(): ("ipConfigurations",),
    PUBLIC_IP.lower(): (),
}


def _set_state(entry: Entry, state: str) -> None:
    entry.set_state(state)
    for collection in _CHILDREN[entry.kind.lower()]:
        for child in entry.properties.get(collection, []):
            child.setdefault("properties", {})["provisioningState"] = state


def _ref_id(ref) -> str | None:
    return ref.get("id") if isinstance(ref, dict) else None


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


class NetworkModel:
    def __init__(self, state: ArmState, cloud: str = "public"):
        self.state = state
        self.dns_zone = DNS_ZONES[cloud]
        for kind, build, view, in_use in (
            (VNET, self._build_vnet, self._view_vnet, self._vnet_in_use),
            (NSG, self._build_nsg, self._view_nsg, self._nsg_in_use),
            (PUBLIC_IP, self._build_public_ip, self._view_public_ip, self._public_ip_in_use),
            (NIC, self._build_nic, self._view_nic, self._nic_in_use),
        ):
            state.register(
                KindSpec(
                    kind,
                    put=self._putter(kind, build, view),
                    delete=self._deleter(kind, in_use),
                    view=view,
                )
            )

    # -- generic PUT / DELETE -------------------------------------------------------------------

    def _putter(self, kind: str, build: Callable[[Entry, dict, Entry | None], None], view: Callable[[Entry], dict]):
        def put(group: str, name: str, body: dict, failure: ArmError | None) -> PutResult:
            if not body.get("location"):
                raise ArmError("Resource location is required.", code="LocationRequired")
            state = self.state
            with state.lock:
                found = state.require_group(group, for_write=True)
                existing = state.lookup(group, kind, name)
                entry = state.new_entry(found, kind, name, body)
                entry.meta = dict(existing.meta) if existing else {"resourceGuid": new_guid()}
                if body.get("sku") is not None:
                    entry.body["sku"] = copy.deepcopy(body["sku"])
                if body.get("zones"):
                    entry.body["zones"] = list(body["zones"])
                entry.body["etag"] = f'W/"{new_guid()}"'
                build(entry, body.get("properties") or {}, existing)
                entry.properties["resourceGuid"] = entry.meta["resourceGuid"]
                _set_state(entry, "Updating")
                state.store(entry)
                operation = self._track(entry, failure, pacing.for_put(kind))
            if kind == NIC and state.is_immediate(operation):
                state.complete_now(operation)  # B, PUT networkInterfaces: 201 already "Succeeded"
            with state.lock:
                return PutResult(existing is None, view(entry), operation)

        return put

    def _track(self, entry: Entry, failure: ArmError | None, pace: pacing.Pace):
        generation = entry.generation

        def finish() -> None:
            with self.state.lock:
                if not self.state.is_current(entry, generation):
                    raise OperationCanceled("The operation was preempted by a later one.")
                _set_state(entry, "Succeeded")

        def on_failure(_: ArmError) -> None:
            with self.state.lock:
                if self.state.is_current(entry, generation):
                    _set_state(entry, "Failed")

        return self.state.start_operation(
            entry.kind, entry.body["location"], finish, failure=failure, on_failure=on_failure, pace=pace
        )

    def _deleter(self, kind: str, in_use: Callable[[Entry], ArmError | None]):
        def delete(group: str, name: str, failure: ArmError | None) -> DeleteResult:
            state = self.state
            with state.lock:
                entry = state.lookup(group, kind, name)
                if entry is None:
                    return DeleteResult(False)
                refusal = in_use(entry)
                if refusal is not None:
                    raise refusal
                _set_state(entry, "Deleting")

                def finish() -> None:
                    with state.lock:
                        if state.find(entry.id) is entry:
                            state.remove(entry)

                def on_failure(_: ArmError) -> None:
                    with state.lock:
                        _set_state(entry, "Failed")

                operation = state.start_operation(
                    kind, entry.body["location"], finish, failure=failure, on_failure=on_failure
                )
            return DeleteResult(True, operation)

        return delete

    # -- lookups shared by the kinds -----------------------------------------------------------

    def _nic_ip_configurations(self):
        """(nic entry, ip configuration) for every NIC's ip configuration."""
        for nic in self.state.entries_of(NIC):
            for config in nic.properties.get("ipConfigurations", []):
                yield nic, config

    def _resolve_subnet(self, subnet_id: str) -> tuple[Entry, dict] | None:
        vnet_id, sep, subnet_name = subnet_id.rstrip("/").rpartition("/subnets/")
        vnet = self.state.find(vnet_id) if sep else None
        if vnet is None or vnet.kind != VNET:
            return None
        for subnet in vnet.properties.get("subnets", []):
            if subnet["name"].lower() == subnet_name.lower():
                return vnet, subnet
        return None

    def _require_ref(self, kind: str, ref_id: str | None, referencing_id: str) -> Entry:
        found = self.state.find(ref_id) if ref_id else None
        if found is None or found.kind != kind:
            raise InvalidResourceReference(ref_id or "(none)", referencing_id)
        return found

    # -- virtual networks and subnets ----------------------------------------------------------

    def _subnet_body(self, vnet_id: str, subnet: dict) -> dict:
        name = subnet.get("name")
        if not name:
            raise InvalidParameter("Subnet name is required.", target="subnets")
        properties = copy.deepcopy(subnet.get("properties") or {})
        if not properties.get("addressPrefix") and not properties.get("addressPrefixes"):
            raise InvalidParameter(f"Subnet {name} has no address prefix.", target="addressPrefix")
        subnet_id = f"{vnet_id}/subnets/{name}"
        nsg_ref = _ref_id(properties.get("networkSecurityGroup"))
        if nsg_ref is not None:
            properties["networkSecurityGroup"] = {"id": self._require_ref(NSG, nsg_ref, subnet_id).id}
        properties.setdefault("privateEndpointNetworkPolicies", "Disabled")
        properties.setdefault("privateLinkServiceNetworkPolicies", "Enabled")
        return {"id": subnet_id, "name": name, "etag": f'W/"{new_guid()}"', "type": SUBNET, "properties": properties}

    def _subnet_users(self, subnet_id: str) -> list[str]:
        return [
            config["id"]
            for _, config in self._nic_ip_configurations()
            if _same(_ref_id(config["properties"].get("subnet")), subnet_id)
        ]

    def _refuse_subnet_removal(self, subnet: dict) -> None:
        users = self._subnet_users(subnet["id"])
        if users:
            raise InUse(
                f"Subnet {subnet['name']} is in use by {users[0]} and cannot be deleted. In order to "
                "delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
                code="InUseSubnetCannotBeDeleted",
            )

    def _build_vnet(self, entry: Entry, properties: dict, existing: Entry | None) -> None:
        subnets = [self._subnet_body(entry.id, subnet) for subnet in properties.get("subnets") or []]
        if existing is not None:
            kept = {subnet["name"].lower() for subnet in subnets}
            for old in existing.properties.get("subnets", []):
                if old["name"].lower() not in kept:
                    self._refuse_subnet_removal(old)
        entry.body["properties"] = {
            **copy.deepcopy(properties),
            "addressSpace": copy.deepcopy(properties.get("addressSpace") or {"addressPrefixes": []}),
            "subnets": subnets,
            "virtualNetworkPeerings": copy.deepcopy(properties.get("virtualNetworkPeerings") or []),
            "enableDdosProtection": bool(properties.get("enableDdosProtection", False)),
        }

    def _view_subnet(self, subnet: dict) -> dict:
        view = copy.deepcopy(subnet)
        users = self._subnet_users(subnet["id"])
        if users:
            view["properties"]["ipConfigurations"] = [{"id": user} for user in users]
        return view

    def _view_vnet(self, entry: Entry) -> dict:
        view = copy.deepcopy(entry.body)
        view["properties"]["subnets"] = [self._view_subnet(s) for s in entry.properties.get("subnets", [])]
        return view

    def _vnet_in_use(self, entry: Entry) -> ArmError | None:
        for subnet in entry.properties.get("subnets", []):
            try:
                self._refuse_subnet_removal(subnet)
            except InUse as refusal:
                return refusal
        return None

    def _require_vnet(self, group: str, vnet_name: str) -> Entry:
        return self.state.require(group, VNET, vnet_name)

    def get_subnet(self, group: str, vnet_name: str, subnet_name: str) -> dict:
        with self.state.lock:
            vnet = self._require_vnet(group, vnet_name)
            return self._view_subnet(self._subnet_of(vnet, subnet_name))

    def list_subnets(self, group: str, vnet_name: str) -> list[dict]:
        with self.state.lock:
            vnet = self._require_vnet(group, vnet_name)
            return [self._view_subnet(subnet) for subnet in vnet.properties.get("subnets", [])]

    @staticmethod
    def _subnet_of(vnet: Entry, subnet_name: str) -> dict:
        for subnet in vnet.properties.get("subnets", []):
            if subnet["name"].lower() == subnet_name.lower():
                return subnet
        raise NotFound(f"Resource {vnet.id}/subnets/{subnet_name} not found.")

    def put_subnet(
        self, group: str, vnet_name: str, subnet_name: str, body: dict, failure: ArmError | None
    ) -> PutResult:
        state = self.state
        with state.lock:
            state.require_group(group, for_write=True)
            vnet = self._require_vnet(group, vnet_name)
            subnet = self._subnet_body(vnet.id, {**body, "name": subnet_name})
            subnets = vnet.properties.setdefault("subnets", [])
            index = next((i for i, s in enumerate(subnets) if s["name"].lower() == subnet_name.lower()), None)
            if index is None:
                subnets.append(subnet)
            else:
                subnets[index] = subnet
            _set_state(vnet, "Updating")
            state.store(vnet)
            operation = self._track(vnet, failure, pacing.NETWORK_PUT)
        with state.lock:
            return PutResult(index is None, self._view_subnet(subnet), operation)

    def delete_subnet(self, group: str, vnet_name: str, subnet_name: str, failure: ArmError | None) -> DeleteResult:
        state = self.state
        with state.lock:
            vnet = self._require_vnet(group, vnet_name)
            try:
                subnet = self._subnet_of(vnet, subnet_name)
            except NotFound:
                return DeleteResult(False)
            self._refuse_subnet_removal(subnet)
            subnet["properties"]["provisioningState"] = "Deleting"

            def finish() -> None:
                with state.lock:
                    subnets = vnet.properties.get("subnets", [])
                    if subnet in subnets:
                        subnets.remove(subnet)

            operation = state.start_operation(VNET, vnet.body["location"], finish, failure=failure)
        return DeleteResult(True, operation)

    # -- network security groups ---------------------------------------------------------------

    def _build_nsg(self, entry: Entry, properties: dict, existing: Entry | None) -> None:
        del existing
        rules = []
        for rule in properties.get("securityRules") or []:
            rule_properties = copy.deepcopy(rule.get("properties") or {})
            priority = rule_properties.get("priority")
            if not isinstance(priority, int) or not 100 <= priority <= 4096:
                raise ArmError(
                    f"Security rule {rule.get('name')} has invalid Priority. Value provided: "
                    f"{priority} Allowed range 100-4096.",
                    code="SecurityRuleInvalidPriority",
                )
            rules.append(
                {
                    "id": f"{entry.id}/securityRules/{rule['name']}",
                    "name": rule["name"],
                    "type": f"{NSG}/securityRules",
                    "properties": rule_properties,
                }
            )
        defaults = [
            {
                "id": f"{entry.id}/defaultSecurityRules/{name}",
                "name": name,
                "type": f"{NSG}/defaultSecurityRules",
                "properties": {
                    "description": description,
                    "protocol": "*",
                    "sourcePortRange": "*",
                    "destinationPortRange": "*",
                    "sourceAddressPrefix": source,
                    "destinationAddressPrefix": destination,
                    "access": access,
                    "priority": priority,
                    "direction": direction,
                },
            }
            for name, description, source, destination, access, priority, direction in _DEFAULT_RULES
        ]
        entry.body["properties"] = {
            **copy.deepcopy(properties),
            "securityRules": rules,
            "defaultSecurityRules": defaults,
        }

    def _nsg_users(self, entry: Entry) -> tuple[list[str], list[str]]:
        nics = [
            nic.id
            for nic in self.state.entries_of(NIC)
            if _same(_ref_id(nic.properties.get("networkSecurityGroup")), entry.id)
        ]
        subnets = [
            subnet["id"]
            for vnet in self.state.entries_of(VNET)
            for subnet in vnet.properties.get("subnets", [])
            if _same(_ref_id(subnet["properties"].get("networkSecurityGroup")), entry.id)
        ]
        return nics, subnets

    def _view_nsg(self, entry: Entry) -> dict:
        view = copy.deepcopy(entry.body)
        nics, subnets = self._nsg_users(entry)
        if nics:
            view["properties"]["networkInterfaces"] = [{"id": nic} for nic in nics]
        if subnets:
            view["properties"]["subnets"] = [{"id": subnet} for subnet in subnets]
        return view

    def _nsg_in_use(self, entry: Entry) -> ArmError | None:
        nics, subnets = self._nsg_users(entry)
        if not nics and not subnets:
            return None
        return InUse(
            f"Network security group {entry.id} cannot be deleted because it is in use by the following "
            f"resources: {', '.join(nics + subnets)}. In order to delete the Network security group, "
            "remove the association with the resource(s).",
            code="InUseNetworkSecurityGroupCannotBeDeleted",
        )

    # -- public IP addresses -------------------------------------------------------------------

    def _build_public_ip(self, entry: Entry, properties: dict, existing: Entry | None) -> None:
        del existing
        sku = entry.body.setdefault("sku", {"name": "Basic"})
        sku.setdefault("tier", "Regional")
        default_allocation = "Static" if sku.get("name", "").lower() == "standard" else "Dynamic"
        built = {
            **copy.deepcopy(properties),
            "publicIPAddressVersion": properties.get("publicIPAddressVersion", "IPv4"),
            "publicIPAllocationMethod": properties.get("publicIPAllocationMethod", default_allocation),
            "idleTimeoutInMinutes": properties.get("idleTimeoutInMinutes", 4),
        }
        label = (properties.get("dnsSettings") or {}).get("domainNameLabel")
        if label:
            fqdn = f"{label}.{entry.body['location']}.{self.dns_zone}"
            self._refuse_taken_fqdn(entry, fqdn)
            built["dnsSettings"] = {**properties["dnsSettings"], "fqdn": fqdn}
        if built["publicIPAllocationMethod"].lower() == "static":
            built["ipAddress"] = self.state.public_ip
        entry.body["properties"] = built

    def _refuse_taken_fqdn(self, entry: Entry, fqdn: str) -> None:
        """A DNS name belongs to one public IP in the whole cloud: Azure answers another IP asking for
        it with 400 DnsRecordInUse "DNS record <fqdn> is already used by another public IP." (as
        Terraform's and the quickstart templates' users report it, e.g. Azure/azure-quickstart-templates#4978)."""
        for other in self.state.entries_of(PUBLIC_IP):
            taken = (other.properties.get("dnsSettings") or {}).get("fqdn")
            if taken == fqdn and other.id.lower() != entry.id.lower():
                raise ArmError(f"DNS record {fqdn} is already used by another public IP.", code="DnsRecordInUse")

    def _public_ip_user(self, entry: Entry) -> tuple[Entry, dict] | None:
        for nic, config in self._nic_ip_configurations():
            if _same(_ref_id(config["properties"].get("publicIPAddress")), entry.id):
                return nic, config
        return None

    def _view_public_ip(self, entry: Entry) -> dict:
        view = copy.deepcopy(entry.body)
        user = self._public_ip_user(entry)
        if user is not None:
            nic, config = user
            view["properties"]["ipConfiguration"] = {"id": config["id"]}
            if nic.meta.get("virtual_machine"):
                view["properties"]["ipAddress"] = self.state.public_ip
        return view

    def _public_ip_in_use(self, entry: Entry) -> ArmError | None:
        user = self._public_ip_user(entry)
        if user is None:
            return None
        return InUse(
            f"Public IP address {entry.id} can not be deleted since it is still allocated to resource "
            f"{user[1]['id']}. In order to delete the public IP, disassociate/detach the Public IP "
            "address from the resource.  To learn how to do this, see aka.ms/deletepublicip.",
            code="PublicIPAddressCannotBeDeleted",
        )

    # -- network interfaces --------------------------------------------------------------------

    def _private_address(self, subnet: dict, nic_id: str) -> str:
        """Azure's: the subnet's next free address from .4 (its first four are reserved). With the fake's
        loopback_private_ips, a loopback address of the NIC's own instead (127.0.0.2, .3, ... kept for the NIC's
        life), where a fake VM's sshd can listen, as a node does on its private address."""
        if self.state.loopback_private_ips:
            taken = self.state.loopback_private_ips
            return taken.setdefault(nic_id.lower(), f"127.0.0.{len(taken) + 1}")
        prefix = subnet["properties"].get("addressPrefix") or subnet["properties"]["addressPrefixes"][0]
        others = [u for u in self._subnet_users(subnet["id"]) if not u.lower().startswith(nic_id.lower() + "/")]
        return str(ipaddress.ip_network(prefix, strict=False).network_address + 4 + len(others))

    def _build_ip_configuration(self, nic_id: str, index: int, config: dict, primary_subnet: str | None) -> dict:
        """One IP configuration; a secondary one without a subnet takes the primary's, as ARM does."""
        name = config.get("name") or f"ipconfig{index + 1}"
        config_id = f"{nic_id}/ipConfigurations/{name}"
        properties = copy.deepcopy(config.get("properties") or {})
        subnet_ref = _ref_id(properties.get("subnet")) or (primary_subnet if index else None)
        if subnet_ref is None:
            raise InvalidParameter(f"IP configuration {config_id} must reference a subnet.", target="subnet")
        resolved = self._resolve_subnet(subnet_ref)
        if resolved is None:
            raise InvalidResourceReference(subnet_ref, nic_id)
        subnet = resolved[1]
        properties["subnet"] = {"id": subnet["id"]}
        public_ref = _ref_id(properties.get("publicIPAddress"))
        if public_ref is not None:
            public_ip = self._require_ref(PUBLIC_IP, public_ref, nic_id)
            user = self._public_ip_user(public_ip)
            if user is not None and not _same(user[0].id, nic_id):
                raise InUse(
                    f"Resource {config_id} is referencing public IP address {public_ip.id} that is already "
                    f"allocated to resource {user[1]['id']}.",
                    code="PublicIPAddressInUse",
                )
            properties["publicIPAddress"] = {**properties["publicIPAddress"], "id": public_ip.id}
        properties.setdefault("privateIPAllocationMethod", "Dynamic")
        if properties["privateIPAllocationMethod"].lower() == "dynamic" or not properties.get("privateIPAddress"):
            properties["privateIPAddress"] = self._private_address(subnet, nic_id)
        properties.setdefault("privateIPAddressVersion", "IPv4")
        properties.setdefault("primary", index == 0)
        return {"id": config_id, "name": name, "type": f"{NIC}/ipConfigurations", "properties": properties}

    def _build_nic(self, entry: Entry, properties: dict, existing: Entry | None) -> None:
        del existing
        configs = properties.get("ipConfigurations") or []
        if not configs:
            raise InvalidParameter(
                f"Network interface {entry.id} must have at least one IP configuration.", target="ipConfigurations"
            )
        built = {
            **copy.deepcopy(properties),
            "ipConfigurations": [
                self._build_ip_configuration(
                    entry.id, i, c, _ref_id((configs[0].get("properties") or {}).get("subnet"))
                )
                for i, c in enumerate(configs)
            ],
            "dnsSettings": {
                "dnsServers": [],
                "appliedDnsServers": [],
                "internalDomainNameSuffix": f"{entry.meta['resourceGuid'][:12]}.bx.internal.cloudapp.net",
            },
            "enableAcceleratedNetworking": bool(properties.get("enableAcceleratedNetworking", False)),
            "enableIPForwarding": bool(properties.get("enableIPForwarding", False)),
            "disableTcpStateTracking": bool(properties.get("disableTcpStateTracking", False)),
            "nicType": "Standard",
            "vnetEncryptionSupported": False,
        }
        nsg_ref = _ref_id(properties.get("networkSecurityGroup"))
        if nsg_ref is not None:
            built["networkSecurityGroup"] = {"id": self._require_ref(NSG, nsg_ref, entry.id).id}
        entry.body["properties"] = built
        entry.body["kind"] = "Regular"  # recording B, PUT networkInterfaces

    def _view_nic(self, entry: Entry) -> dict:
        view = copy.deepcopy(entry.body)
        vm_id = entry.meta.get("virtual_machine")
        if vm_id:
            view["properties"]["virtualMachine"] = {"id": vm_id}
            view["properties"]["macAddress"] = entry.meta["mac_address"]
            view["properties"]["primary"] = True
        return view

    def _nic_in_use(self, entry: Entry) -> ArmError | None:
        vm_id = entry.meta.get("virtual_machine")
        if not vm_id:
            return None
        return InUse(
            f"Network Interface {entry.id} is used by existing resource {vm_id}. In order to delete the "
            "network interface, it must be dissociated from the resource. To learn more, see "
            "aka.ms/deletenic.",
            code="NicInUse",
        )

    # -- used by the compute model -------------------------------------------------------------

    def attach_nic(self, nic: Entry, vm_id: str) -> None:
        """Mark `nic` as the VM's (Azure assigns the MAC address when it attaches)."""
        nic.meta["virtual_machine"] = vm_id
        digest = nic.meta["resourceGuid"].replace("-", "")[:10].upper()
        nic.meta.setdefault("mac_address", "00-0D-" + "-".join(digest[i : i + 2] for i in range(2, 10, 2)))

    def detach_nic(self, nic: Entry) -> None:
        nic.meta.pop("virtual_machine", None)

    def delete_nic_with_vm(self, nic: Entry) -> None:
        """VM delete with deleteOption Delete: the NIC goes, and public IPs marked deleteOption Delete too."""
        for config in nic.properties.get("ipConfigurations", []):
            public = config["properties"].get("publicIPAddress") or {}
            if (public.get("properties") or {}).get("deleteOption", "").lower() == "delete":
                public_ip = self.state.find(public["id"])
                if public_ip is not None:
                    self.state.remove(public_ip)
        self.state.remove(nic)

    def public_address_of(self, nic: Entry) -> str | None:
        for config in nic.properties.get("ipConfigurations", []):
            public_ref = _ref_id(config["properties"].get("publicIPAddress"))
            public_ip = self.state.find(public_ref) if public_ref else None
            if public_ip is not None:
                return public_ip.properties.get("ipAddress") or self.state.public_ip
        return None

    def require_nic(self, nic_id: str | None, referencing_id: str) -> Entry:
        return self._require_ref(NIC, nic_id, referencing_id)
