"""The URL every command ends with (public, direct, detached or a held tunnel), and `provision tunnel`."""

from bootstrap.remote import Remote
from provision import public, session, tunnel
from provision.errors import ProvisionError
from provision.output import Output
from provision.state import Record, StateStore
from provision.targets import Machine


def _show_running_tunnel(store: StateStore, name: str, token: str, out: Output) -> bool:
    """Print the URL of the tunnel that already serves `name`, if one runs; True if one does."""
    found = tunnel.running(store, name)
    if found is None:
        return False
    pid, port = found
    out.result(tunnel.lab_url(port, token))
    out.note(f"a tunnel to {name!r} already runs (pid {pid}); `provision down {name}` closes it and deletes all")
    return True


def _detach(store: StateStore, name: str, token: str, out: Output, local_port: int) -> None:
    tunnel.stop(store, name)
    port = local_port or tunnel.free_port()
    tunnel.spawn_detached(store, name, port)
    out.result(tunnel.lab_url(port, token))
    out.note(f"the tunnel runs in the background; `provision down {name}` closes it and deletes the VM")


def hold_tunnel(
    remote: Remote,
    remote_port: int,
    token: str,
    store: StateStore,
    name: str,
    out: Output,
    local_port: int = 0,
    show_url: bool = True,
) -> None:
    """Forward a local port to Jupyter until Ctrl-C; the machine keeps running."""

    def opened(port: int) -> None:
        if show_url:
            out.result(tunnel.lab_url(port, token))
        out.note(
            "Ctrl-C closes this tunnel only: the machine keeps running (and billing). "
            f"`provision tunnel {name}` reopens it; `provision down {name}` deletes everything."
        )

    try:
        tunnel.hold(remote, remote_port, local_port or tunnel.free_port(), opened, store, name)
    finally:
        remote.close()
    out.note(f"tunnel closed; {name!r} is still running (`provision down {name}` deletes it)")


def reopen_tunnel(
    name: str,
    store: StateStore,
    out: Output,
    *,
    local_port: int,
    detach: bool,
    show_url: bool = True,
) -> None:
    """`provision tunnel`: the URL again, through a new tunnel."""
    record = store.require(name)
    token = session.read_token(store, name)
    if record.jupyter is None or token is None:
        raise ProvisionError(f"Jupyter was never started on {name!r}; run `provision up --name {name}`")
    serve(record, token, store, out, local_port=local_port, detach=detach, show_url=show_url)


def serve(
    record: Record,
    token: str,
    store: StateStore,
    out: Output,
    *,
    local_port: int = 0,
    detach: bool = False,
    show_url: bool = True,
    remote: Remote | None = None,
) -> None:
    """Give the user the URL, the way this deployment is reached: public (TLS), directly on this machine,
    through the tunnel that already runs, a detached tunnel, or one held here until Ctrl-C.
    `remote` is an open connection to reuse (closed here); without one, one is opened only to hold a tunnel."""
    machine = Machine.from_dict(record.machine or {})
    name, port = record.name, record.jupyter["port"]
    if record.settings.get("access") == "public":
        public.show(record, token, store, out)
    elif not machine.over_ssh:
        out.result(tunnel.lab_url(port, token))
    elif detach:
        _detach(store, name, token, out, local_port)
    elif not _show_running_tunnel(store, name, token, out):
        remote = remote or session.open_remote(machine, out, timeout=30)
        hold_tunnel(remote, port, token, store, name, out, local_port, show_url)  # closes the connection
        return
    if remote is not None:
        remote.close()
