"""What `provision up` will create on Azure: names, tags and request bodies. Pure, no I/O."""

import base64
import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime

from provision.keys import KeyPair, fingerprint
from provision.settings import Settings

MANAGED_BY = "dsvm-kit"
VNET_PREFIX = "10.42.0.0/16"
SUBNET_PREFIX = "10.42.0.0/24"
SSHD_PORT_DROP_IN = "/etc/ssh/sshd_config.d/60-dsvm-kit-port.conf"


@dataclass(frozen=True)
class Names:
    resource_group: str
    vnet: str
    subnet: str
    nsg: str
    public_ip: str
    nic: str
    vm: str
    os_disk: str
    dns_label: str
    placement_group: str = ""
    identity: str = ""  # the user-assigned identity with which the head deallocates the deployment's VMs when idle


def names_for(name: str, subscription: str) -> Names:
    """Resource names derived from the deployment name; the DNS label is unique per subscription."""
    digest = hashlib.sha256(f"{subscription}:{name}".encode()).hexdigest()[:6]
    return Names(
        resource_group=f"dsvm-{name}",
        vnet=f"{name}-vnet",
        subnet="default",
        nsg=f"{name}-nsg",
        public_ip=f"{name}-ip",
        nic=f"{name}-nic",
        vm=name,
        os_disk=f"{name}-osdisk",
        dns_label=f"{name}-{digest}",
        placement_group=f"{name}-ppg",
        identity=f"{name}-idle",
    )


def node_names(names: Names, node: int) -> Names:
    """Names of node `node`: the head (0) keeps the deployment's; worker k is `<name>-k` with its NIC and disk."""
    if node == 0:
        return names
    vm = f"{names.vm}-{node}"
    return replace(names, vm=vm, nic=f"{vm}-nic", os_disk=f"{vm}-osdisk")


@dataclass(frozen=True)
class Owner:
    """The Azure principal creating: its object id, and a name a person knows it by ("" if none)."""

    id: str
    name: str = ""


TAG_VALUE_MAX = 256  # Azure's limit on a tag value's length


def tags_for(name: str, owner: Owner, now: datetime) -> dict[str, str]:
    """`owner` is the principal's object id (`gc` compares it); `owner-name` is for people."""
    return {
        "managed-by": MANAGED_BY,
        "deployment": name,
        "owner": owner.id,
        **({"owner-name": owner.name[:TAG_VALUE_MAX]} if owner.name else {}),
        "created": now.isoformat(timespec="seconds"),
    }


def is_ours(tags: dict[str, str] | None, name: str) -> bool:
    """True when a resource group's tags say dsvm-kit made it for this deployment."""
    tags = tags or {}
    return tags.get("managed-by") == MANAGED_BY and tags.get("deployment") == name


@dataclass(frozen=True)
class Step:
    """One resource to create: `kind` says which API, `body` is the REST-shaped request."""

    kind: str  # resource_group | vnet | nsg | public_ip | placement_group | nic | vm
    name: str
    id: str
    body: dict


@dataclass(frozen=True)
class Plan:
    name: str
    subscription: str
    region: str
    size: str
    image: tuple[str, str, str, str]
    image_plan: dict | None  # the image's purchase plan, if it has one
    zone: str | None  # the availability zone to pin the VM to; None lets Azure place it
    accelerated_networking: bool  # the NIC asks for it: only when preflight found the size supports it
    trusted_launch: bool  # securityType TrustedLaunch (Secure Boot, vTPM); otherwise Standard, stated
    admin_user: str
    os_disk_gb: int
    allow_ip: str
    ssh_port: int
    open_jupyter: bool
    jupyter_port: int
    names: Names
    tags: dict[str, str]
    ssh_public_key: str
    host_key: KeyPair
    spot: bool = False  # priority Spot, deallocated on eviction
    max_price: float = -1.0  # Spot's billingProfile.maxPrice in $/hour; -1: up to pay-as-you-go
    nodes: int = 1  # VMs in the deployment; with more than one, all in one proximity placement group
    node: int = 0  # which of them this plan's NIC and VM are: 0 is the head, the only one with a public IP
    managed_identity: bool = False  # the VM carries the deployment's identity, to deallocate its VMs when idle

    @property
    def group_id(self) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.names.resource_group}"

    def network_id(self, kind: str, name: str) -> str:
        return f"{self.group_id}/providers/Microsoft.Network/{kind}/{name}"

    @property
    def subnet_id(self) -> str:
        vnet = self.network_id("virtualNetworks", self.names.vnet)
        return f"{vnet}/subnets/{self.names.subnet}"

    @property
    def vm_id(self) -> str:
        return f"{self.group_id}/providers/Microsoft.Compute/virtualMachines/{self.names.vm}"

    @property
    def identity_id(self) -> str:
        return f"{self.group_id}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{self.names.identity}"

    @property
    def placement_group_id(self) -> str:
        return f"{self.group_id}/providers/Microsoft.Compute/proximityPlacementGroups/{self.names.placement_group}"

    def for_node(self, node: int, host_key: KeyPair) -> "Plan":
        """The plan of node `node` (its NIC and VM, with its own host key); the shared resources are the same.
        No managed identity: the head's deallocates every node when idle, a worker needs none."""
        return replace(self, node=node, host_key=host_key, names=node_names(self.names, node), managed_identity=False)

    def placement_step(self) -> Step | None:
        """The proximity placement group that keeps several nodes close (none for one node)."""
        if self.nodes == 1:
            return None
        # ProximityPlacementGroup_CreateOrUpdate.json; the intent lets Azure place the group where the size is.
        body = {
            "location": self.region,
            "tags": self.tags,
            "properties": {"proximityPlacementGroupType": "Standard", "intent": {"vmSizes": [self.size]}},
        }
        return Step("placement_group", self.names.placement_group, self.placement_group_id, body)

    def steps(self) -> list[Step]:
        """Every resource in creation order: group; VNet, NSG, IP (concurrently); NIC; VM."""
        n = self.names
        return [
            Step("resource_group", n.resource_group, self.group_id, self._group_body()),
            Step("vnet", n.vnet, self.network_id("virtualNetworks", n.vnet), self._vnet_body()),
            Step("nsg", n.nsg, self.network_id("networkSecurityGroups", n.nsg), self._nsg_body()),
            Step(
                "public_ip",
                n.public_ip,
                self.network_id("publicIPAddresses", n.public_ip),
                self._public_ip_body(),
            ),
            Step("nic", n.nic, self.network_id("networkInterfaces", n.nic), self._nic_body()),
            Step("vm", n.vm, self.vm_id, self._vm_body()),
        ]

    def every_step(self) -> list[Step]:
        """steps(), then for several nodes the placement group and each worker's NIC and VM (shown with the head's
        host key: each worker gets its own when `up` makes it)."""
        placement = self.placement_step()
        if placement is None:
            return self.steps()
        workers = [step for k in range(1, self.nodes) for step in self.for_node(k, self.host_key).steps()[-2:]]
        return [*self.steps(), placement, *workers]

    def _group_body(self) -> dict:
        return {"location": self.region, "tags": self.tags}

    def _vnet_body(self) -> dict:
        return {
            "location": self.region,
            "tags": self.tags,
            "properties": {
                "addressSpace": {"addressPrefixes": [VNET_PREFIX]},
                "subnets": [{"name": self.names.subnet, "properties": {"addressPrefix": SUBNET_PREFIX}}],
            },
        }

    def _nsg_body(self) -> dict:
        rules = [_inbound_rule("allow-ssh", 1000, self.allow_ip, self.ssh_port)]
        if self.open_jupyter:
            rules.append(_inbound_rule("allow-jupyter", 1010, self.allow_ip, self.jupyter_port))
        return {"location": self.region, "tags": self.tags, "properties": {"securityRules": rules}}

    def _public_ip_body(self) -> dict:
        return {
            "location": self.region,
            "tags": self.tags,
            "sku": {"name": "Standard", "tier": "Regional"},
            "properties": {
                "publicIPAllocationMethod": "Static",
                "publicIPAddressVersion": "IPv4",
                "dnsSettings": {"domainNameLabel": self.names.dns_label},
            },
        }

    def _nic_body(self) -> dict:
        return {
            "location": self.region,
            "tags": self.tags,
            "properties": {
                "ipConfigurations": [
                    {
                        "name": "ipconfig1",
                        "properties": {
                            "subnet": {"id": self.subnet_id},
                            "privateIPAllocationMethod": "Dynamic",
                            **self._public_address(),
                        },
                    }
                ],
                "networkSecurityGroup": {"id": self.network_id("networkSecurityGroups", self.names.nsg)},
                "enableAcceleratedNetworking": self.accelerated_networking,
            },
        }

    def _public_address(self) -> dict:
        """Only the head has a public IP; workers are reached through it, on their private addresses."""
        if self.node:
            return {}
        return {"publicIPAddress": {"id": self.network_id("publicIPAddresses", self.names.public_ip)}}

    def _vm_body(self) -> dict:
        publisher, offer, sku, version = self.image
        body = {
            "location": self.region,
            "tags": self.tags,
            "properties": {
                "hardwareProfile": {"vmSize": self.size},
                "storageProfile": {
                    "imageReference": {
                        "publisher": publisher,
                        "offer": offer,
                        "sku": sku,
                        "version": version,
                    },
                    "osDisk": {
                        "name": self.names.os_disk,
                        "createOption": "FromImage",
                        "caching": "ReadWrite",
                        "diskSizeGB": self.os_disk_gb,
                        "managedDisk": {"storageAccountType": "StandardSSD_LRS"},
                        "deleteOption": "Delete",
                    },
                },
                "osProfile": {
                    "computerName": self.names.vm,
                    "adminUsername": self.admin_user,
                    "customData": base64.b64encode(cloud_config(self.host_key, self.ssh_port).encode()).decode(),
                    "linuxConfiguration": {
                        "disablePasswordAuthentication": True,
                        "ssh": {
                            "publicKeys": [
                                {
                                    "path": f"/home/{self.admin_user}/.ssh/authorized_keys",
                                    "keyData": self.ssh_public_key,
                                }
                            ]
                        },
                    },
                },
                "networkProfile": {
                    "networkInterfaces": [
                        {
                            "id": self.network_id("networkInterfaces", self.names.nic),
                            "properties": {"primary": True, "deleteOption": "Delete"},
                        }
                    ]
                },
                "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}},
                "securityProfile": self._security_profile(),
            },
        }
        if self.spot:
            # Field names: VirtualMachine_List_MaximumSet_Gen.json; Deallocate keeps the disk, so `start` resumes.
            body["properties"].update(
                priority="Spot", evictionPolicy="Deallocate", billingProfile={"maxPrice": self.max_price}
            )
        if self.nodes > 1:
            body["properties"]["proximityPlacementGroup"] = {"id": self.placement_group_id}
        if self.image_plan:
            body["plan"] = self.image_plan
        if self.zone:
            body["zones"] = [self.zone]
        if self.managed_identity:  # qs-configure-rest-vm: a user-assigned identity, its id a key of an empty object
            body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {self.identity_id: {}}}
        return body

    def _security_profile(self) -> dict:
        """Stated, never left to Azure's default (which a subscription feature can turn into Trusted Launch)."""
        if not self.trusted_launch:
            return {"securityType": "Standard"}
        # VirtualMachine_Create_WithUefiSettings.json
        return {"securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}}

    @property
    def security_type(self) -> str:
        return self._security_profile()["securityType"]


def _inbound_rule(name: str, priority: int, source: str, port: int) -> dict:
    return {
        "name": name,
        "properties": {
            "priority": priority,
            "direction": "Inbound",
            "access": "Allow",
            "protocol": "Tcp",
            "sourceAddressPrefix": source,
            "sourcePortRange": "*",
            "destinationAddressPrefix": "*",
            "destinationPortRange": str(port),
        },
    }


def cloud_config(host_key: KeyPair, ssh_port: int) -> str:
    """cloud-init user data that installs our pre-generated Ed25519 host key on the VM, and
    makes sshd listen on `ssh_port` when that is not 22.

    The port goes in a drop-in: Ubuntu 22.04's sshd_config starts with `Include
    /etc/ssh/sshd_config.d/*.conf`, and 22.04 starts sshd from ssh.service, not from socket
    activation (which came with 22.10). write_files runs in cloud-init's network stage, which
    is ordered before sshd.service (as ssh_keys relies on too), so sshd's first start reads
    it; the reload in runcmd covers an image whose sshd started earlier, and leaves open
    sessions alone. JSON is valid YAML, so the document needs no YAML library to write.
    """
    config: dict = {
        "ssh_keys": {
            "ed25519_private": host_key.private_openssh,
            "ed25519_public": host_key.public_openssh,
        }
    }
    if ssh_port != 22:
        config["write_files"] = [
            {"path": SSHD_PORT_DROP_IN, "permissions": "0644", "content": f"Port {ssh_port}\n"},
        ]
        config["runcmd"] = [["systemctl", "try-reload-or-restart", "ssh"]]
    return "#cloud-config\n" + json.dumps(config, indent=2) + "\n"


def make_plan(
    settings: Settings,
    *,
    region: str,
    size: str,
    allow_ip: str,
    ssh_public_key: str,
    host_key: KeyPair,
    owner: Owner,
    now: datetime,
    image_plan: dict | None = None,
    zone: str | None = None,
    accelerated_networking: bool = False,
) -> Plan:
    assert settings.subscription, "validated settings for Azure always carry a subscription"
    return Plan(
        name=settings.name,
        subscription=settings.subscription,
        region=region,
        size=size,
        image=settings.image_parts,
        image_plan=image_plan,
        zone=zone,
        accelerated_networking=accelerated_networking,
        trusted_launch=settings.trusted_launch,
        admin_user=settings.admin_user,
        os_disk_gb=settings.os_disk_gb,
        allow_ip=allow_ip,
        ssh_port=settings.ssh_port,
        open_jupyter=settings.access == "public",
        jupyter_port=settings.jupyter_port,
        names=names_for(settings.name, settings.subscription),
        tags=tags_for(settings.name, owner, now),
        ssh_public_key=ssh_public_key,
        host_key=host_key,
        spot=settings.spot,
        max_price=settings.max_price,
        nodes=settings.nodes,
        managed_identity=settings.idle_stop is not None,
    )


def summary_rows(plan: Plan) -> list[tuple[str, str, str]]:
    """(resource, name, what matters) rows for a person to review, like `terraform plan`."""
    n = plan.names
    rules = [f"TCP {plan.ssh_port} (SSH) from {plan.allow_ip}"]
    if plan.open_jupyter:
        rules.append(f"TCP {plan.jupyter_port} (Jupyter, TLS) from {plan.allow_ip}")
    return [
        ("resource group", n.resource_group, f"{plan.region}; tags " + _tags_text(plan.tags)),
        ("virtual network", n.vnet, f"{VNET_PREFIX}, subnet {n.subnet} {SUBNET_PREFIX}"),
        ("security group", n.nsg, "allow " + "; ".join(rules) + "; deny all other inbound"),
        ("public IP", n.public_ip, f"Standard, static, DNS label {n.dns_label} in {plan.region}"),
        (
            "network interface",
            n.nic,
            f"{n.subnet} + {n.public_ip} + {n.nsg}; accelerated networking "
            f"{'on' if plan.accelerated_networking else 'off'}; deleted with the VM",
        ),
        (
            "virtual machine",
            n.vm,
            f"{plan.size}, image {':'.join(plan.image)}, {plan.os_disk_gb} GB StandardSSD "
            f"disk deleted with the VM; user {plan.admin_user}, SSH key only "
            f"({fingerprint(plan.ssh_public_key)}); host key pinned "
            f"({fingerprint(plan.host_key.public_openssh)}); security type {plan.security_type}; boot diagnostics on"
            + _spot_text(plan),
        ),
        *_nodes_rows(plan),
    ]


def _nodes_rows(plan: Plan) -> list[tuple[str, str, str]]:
    if plan.nodes == 1:
        return []
    workers = [node_names(plan.names, k).vm for k in range(1, plan.nodes)]
    return [
        (
            "proximity placement group",
            plan.names.placement_group,
            f"Standard, for {plan.size}; holds all {plan.nodes} nodes close together",
        ),
        (
            "worker VMs",
            ", ".join(workers),
            f"like {plan.names.vm}, each with its own NIC (private address only, reached through "
            f"{plan.names.vm}), disk and pinned host key",
        ),
    ]


def _spot_text(plan: Plan) -> str:
    if not plan.spot:
        return ""
    limit = "up to the pay-as-you-go price" if plan.max_price == -1 else f"at most ${plan.max_price}/hour"
    return f"; Spot, {limit}, deallocated (not deleted) when Azure evicts it"


def _tags_text(tags: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in tags.items())


def redacted(body: dict) -> dict:
    """A request body safe to print: customData holds the VM's private host key."""
    os_profile = body.get("properties", {}).get("osProfile")
    if not os_profile or "customData" not in os_profile:
        return body
    properties = {**body["properties"], "osProfile": {**os_profile, "customData": "<redacted>"}}
    return {**body, "properties": properties}
