"""Azure: a GPU VM in a resource group of its own, through azure-mgmt-* (imported lazily)."""

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from provision import keys, power
from provision.errors import ProvisionError
from provision.output import Output
from provision.plan import Owner, Plan, Step, is_ours, make_plan, names_for
from provision.prices import Prices, Quote
from provision.settings import Settings
from provision.state import CLIENT_KEY_FILE, Journal, Record
from provision.targets import RUNNING, Machine, Move
from provision.targets.azure import idle, nodes, preflight, quota, resize
from provision.targets.azure.caller import detect_public_ip
from provision.targets.azure.clients import Clients
from provision.targets.azure.errors import AzureError, explain

MANAGED_FILTER = "tagName eq 'managed-by' and tagValue eq 'dsvm-kit'"
# Seconds an ARM operation may take. Creating and booting an NC VM with the DSVM image takes 3 to
# 10 minutes; a network resource seconds; deleting a group with a VM and its disk several minutes.
CREATE_WAIT = {"vm": 900.0}
CREATE_WAIT_DEFAULT = 300.0
DELETE_WAIT = 1800.0
POWER_WAIT = 900.0  # deallocate takes a minute or two; start, at worst as long as a first boot


class Grant(NamedTuple):
    """Idle stop's grant under way (AzureTarget._granting): the identity's principal id, then its role."""

    identity: Future
    role: Future


class AzureTarget:
    deletes_machine = True  # the VM goes with its resource group

    def __init__(self, settings: Settings):
        self.settings = settings
        self._clients: Clients | None = None
        self._choices: list[quota.Fit] | None = None  # what `up` tries, once quota has been read

    @property
    def quotas(self) -> quota.Quotas:
        """What regions offer and allow this subscription, and asking Azure for more (quota.py)."""
        return quota.Quotas(self._call, self.clients)

    @property
    def clients(self) -> Clients:
        if self._clients is None:
            self._clients = Clients(self.settings)
        return self._clients

    @property
    def owner(self) -> Owner:
        """Who is creating: the signed-in principal, tagged `owner`; `gc` leaves others' groups alone."""
        return self._call("sign in to Azure", lambda: self.clients.owner)

    def _call(self, action: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the SDK; turn its exceptions into one-line errors that say what to do."""
        from azure.core.exceptions import AzureError as SDKError

        try:
            return fn(*args, **kwargs)
        except SDKError as e:
            raise explain(e, action, self.settings.arm_endpoint) from None

    # -- create -------------------------------------------------------------------------

    def plan(
        self,
        journal: Journal | None = None,
        *,
        region: str | None = None,
        size: str | None = None,
        image_plan: dict | None = None,
        zone: str | None = None,
        accelerated_networking: bool = False,
        owner: Owner | None = None,
    ) -> Plan:
        """The plan for this deployment; with a journal, keys and times come from its record.
        The owner is the signed-in principal unless given (`plan` signs in to nothing)."""
        settings = self.settings
        client_public = keys.generate().public_openssh
        created = datetime.now(UTC)
        if journal is not None:
            client_public = self._client_key(journal)
            created = datetime.fromisoformat(journal.record.created)
        return make_plan(
            settings,
            region=region or settings.region,
            size=size or settings.size,
            allow_ip=settings.allow_ip or detect_public_ip(),
            ssh_public_key=client_public,
            host_key=keys.generate(comment=f"{settings.name}-host"),
            owner=owner or self.owner,
            now=created,
            image_plan=image_plan,
            zone=zone,
            accelerated_networking=accelerated_networking,
        )

    def _client_key(self, journal: Journal) -> str:
        """This deployment's client key (made once, 0600); returns its public line."""
        store, name = journal.store, journal.record.name
        public = store.read_secret(name, f"{CLIENT_KEY_FILE}.pub")
        if public is None:
            pair = keys.generate(comment=f"dsvm-kit-{name}")
            store.write_secret(name, CLIENT_KEY_FILE, pair.private_openssh)
            store.write_secret(name, f"{CLIENT_KEY_FILE}.pub", pair.public_openssh + "\n")
            public = pair.public_openssh
        return public.strip()

    def create(self, journal: Journal, out: Output, *, on_address: Callable[[Machine], None] | None = None) -> Machine:
        """Try each size, then each region, in the order given (and each zone of a region), less those without
        quota; move on from quota and capacity errors after deleting what the attempt made; stop at any other."""
        self._idle_preflight(out)
        attempts = self._candidates(out)
        failures: list[tuple[str, AzureError]] = []
        for choice in attempts:
            size, region = choice.size, choice.region
            if failures:
                self._clear(journal, out)
                out.note(f"trying {size} in {region}")
            started = time.monotonic()
            try:
                with out.step(f"Preflight: {size} in {region}"):
                    offer = self._preflight(choice)
                out.note(offer.describe())
                machine = self._create_in_a_zone(journal, out, offer, on_address)
                self._guard_cost(journal, out)
                return machine
            except AzureError as e:
                if not (e.is_quota or e.is_capacity) or len(attempts) == 1:
                    raise
                out.warn(_failed_attempt(f"{size} in {region}", e, started))
                failures.append((f"{size} in {region}: {e.code}", e))
        reasons = "; ".join(reason for reason, _ in failures)
        raise AzureError(
            f"none of the {len(attempts)} size and region choices could be had ({reasons}); "
            "add regions or sizes (--region a,b --size x,y), or request quota (`provision quota`)",
            failures[-1][1].code,
        )

    def _candidates(self, out: Output) -> list[quota.Fit]:
        """What `create` tries, once quota has been read (the first time, every region at once): those without
        quota left out, each with a note; none with quota, one line naming the command that asks for it."""
        if self._choices is None:
            with out.step(f"Sizes and quota in {', '.join(self.settings.regions)}"):
                fits = self.fits()
            self._choices = quota.choose(fits, out.note)
        return self._choices

    def fits(self) -> list[quota.Fit]:
        """Each size in each region, in the order `create` tries them, weighed against quota read now."""
        settings = self.settings
        regions = {region.name: region for region in self.quotas.regions(settings.regions)}
        return [
            quota.fit(regions[region], size, nodes=settings.nodes, spot=settings.spot)
            for size in settings.sizes
            for region in settings.regions
        ]

    # -- idle stop and auto-shutdown (provision/targets/azure/idle.py) ---------------------------

    def _idle_preflight(self, out: Output) -> None:
        """Before any write: a caller who may not grant roles gets one warning, idle stop off and the
        daily auto-shutdown on instead."""
        if self.settings.idle_stop is None:
            return
        scope = f"/subscriptions/{self.settings.subscription}"
        if self._call("ask Azure what you may do (permissions)", idle.may_grant, self.clients, scope):
            return
        when = self.settings.auto_shutdown or idle.FALLBACK_SHUTDOWN
        out.warn(
            "idle stop is off: you may not create roles and role assignments (Microsoft.Authorization/*/write, "
            "which Contributor lacks); "
            + ("no daily auto-shutdown either" if when == "off" else f"the VM deallocates daily at {when} instead")
        )
        self.settings = replace(self.settings, idle_stop=None, auto_shutdown=when)

    def _guard_cost(self, journal: Journal, out: Output) -> None:
        """Once the VM exists: what the idle agent needs to know (its identity's role was granted beside the
        network and the VM, `_granting`), and the daily schedule if any."""
        record, settings = journal.record, self.settings
        vm_ids = self._vm_ids(record)
        shutdown = settings.auto_shutdown or ("off" if settings.idle_stop is not None else idle.FALLBACK_SHUTDOWN)
        record.idle = {"idle_stop": settings.idle_stop, "auto_shutdown": None if shutdown == "off" else shutdown}
        if settings.idle_stop is not None:
            record.idle.update(
                vm_id=vm_ids[0], **({"vm_ids": vm_ids} if len(vm_ids) > 1 else {}), compute_api=idle.COMPUTE_API
            )
        if shutdown != "off":
            zone = record.idle["time_zone"] = idle.windows_time_zone()
            with out.step(f"Daily auto-shutdown at {shutdown} ({zone}), every node"):
                for vm_id in vm_ids:  # one schedule per VM: Azure's schedules each target one
                    group_id, vm_name = vm_id.split("/providers/")[0], vm_id.rsplit("/", 1)[-1]
                    schedule = idle.schedule_id(group_id, vm_name)
                    body = idle.schedule_body(record.settings["region"], vm_id, shutdown, zone)
                    with journal.creating("schedule", schedule):
                        self._call(
                            "create the auto-shutdown schedule",
                            idle.put_by_id,
                            self.clients,
                            schedule,
                            idle.SCHEDULE_API,
                            body,
                        )
        journal.save()

    def _vm_ids(self, record: Record) -> list[str]:
        """Every node's VM id, head first."""
        by_name = {r.id.rsplit("/", 1)[-1].lower(): r.id for r in record.resources if r.kind == "vm"}
        return [by_name[name.lower()] for name in self._vms()]

    @contextmanager
    def _granting(self, journal: Journal, plan: Plan) -> Iterator[Grant | None]:
        """With idle stop: the deployment's identity, then its role and the role's assignment, made in a thread of
        their own while the network and the VMs are made (idle.py says why). On the way out the thread is waited
        for, even when `up` fails, so that a rollback finds every role it made."""
        if not plan.managed_identity:
            yield None
            return
        pool = ThreadPoolExecutor(1, thread_name_prefix="idle-stop-grant")
        made = pool.submit(self._make_identity, journal, plan)
        try:
            yield Grant(made, pool.submit(self._grant_role, journal, plan, made))
        finally:
            pool.shutdown(wait=True)

    def _make_identity(self, journal: Journal, plan: Plan) -> str:
        """The deployment's user-assigned identity (synchronous: 201 with its principal); its principal id."""
        with journal.creating("identity", plan.identity_id):
            made = self._call(
                "create the idle-stop identity",
                idle.put_by_id,
                self.clients,
                plan.identity_id,
                idle.IDENTITY_API,
                idle.identity_body(plan.region, plan.tags),
            )
        return made.properties["principalId"]

    def _grant_role(self, journal: Journal, plan: Plan, made: Future) -> None:
        """The role that may read and deallocate the group's VMs, assigned to the identity at the group."""
        principal = made.result()
        role = idle.role_definition_id(plan.subscription, plan.group_id)
        with journal.creating("role_definition", role):
            self._call(
                "create the idle-stop role",
                idle.put_by_id,
                self.clients,
                role,
                idle.ROLE_API,
                idle.role_body(plan.group_id, plan.name),
            )
        assignment = idle.role_assignment_id(plan.group_id)
        with journal.creating("role_assignment", assignment):
            self._call(
                "assign the idle-stop role to its identity",
                idle.while_lagging,
                lambda: idle.put_by_id(self.clients, assignment, idle.ROLE_API, idle.assignment_body(role, principal)),
                "assigning the idle-stop role",
            )

    def _revoke(self, record: Record | None, out: Output) -> None:
        """The role assignment, then the role (a role still assigned cannot go): custom roles count against a
        per-directory limit and live at subscription scope, so deleting the group would leave the role."""
        found = [r for r in (record.resources if record else []) if r.kind in ("role_assignment", "role_definition")]
        if found:
            self._delete_roles(out, [r.id for r in sorted(found, key=lambda r: r.kind != "role_assignment")])

    def _delete_roles(self, out: Output, ids: list[str]) -> None:
        """Delete by id, in this order; an id that names nothing is fine (204)."""
        with out.step("Deleting the idle-stop role and its assignment"):
            for resource_id in ids:
                kind = "role assignment" if "/roleAssignments/" in resource_id else "role definition"
                self._call(f"delete the idle-stop {kind}", idle.delete_by_id, self.clients, resource_id, idle.ROLE_API)

    def check_access(self, out: Output) -> None:
        """The sign-in and the subscription, proven with one cheap read before anything else is asked; then
        which sizes and regions have quota (before the price of one without is shown)."""
        subscription = self.settings.subscription
        with out.step(f"Azure sign-in and subscription {subscription}"):
            self._call(f"read subscription {subscription}", self.clients.read_subscription)
        self._candidates(out)

    def quotes(self, *, offline: bool = False) -> list[Quote]:
        """The price of each size and region `create` may try (its OS disk included), from provision.prices;
        offline, from the cache or the shipped table only."""
        found, disk_gb, settings = Prices(offline=offline), self.settings.os_disk_gb, self.settings
        if self._choices is not None:  # quota read: only what `create` will try
            return [found.quote(choice.size, choice.region, disk_gb) for choice in self._choices]
        return [found.quote(size, region, disk_gb) for size in settings.sizes for region in settings.regions]

    def _offer(self, choice: quota.Fit, *, trusted_launch: bool) -> preflight.Offer:
        """Preflight's checks of a size against the image (generation, security type, disk) in its region."""
        settings = self.settings
        return preflight.check(
            self._call,
            self.clients.compute,
            choice,
            settings.image_parts,
            os_disk_gb=settings.os_disk_gb,
            trusted_launch=trusted_launch,
        )

    def _preflight(self, choice: quota.Fit) -> preflight.Offer:
        """Preflight's offer; an image plan's marketplace terms accepted (with --accept-terms) or an error."""
        settings = self.settings
        offer = self._offer(choice, trusted_launch=settings.trusted_launch)
        if offer.image_plan:
            assert settings.subscription
            preflight.ensure_terms(
                self._call,
                self.clients.resource,
                settings.subscription,
                offer.image_plan,
                settings.image_parts,
                settings.accept_terms,
            )
        return offer

    def _clear(self, journal: Journal, out: Output) -> None:
        """Delete what a failed attempt in a region created (the whole group), so the next region starts clean."""
        if journal.record.resources:
            self.destroy(journal.record, out, wait=True)
            journal.record.resources.clear()
            journal.save()

    def _create_in_a_zone(
        self, journal: Journal, out: Output, offer: preflight.Offer, on_address: Callable[[Machine], None] | None
    ) -> Machine:
        """Create the regional resources once, then the VM: first where Azure places it, then, while
        Azure has no capacity, pinned to each zone in turn. Between zones only the failed VM (with
        its disk and NIC) goes; the group, network, security group and public IP stay (a Standard
        public IP without zones serves a VM in any zone)."""
        plan = self.plan(
            journal,
            region=offer.region,
            size=offer.size,
            image_plan=offer.image_plan,
            accelerated_networking=offer.accelerated_networking,
        )
        self._create_group(journal, out, plan)
        with self._granting(journal, plan) as grant:
            self._build_network(journal, out, plan)
            if grant is not None:
                grant.identity.result()  # the head VM names it
            machine = self._place(journal, out, offer, plan, on_address)
            if grant is not None:
                with out.step("Idle stop: an identity that may only read and deallocate the deployment's VMs"):
                    grant.role.result()
        return machine

    def _place(
        self,
        journal: Journal,
        out: Output,
        offer: preflight.Offer,
        plan: Plan,
        on_address: Callable[[Machine], None] | None,
    ) -> Machine:
        """The VMs: where Azure places them, then while it has no capacity, pinned to each zone in turn."""
        plans = nodes.plans(plan)
        zone: str | None = None
        for next_zone in offer.zones:
            started = time.monotonic()
            try:
                return self._build_nodes(journal, out, [replace(p, zone=zone) for p in plans], on_address)
            except AzureError as e:
                if not e.is_capacity:
                    raise
                where = f"{offer.size} in {offer.region}, " + (f"zone {zone}" if zone else "any zone")
                out.warn(_failed_attempt(where, e, started))
                for node_plan in plans:
                    self._delete_vm(journal, out, node_plan, e)
            out.note(f"trying {offer.size} in zone {next_zone} of {offer.region}")
            zone = next_zone
        return self._build_nodes(journal, out, [replace(p, zone=zone) for p in plans], on_address)

    def _build_nodes(
        self, journal: Journal, out: Output, plans: list[Plan], on_address: Callable[[Machine], None] | None
    ) -> Machine:
        """The head's VM (`_build_vm`) and, for several nodes, the workers' at the same time; all or an error."""
        if len(plans) == 1:
            return self._build_vm(journal, out, plans[0], on_address)
        _, _ = self.clients.network, self.clients.compute  # made once here, before the threads share them
        out.note(f"{len(plans) - 1} worker node(s) beside the head: " + ", ".join(p.names.vm for p in plans[1:]))
        with ThreadPoolExecutor(len(plans)) as pool:
            head = pool.submit(self._build_vm, journal, out, plans[0], on_address)
            workers = [pool.submit(self._build_worker, journal, p) for p in plans[1:]]
        errors = [f.exception() for f in [head, *workers] if f.exception()]
        if errors:
            raise errors[0]
        machine = replace(head.result(), private_ip=self._private_ip(plans[0]))
        journal.record.machine = machine.to_dict()
        journal.record.nodes = [machine.to_dict(), *(f.result().to_dict() for f in workers)]
        journal.save()
        return machine

    def _build_worker(self, journal: Journal, plan: Plan) -> Machine:
        """A worker's NIC (no public IP) and VM; the machine at its private address, reached through the head."""
        *_, nic, vm = plan.steps()
        self._create(journal, plan, nic)
        self._create(journal, plan, vm)
        address = self._private_ip(plan)
        key_path = str(journal.store.path(journal.record.name, CLIENT_KEY_FILE))
        return Machine(
            address,
            plan.ssh_port,
            plan.admin_user,
            key_path,
            plan.host_key.public_openssh,
            private_ip=address,
            via_head=True,
        )

    def _private_ip(self, plan: Plan) -> str:
        """The private address Azure gave the node's NIC."""
        nic = self._call(
            f"read NIC {plan.names.nic}",
            self.clients.network.network_interfaces.get,
            plan.names.resource_group,
            plan.names.nic,
        )
        return nic.ip_configurations[0].private_ip_address

    def _create_group(self, journal: Journal, out: Output, plan: Plan) -> None:
        """The deployment's resource group (synchronous), recorded."""
        record = journal.record
        record.settings.update(region=plan.region, size=plan.size, resource_group=plan.names.resource_group)
        journal.save()
        group = plan.steps()[0]
        with (
            out.step(f"Resource group {group.name} in {plan.region}"),
            journal.creating(group.kind, group.id),
        ):
            self._call(
                "create the resource group",
                self.clients.resource.resource_groups.create_or_update,
                group.name,
                group.body,
            )

    def _build_network(self, journal: Journal, out: Output, plan: Plan) -> None:
        """What in the group is regional (VNet, security group, public IP), each recorded as it goes."""
        _, vnet, nsg, public_ip, _, _ = plan.steps()
        placement = plan.placement_step()
        with out.step(
            "Network: virtual network, security group and public IP" + (", placement group" * bool(placement))
        ):
            self._create_concurrently(journal, plan, [vnet, nsg, public_ip, *([placement] if placement else [])])

    def _build_vm(
        self, journal: Journal, out: Output, plan: Plan, on_address: Callable[[Machine], None] | None = None
    ) -> Machine:
        """The NIC and the VM of the plan (in its zone, if any); the machine as Azure names it. Its address is
        read first (the public IP is Static: Azure gives the address as it creates it) and handed to
        `on_address` before the VM is asked for, so that SSH may begin while Azure creates it."""
        record = journal.record
        machine = Machine(
            host="",
            port=plan.ssh_port,
            user=plan.admin_user,
            key_path=str(journal.store.path(record.name, CLIENT_KEY_FILE)),
            host_key=plan.host_key.public_openssh,
            ssh_from=plan.allow_ip,
        )
        machine = self._addressed(journal, machine, plan.names.resource_group, plan.names.public_ip)
        if on_address is not None:
            on_address(machine)
        *_, nic, vm = plan.steps()
        with out.step(f"Network interface {nic.name}"):
            self._create(journal, plan, nic)
        with out.step(f"VM {vm.name} ({plan.size}, {':'.join(plan.image)})"):
            self._create(journal, plan, vm)
        return machine

    def _addressed(self, journal: Journal, machine: Machine, group: str, public_ip: str) -> Machine:
        """The machine at its public IP's address and name as Azure reports them now, recorded."""
        address = self._call("read the public IP", self.clients.network.public_ip_addresses.get, group, public_ip)
        # The name as Azure gives it: its DNS zone differs by cloud (cloudapp.azure.com, .chinacloudapi.cn...).
        fqdn = address.dns_settings.fqdn if address.dns_settings else None
        machine = Machine(**{**machine.to_dict(), "host": address.ip_address, "fqdn": fqdn})
        journal.record.machine = machine.to_dict()
        journal.save()
        return machine

    def _delete_vm(self, journal: Journal, out: Output, plan: Plan, cause: AzureError) -> None:
        """Delete the VM that could not be placed, then its OS disk and NIC should its deleteOption
        have left them (deleting what is gone is a no-op); the record forgets the VM and NIC.
        Should that fail, the region is given up for `cause` (the group goes as a whole)."""
        n, compute, network = plan.names, self.clients.compute, self.clients.network
        try:
            with out.step(f"Deleting VM {n.vm}, its disk and NIC (keeping the network)"):
                for action, begin, name in (
                    (f"delete VM {n.vm}", compute.virtual_machines.begin_delete, n.vm),
                    (f"delete disk {n.os_disk}", compute.disks.begin_delete, n.os_disk),
                    (f"delete NIC {n.nic}", network.network_interfaces.begin_delete, n.nic),
                ):
                    poller = self._call(action, begin, n.resource_group, name, polling=self.clients.polling(probe=True))
                    self._call(action, poller.result)
        except AzureError as e:
            out.warn(f"{e}; no other zone of {plan.region} is tried")
            raise cause from None
        gone = {step.id.lower() for step in plan.steps() if step.kind in ("nic", "vm")}
        journal.record.resources = [r for r in journal.record.resources if r.id.lower() not in gone]
        journal.save()

    def _begin(self, plan: Plan, step: Step):
        network, compute = self.clients.network, self.clients.compute
        begin = {
            "vnet": network.virtual_networks.begin_create_or_update,
            "nsg": network.network_security_groups.begin_create_or_update,
            "public_ip": network.public_ip_addresses.begin_create_or_update,
            "nic": network.network_interfaces.begin_create_or_update,
            "vm": compute.virtual_machines.begin_create_or_update,
        }[step.kind]
        return begin(plan.names.resource_group, step.name, step.body, polling=self.clients.polling(probe=True))

    def _create(self, journal: Journal, plan: Plan, step: Step) -> None:
        action = f"create {step.kind.replace('_', ' ')} {step.name}"
        with journal.creating(step.kind, step.id):
            if step.kind == "placement_group":  # synchronous: 200 or 201 with the group (ProximityPlacementGroup_*)
                groups = self.clients.compute.proximity_placement_groups
                self._call(action, groups.create_or_update, plan.names.resource_group, step.name, step.body)
                return
            poller = self._call(action, self._begin, plan, step)
            self._finish(action, poller, CREATE_WAIT.get(step.kind, CREATE_WAIT_DEFAULT))

    def _finish(self, action: str, poller: Any, limit: float) -> None:
        """Wait for a long-running operation, at most `limit` seconds; its failure raises."""
        self._call(action, poller.wait, limit)
        if not poller.done():
            raise AzureError(
                f"{action}: Azure had not finished in {limit:g} s (it still reports the operation running)",
                "OperationTimedOut",
            )
        self._call(action, poller.result)

    def _create_concurrently(self, journal: Journal, plan: Plan, steps: list[Step]) -> None:
        _, _ = self.clients.network, self.clients.compute  # made once here, before the threads share them
        with ThreadPoolExecutor(len(steps)) as pool:
            futures = [pool.submit(self._create, journal, plan, step) for step in steps]
        errors = [f.exception() for f in futures if f.exception()]
        if errors:
            raise errors[0]

    # -- find, inspect, destroy ----------------------------------------------------------

    def _group_name(self, record: Record | None) -> str:
        if record and record.settings.get("resource_group"):
            return record.settings["resource_group"]
        assert self.settings.subscription
        return names_for(self.settings.name, self.settings.subscription).resource_group

    def _get_or_none(self, action: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Like _call, but a missing resource is None rather than an error."""
        from azure.core.exceptions import ResourceNotFoundError

        def get() -> Any:
            try:
                return fn(*args)
            except ResourceNotFoundError:
                return None

        return self._call(action, get)

    def _find_group(self, record: Record | None) -> str | None:
        """The deployment's group if it exists; by the record's name, else by tags alone."""
        name = self._group_name(record)
        groups = self.clients.resource.resource_groups
        group = self._get_or_none(f"read resource group {name}", groups.get, name)
        if group is None:
            tag_filter = f"tagName eq 'deployment' and tagValue eq '{self.settings.name}'"
            tagged = self._call("list resource groups", lambda: list(groups.list(filter=tag_filter)))
            group = next((g for g in tagged if is_ours(g.tags, self.settings.name)), None)
            if group is None:
                return None
        if not is_ours(group.tags, self.settings.name):
            raise ProvisionError(
                f"resource group {group.name} is not tagged managed-by=dsvm-kit and "
                f"deployment={self.settings.name}; refusing to delete it (if you are sure, "
                f"delete it yourself: `az group delete -n {group.name}`)"
            )
        return group.name

    def destroy(self, record: Record | None, out: Output, *, wait: bool) -> None:
        self._revoke(record, out)
        group = self._find_group(record)
        if group is None:
            out.note(f"no resource group of deployment {self.settings.name!r} exists; nothing to delete")
            return
        if not any(r.kind == "role_definition" for r in (record.resources if record else [])):
            self._revoke_lost_role(group, out)  # a lost record (or one made before its role) does not list it
        label = f"Deleting resource group {group}" + ("" if wait else " (not waiting)")
        with out.step(label):
            poller = self._call(
                f"delete resource group {group}",
                self.clients.resource.resource_groups.begin_delete,
                group,
                force_deletion_types="Microsoft.Compute/virtualMachines",
                polling=self.clients.polling(probe=True),
            )
            if wait:
                self._finish(f"delete resource group {group}", poller, DELETE_WAIT)

    def _revoke_lost_role(self, group: str, out: Output) -> None:
        """The idle-stop role and assignment of a deployment whose record is lost: the role outlives the group
        (subscription scope), and both ids follow from the group's (204 when there are none)."""
        assert self.settings.subscription
        group_id = f"/subscriptions/{self.settings.subscription}/resourceGroups/{group}"
        ids = [idle.role_assignment_id(group_id), idle.role_definition_id(self.settings.subscription, group_id)]
        try:
            self._delete_roles(out, ids)
        except AzureError as e:  # a caller who may not delete roles could not have made one
            if e.code != "AuthorizationFailed":
                raise

    def down_question(self, record: Record | None) -> str:
        where = f" in {record.settings.get('region')}" if record else " (found by its tags)"
        return f"Delete deployment {self.settings.name!r}{where}: its VM, disk, network and resource group?"

    def status(self, record: Record) -> dict:
        view = self._get_or_none(
            "read the VM's state",
            self.clients.compute.virtual_machines.instance_view,
            self._group_name(record),
            self.settings.name,
        )
        if view is None:
            return {"power_state": "not found"}
        codes = [s.code for s in view.statuses or [] if s.code.startswith("PowerState/")]
        vm = self._get_or_none(
            "read the VM", self.clients.compute.virtual_machines.get, self._group_name(record), self.settings.name
        )
        security_type = (vm.security_profile or {}).get("securityType") if vm is not None else None
        return {
            "power_state": codes[0].split("/", 1)[1] if codes else "unknown",
            "security_type": security_type or "",  # as Azure reports it; status hides it when empty
        }

    # -- stop, start -----------------------------------------------------------------------

    def _vms(self) -> list[str]:
        """Every node's VM name, head first (one for a single node)."""
        assert self.settings.subscription
        return nodes.vm_names(self.settings.name, self.settings.subscription, self.settings.nodes)

    def _power(self, verb: str, begin: Callable[..., Any], group: str) -> None:
        """Start the power action on every node's VM at once, then wait for each."""
        vms = self._vms()
        pollers = [(vm, self._call(f"{verb} VM {vm}", begin, group, vm, polling=self.clients.polling())) for vm in vms]
        for vm, poller in pollers:
            self._finish(f"{verb} VM {vm}", poller, POWER_WAIT)

    def stop(self, record: Record, out: Output) -> None:
        """Deallocate the VM (every node's): its compute stops billing; its disk and static IP stay (and bill)."""
        vms = self._vms()
        with out.step(f"Deallocating VM {', '.join(vms)}"):
            self._power("deallocate", self.clients.compute.virtual_machines.begin_deallocate, self._group_name(record))

    def start(self, journal: Journal, out: Output) -> Machine:
        """Start the deallocated VM (every node's); its address read again (a Static public IP keeps it). No capacity
        for it now is one line that says to try later; the record stays as it was."""
        record, vms = journal.record, self._vms()
        with out.step(f"Starting VM {', '.join(vms)}"):
            try:
                self._power("start", self.clients.compute.virtual_machines.begin_start, self._group_name(record))
            except AzureError as e:
                if not e.is_capacity:
                    raise
                size, region = record.settings.get("size"), record.settings.get("region")
                raise ProvisionError(
                    f"Azure has no {'Spot ' if self.settings.spot else ''}capacity for {size} in {region} right now "
                    f"({e.code}); try `provision start {record.name}` later"
                ) from None
        return self._readdressed(journal)

    def _readdressed(self, journal: Journal) -> Machine:
        """The head at its public address as Azure reports it after a start, recorded (and as the first node)."""
        record = journal.record
        assert self.settings.subscription
        public_ip = names_for(record.name, self.settings.subscription).public_ip
        machine = self._addressed(journal, Machine.from_dict(record.machine or {}), self._group_name(record), public_ip)
        if record.nodes:
            record.nodes[0] = machine.to_dict()
            journal.save()
        return machine

    # -- resize ----------------------------------------------------------------------------

    def plan_resize(self, record: Record, size: str, out: Output) -> Move:
        """Before any change: the VM runs or is deallocated; `size` is offered in its region and not restricted;
        quota holds the vCPU difference x nodes (all of the new size's, for a deallocated VM, which starts on it
        later); the image's generation and the VM's security type suit it; so does accelerated networking, where
        the NIC has it. In place when every node's hardware offers the size (vmSizes); a deallocated VM may take
        any size its region offers."""
        settings, group = self.settings, self._group_name(record)
        old, region = record.settings["size"], record.settings["region"]
        if size.lower() == old.lower():
            raise ProvisionError(f"{record.name!r} is already {old}; nothing to change")
        live = self.status(record)
        running = live["power_state"] == RUNNING
        if not running and live["power_state"] != power.DEALLOCATED:
            raise ProvisionError(
                f"the VM of {record.name!r} is {live['power_state']}; `provision start {record.name}` first, "
                "then resize"
            )
        with out.step(f"Checking {size} in {region}: offer, quota, image, network"):
            offered = self.quotas.region(region)
            new = quota.fit(offered, size, nodes=settings.nodes, spot=settings.spot)
            short = resize.shortfall(
                offered, new, quota.fit(offered, old, nodes=settings.nodes, spot=settings.spot), running=running
            )
            if short is not None:
                raise short
            offer = self._offer(new, trusted_launch=live["security_type"] == "TrustedLaunch")
            self._check_network(record, offer)
            in_place = running and all(size.lower() in self._cluster_sizes(group, vm) for vm in self._vms())
        prices = Prices()
        return Move(
            record.name,
            prices.quote(old, region, settings.os_disk_gb),
            prices.quote(new.size, region, settings.os_disk_gb),
            in_place,
            settings.nodes,
            settings.spot,
            running,
        )

    def _check_network(self, record: Record, offer: preflight.Offer) -> None:
        """A NIC with accelerated networking needs a size that has it (Azure refuses the PUT otherwise)."""
        assert self.settings.subscription
        nic = names_for(record.name, self.settings.subscription).nic
        found = self._call(
            f"read NIC {nic}", self.clients.network.network_interfaces.get, self._group_name(record), nic
        )
        if found.enable_accelerated_networking and not offer.accelerated_networking:
            raise AzureError(
                f"size {offer.size} does not support accelerated networking, which the VM's network interface "
                "uses; choose another --size",
                "VMSizeIsNotPermittedToEnableAcceleratedNetworking",
            )

    def _cluster_sizes(self, group: str, vm: str) -> set[str]:
        """The sizes (lower case) the hardware that runs the VM offers it now (VirtualMachines_ListAvailableSizes)."""
        listed = self._call(
            f"list the sizes VM {vm} may move to",
            lambda: list(self.clients.compute.virtual_machines.list_available_sizes(group, vm)),
        )
        return {s.name.lower() for s in listed}

    def resize(self, journal: Journal, move: Move, out: Output, on_power: Callable[[str, str], None]) -> Machine:
        """In place (Azure restarts each VM on its new size), or deallocate, resize and start; every node at once.
        No capacity or quota for the new size: the old one back, the VMs started as they were, one line."""
        record, group, vms = journal.record, self._group_name(journal.record), self._vms()
        old, new = move.old.size, move.new.size
        compute = self.clients.compute.virtual_machines
        if not move.running:  # nothing is allocated, so nothing to put back: a refusal leaves the size as it was
            with out.step(f"Resizing VM {', '.join(vms)} to {new} (it stays deallocated)"):
                self._set_size(group, new)
            return Machine.from_dict(record.machine or {})
        try:
            if move.in_place:
                with out.step(f"Resizing VM {', '.join(vms)} to {new} in place (Azure restarts it)"):
                    self._set_size(group, new)
            else:
                out.note(f"{new} is not offered on the hardware that runs the VM: deallocating it to move")
                with out.step(f"Deallocating VM {', '.join(vms)}"):
                    self._power("deallocate", compute.begin_deallocate, group)
                on_power("deallocated", f"resizing to {new}")
                with out.step(f"Resizing VM {', '.join(vms)} to {new}"):
                    self._set_size(group, new)
                with out.step(f"Starting VM {', '.join(vms)} on {new}"):
                    self._power("start", compute.begin_start, group)
        except AzureError as e:
            if not (e.is_capacity or e.is_quota):
                raise
            self._put_back(group, old, out)
            on_power(RUNNING, f"back on {old}: Azure could not place {new}")
            raise ProvisionError(
                f"Azure could not allocate {new} in {record.settings['region']} ({e.code}); {record.name!r} is back "
                f"on {old} and running"
            ) from None
        return self._readdressed(journal)

    def _put_back(self, group: str, old: str, out: Output) -> None:
        """After a failed move: every node on its old size, and running (a start of a running VM does nothing)."""
        with out.step(f"Putting {old} back and starting the VM as it was"):
            self._set_size(group, old)
            self._power("start", self.clients.compute.virtual_machines.begin_start, group)

    def _set_size(self, group: str, size: str) -> None:
        """GET each node's VM, PUT it back with the new size (as `az vm resize` does), all nodes at once."""
        compute = self.clients.compute.virtual_machines  # made once here, before the threads share it

        def one(vm: str) -> None:
            model = self._call(f"read VM {vm}", compute.get, group, vm)
            model.hardware_profile.vm_size = size
            action = f"resize VM {vm} to {size}"
            poller = self._call(
                action, compute.begin_create_or_update, group, vm, model, polling=self.clients.polling()
            )
            self._finish(action, poller, POWER_WAIT)

        with ThreadPoolExecutor(len(self._vms())) as pool:
            futures = [pool.submit(one, vm) for vm in self._vms()]
        errors = [f.exception() for f in futures if f.exception()]
        if errors:
            raise errors[0]

    def list_groups(self) -> list[dict]:
        """Every resource group in the subscription that dsvm-kit tagged as its own."""
        groups = self._call(
            "list resource groups",
            lambda: list(self.clients.resource.resource_groups.list(filter=MANAGED_FILTER)),
        )
        return [
            {
                "resource_group": g.name,
                "deployment": (g.tags or {}).get("deployment", ""),
                "region": g.location,
                "owner": (g.tags or {}).get("owner", ""),
                "owner_name": (g.tags or {}).get("owner-name", ""),
                "created": (g.tags or {}).get("created", ""),
            }
            for g in groups
        ]


def _failed_attempt(where: str, error: AzureError, started: float) -> str:
    """The warning for an attempt given up: where, the code, what it cost, and why."""
    return f"{where}: {error.code} after {time.monotonic() - started:.1f} s: {error}"


__all__ = ["AzureError", "AzureTarget"]
