"""The `provision` command: parse, call the core, print, and map errors to exit codes here only.

The core (provision.commands and friends) is imported inside each command so that `--help`
costs neither the Azure SDK nor paramiko.
"""

import os
import sys
from gc import freeze
from pathlib import Path
from typing import Annotated, Any

import typer

from provision.errors import ExitStatus, ProvisionError, UsageError
from provision.output import Output, configure_logging, show_chain

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="A GPU Jupyter notebook on Azure, proven to train on the GPU before you get the URL.",
)

Name = Annotated[str | None, typer.Option("--name", "-n", help="Deployment name [default: dsvm].")]
NameArg = Annotated[str | None, typer.Argument(help="Deployment name [default: dsvm].")]
Target = Annotated[str | None, typer.Option(help="azure (default), local, or ssh://user@host[:port].")]
Region = Annotated[
    str | None,
    typer.Option(help="Azure region, or several in order of preference: eastus,westus2."),
]
Size = Annotated[
    str | None,
    typer.Option(help="VM size, or several in order of preference [default: Standard_NC4as_T4_v3]."),
]
Image = Annotated[str | None, typer.Option(help="Image URN [default: the Ubuntu 22.04 DSVM].")]
AdminUser = Annotated[str | None, typer.Option(help="Admin user on the VM [default: azureuser].")]
OsDisk = Annotated[int | None, typer.Option(help="OS disk size in GB [default: 256].")]
AllowIp = Annotated[
    str | None,
    typer.Option(help="Address or CIDR allowed to reach the VM [default: yours, detected]."),
]
SshPort = Annotated[int | None, typer.Option(help="SSH port of the machine [default: 22].")]
Cloud = Annotated[str | None, typer.Option(help="public (default), china or usgov.")]
Subscription = Annotated[
    str | None,
    typer.Option(help="Subscription id [default: AZURE_SUBSCRIPTION_ID or the Azure CLI's]."),
]
Access = Annotated[
    str | None,
    typer.Option(help="tunnel (default: Jupyter via SSH) or public (TLS, your address only)."),
]
JupyterPort = Annotated[
    int | None, typer.Option(help="Jupyter's port on the machine with --access public [default: 8888].")
]
AllowCpu = Annotated[bool, typer.Option("--allow-cpu", help="Accept a machine without a GPU.")]
TrustedLaunch = Annotated[
    bool, typer.Option("--trusted-launch", help="Trusted Launch (Secure Boot, vTPM) instead of Standard security.")
]
AcceptTerms = Annotated[
    bool, typer.Option("--accept-terms", help="Accept the image's marketplace terms for this subscription.")
]
Spot = Annotated[
    bool, typer.Option("--spot", help="A Spot VM: much cheaper, deallocated when Azure needs the capacity back.")
]
MaxPrice = Annotated[
    float | None,
    typer.Option(help="With --spot: the most US$/hour to pay (Azure evicts above it) [default: -1, pay-as-you-go]."),
]
IdleStop = Annotated[
    str | None,
    typer.Option(help="Minutes without use after which the VM deallocates itself, or off [default: 60]."),
]
AutoShutdown = Annotated[
    str | None,
    typer.Option(
        help="Daily deallocation at HH:MM (this machine's time zone), or off [default: only if idle stop cannot be]."
    ),
]
RemotePython = Annotated[
    str | None, typer.Option(help="Python on the machine to run Jupyter with [default: detected].")
]
HostKey = Annotated[str | None, typer.Option(help="Host key of an ssh:// target ('ssh-ed25519 AAAA...' or a file).")]
Identity = Annotated[str | None, typer.Option(help="Private SSH key for an ssh:// target.")]
Dataset = Annotated[str | None, typer.Option(help="Notebook check dataset: cifar10, digits or synthetic.")]
Epochs = Annotated[int | None, typer.Option(help="Epochs of the notebook check [default: 2].")]
Nodes = Annotated[
    int | None, typer.Option(help="GPU VMs in one private network, the first the head (Azure only) [default: 1].")
]
Environment = Annotated[
    str | None,
    typer.Option(
        help="requirements.txt or environment.yml of the project: built on the machine over its CUDA torch env, "
        "the project's Jupyter kernel."
    ),
]
EnvironmentAllowTorch = Annotated[
    bool,
    typer.Option("--environment-allow-torch", help="Let the environment replace the image's torch or CUDA libraries."),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only results and errors.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Port = Annotated[int, typer.Option("--port", help="Local port for the tunnel [default: a free one].")]
Detach = Annotated[bool, typer.Option("--detach", help="Print the URL and exit; the tunnel runs in the background.")]


def _flags(values: dict[str, Any]) -> dict[str, Any]:
    """Settings flags from a command's parameters (None or False means not given)."""
    renamed = {"region": "regions", "size": "sizes"}
    return {renamed.get(k, k): v for k, v in values.items() if v is not None and v is not False}


def _store():
    from provision.state import StateStore

    return StateStore()


def _name(name: str | None) -> str:
    from provision.settings import deployment_name

    return deployment_name(name)


VERBOSE = "--verbose"


@app.callback()
def _options(
    verbose: Annotated[
        bool,
        typer.Option(
            VERBOSE,
            "-v",
            help="Show libraries' diagnostics and the full error chain, for a bug report "
            "(also after a command, or PROVISION_DEBUG=1).",
        ),
    ] = False,
) -> None:
    if verbose:
        configure_logging(verbose=True)


@app.command()
def up(
    name: Name = None,
    target: Target = None,
    region: Region = None,
    size: Size = None,
    image: Image = None,
    admin_user: AdminUser = None,
    os_disk_gb: OsDisk = None,
    allow_ip: AllowIp = None,
    ssh_port: SshPort = None,
    cloud: Cloud = None,
    subscription: Subscription = None,
    access: Access = None,
    jupyter_port: JupyterPort = None,
    allow_cpu: AllowCpu = False,
    trusted_launch: TrustedLaunch = False,
    accept_terms: AcceptTerms = False,
    spot: Spot = False,
    max_price: MaxPrice = None,
    idle_stop: IdleStop = None,
    auto_shutdown: AutoShutdown = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Create without asking to confirm the price (or PROVISION_YES=1).")
    ] = False,
    remote_python: RemotePython = None,
    host_key: HostKey = None,
    identity: Identity = None,
    dataset: Dataset = None,
    epochs: Epochs = None,
    nodes: Nodes = None,
    environment: Environment = None,
    environment_allow_torch: EnvironmentAllowTorch = False,
    skip_check: Annotated[bool, typer.Option("--skip-check", help="Do not run the GPU check.")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Run the GPU check again on a deployment whose check passed.")
    ] = False,
    no_bootstrap: Annotated[bool, typer.Option("--no-bootstrap", help="Stop once the VM is ready.")] = False,
    detach: Detach = False,
    keep_on_failure: Annotated[
        bool, typer.Option("--keep-on-failure", help="Keep what was created if up fails.")
    ] = False,
    port: Port = 0,
    quiet: Quiet = False,
) -> None:
    """Create the GPU VM, start Jupyter, prove the notebook trains on the GPU, print the URL."""
    flags = _flags(locals())  # first, while the parameters are the only locals
    from provision.commands.core import UpOptions
    from provision.commands.up import up as run_up
    from provision.settings import load

    for option in ("skip_check", "check", "no_bootstrap", "detach", "keep_on_failure", "port", "quiet"):
        flags.pop(option, None)
    options = UpOptions(
        bootstrap=not no_bootstrap,
        skip_check=skip_check,
        check=check,
        detach=detach,
        local_port=port,
        keep_on_failure=keep_on_failure,
    )
    run_up(load(flags), Output(quiet=quiet), _store(), options)


@app.command()
def down(
    name: NameArg = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once deletion has started.")] = False,
    discard: Annotated[
        bool, typer.Option("--discard", help="Do not save the work directory first: its files are lost.")
    ] = False,
    subscription: Subscription = None,
    quiet: Quiet = False,
) -> None:
    """Save the work directory into work/NAME/, then delete everything `up` made (only that), then its record."""
    from provision.commands.down import down as run_down

    flags = _flags({"subscription": subscription})
    run_down(_name(name), flags, _store(), Output(quiet=quiet), wait=not no_wait, yes=yes, discard=discard)


@app.command()
def pull(
    name: NameArg = None,
    to: Annotated[Path | None, typer.Option("--to", help="Local folder [default: work/NAME].")] = None,
    node: Annotated[int | None, typer.Option(help="Only node K (0 the head) [default: every node].")] = None,
    quiet: Quiet = False,
) -> None:
    """Copy the work directory (Jupyter's root) to this machine: what changed since the last pull; workers' into
    nodeK/; a file changed here too is kept, the machine's copy set beside it as NAME.remote.EXT."""
    from provision.commands.transfer import pull as run_pull

    run_pull(_name(name), _store(), Output(quiet=quiet), to=to, node=node)


@app.command()
def push(
    words: Annotated[list[str], typer.Argument(help="[NAME] PATH... files and directories to copy.")],
    dest: Annotated[str, typer.Option("--dest", help="Folder inside the work directory [default: its top].")] = "",
    all_nodes: Annotated[bool, typer.Option("--all-nodes", help="Copy to every node, not only the head.")] = False,
    quiet: Quiet = False,
) -> None:
    """Copy files and directories into the work directory: what changed; a file changed on the machine since
    the last pull is kept, this copy set beside it as NAME.laptop.EXT."""
    from provision.commands.transfer import push as run_push

    name = None
    if len(words) > 1 and not Path(words[0]).exists():
        name, words = words[0], words[1:]
    run_push(_name(name), [Path(w) for w in words], _store(), Output(quiet=quiet), dest=dest, all_nodes=all_nodes)


@app.command()
def stop(name: NameArg = None, quiet: Quiet = False) -> None:
    """Deallocate a deployment's VM: its compute stops billing (its disk does not); `start` resumes it."""
    from provision.commands.power import stop as run_stop

    run_stop(_name(name), _store(), Output(quiet=quiet))


@app.command()
def start(
    name: NameArg = None,
    detach: Detach = False,
    port: Port = 0,
    quiet: Quiet = False,
) -> None:
    """Start a stopped (or evicted) deployment: same host key, same Jupyter token and notebooks; print the URL."""
    from provision.commands.core import UpOptions
    from provision.commands.power import start as run_start

    run_start(_name(name), _store(), Output(quiet=quiet), UpOptions(detach=detach, local_port=port))


@app.command()
def resize(
    name: NameArg = None,
    size: Annotated[str, typer.Option("--size", help="The VM size to move to (Standard_NC24ads_A100_v4).")] = "",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    allow_cpu: AllowCpu = False,
    skip_check: Annotated[bool, typer.Option("--skip-check", help="Do not run the GPU check afterwards.")] = False,
    detach: Detach = False,
    port: Port = 0,
    quiet: Quiet = False,
) -> None:
    """Move a deployment to another size (in place, or deallocated and started): same disk, host key, token and
    notebooks; the GPU check runs on the new GPU; print the URL."""
    from provision.commands.core import UpOptions
    from provision.commands.resize import resize as run_resize

    if not size:
        raise UsageError("--size is required: the VM size to move to (e.g. --size Standard_NC24ads_A100_v4)")
    options = UpOptions(skip_check=skip_check, detach=detach, local_port=port)
    flags = _flags({"yes": yes, "allow_cpu": allow_cpu})
    run_resize(_name(name), size, flags, _store(), Output(quiet=quiet), options)


@app.command()
def gc(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    everyone: Annotated[bool, typer.Option("--everyone", help="Include groups other people created.")] = False,
    subscription: Subscription = None,
    quiet: Quiet = False,
) -> None:
    """Find dsvm-kit resource groups that no record here knows, and delete them."""
    from provision.commands.gc import gc as run_gc

    flags = _flags({"subscription": subscription})
    run_gc(flags, _store(), Output(quiet=quiet), yes=yes, everyone=everyone)


@app.command()
def status(name: NameArg = None, json: Json = False) -> None:
    """A deployment's record and the machine's live state."""
    from provision.report import status as read_status

    out = Output()
    facts = read_status(_name(name), _store())
    if json:
        out.json(facts)
    else:
        shown = [(key, str(value)) for key, value in facts.items() if value not in ("", None)]
        out.table(["", ""], shown, title=facts["name"])


@app.command("list")
def list_(
    cloud: Annotated[
        bool,
        typer.Option("--cloud", help="Also list every dsvm-kit resource group in the subscription."),
    ] = False,
    json: Json = False,
) -> None:
    """Every deployment recorded here (and with --cloud, every tagged resource group)."""
    from provision.report import deployments, running_total

    out = Output()
    rows = deployments(_store(), cloud=cloud)
    if json:
        out.json(rows)
    elif not rows:
        out.note("no deployments (start one with `provision up`)")
    else:
        columns = list(rows[0])
        out.table(columns, [tuple(str(row.get(c, "")) for c in columns) for row in rows])
        out.result(running_total(rows))


@app.command()
def plan(
    name: Name = None,
    region: Region = None,
    size: Size = None,
    image: Image = None,
    admin_user: AdminUser = None,
    os_disk_gb: OsDisk = None,
    allow_ip: AllowIp = None,
    ssh_port: SshPort = None,
    cloud: Cloud = None,
    subscription: Subscription = None,
    access: Access = None,
    jupyter_port: JupyterPort = None,
    allow_cpu: AllowCpu = False,
    trusted_launch: TrustedLaunch = False,
    spot: Spot = False,
    max_price: MaxPrice = None,
    nodes: Nodes = None,
    json: Json = False,
    quota: Annotated[
        bool,
        typer.Option("--quota", help="Also sign in and read (only read) your quota: does `up` fit each choice?"),
    ] = False,
) -> None:
    """What `up` would create on Azure and what it costs, for review; sends no request to Azure (--quota reads)."""
    flags = _flags(locals())  # first, while the parameters are the only locals
    from provision.report import plan_table
    from provision.settings import load
    from provision.targets import CLOUD

    flags.pop("json", None)
    flags.pop("quota", None)
    plan_table(load({**flags, "target": CLOUD}), Output(), as_json=json, with_quota=quota)


@app.command()
def check(
    name: NameArg = None,
    allow_cpu: AllowCpu = False,
    dataset: Dataset = None,
    epochs: Epochs = None,
    quiet: Quiet = False,
) -> None:
    """Run the notebook again on a live deployment and judge whether it trained on the GPU."""
    from provision.commands.check import check as run_check

    flags = _flags({"allow_cpu": allow_cpu, "dataset": dataset, "epochs": epochs})
    run_check(_name(name), flags, _store(), Output(quiet=quiet))


@app.command()
def tunnel(
    name: NameArg = None,
    port: Port = 0,
    detach: Annotated[bool, typer.Option("--detach", help="Run the tunnel in the background.")] = False,
    no_url: Annotated[bool, typer.Option("--no-url", hidden=True)] = False,
    quiet: Quiet = False,
) -> None:
    """Reopen the SSH tunnel to a deployment's Jupyter and print its URL."""
    from provision.commands.tunnel import reopen_tunnel

    reopen_tunnel(
        _name(name),
        _store(),
        Output(quiet=quiet),
        local_port=port,
        detach=detach,
        show_url=not no_url,
    )


@app.command(context_settings={"allow_interspersed_args": False})
def ssh(
    name: NameArg = None,
    command: Annotated[list[str] | None, typer.Argument(help="Command to run (after --).")] = None,
    node: Annotated[int, typer.Option(help="Which node of several: 0 the head, K a worker (through the head).")] = 0,
) -> None:
    """Open a shell on the machine (or run a command) with its pinned host key."""
    from provision.sshfiles import ssh_argv

    words = command or []
    if words[:1] == ["--node"]:  # `ssh NAME --node K -- CMD`: the option after the name
        if len(words) < 2 or not words[1].isdigit():
            raise ProvisionError("--node takes a node number: 0 (the head), 1, 2...")
        node, words = int(words[1]), words[2:]
    argv = ssh_argv(_store(), _name(name), words[1:] if words[:1] == ["--"] else words, node)
    os.execvp(argv[0], argv)


@app.command("run", context_settings={"allow_interspersed_args": False})
def run_job(
    words: Annotated[list[str], typer.Argument(help="[NAME] SCRIPT [ARGS...] (put -- before the script's options).")],
    workdir: Annotated[
        Path | None, typer.Option(help="Directory copied to every node [default: the script's].")
    ] = None,
    nproc_per_node: Annotated[
        int | None, typer.Option(help="Processes per node [default: its GPUs, or 2 on a CPU].")
    ] = None,
    torchrun_args: Annotated[
        str | None, typer.Option("--torchrun", help="More torchrun options, as one string: '--max-restarts 1'.")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Run a script with torchrun on every node; every rank's output here; Ctrl-C stops it everywhere."""
    import shlex

    from provision.run import RunOptions
    from provision.run import run as run_script

    name = None
    if len(words) > 1 and not Path(words[0]).is_file() and not words[0].endswith(".py"):
        name, words = words[0], words[1:]
    options = RunOptions(
        script=Path(words[0]),
        args=tuple(words[1:]),
        workdir=workdir,
        nproc_per_node=nproc_per_node,
        torchrun_args=tuple(shlex.split(torchrun_args or "")),
    )
    run_script(_name(name), options, _store(), Output(quiet=quiet))


env_app = typer.Typer(no_args_is_help=True, help="The project's Python environment on the machine (its kernel).")
app.add_typer(env_app, name="env")


@env_app.command("lock")
def env_lock(
    name: NameArg = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write [default: requirements.lock.txt beside the file]."),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Write the exact versions in the deployment's environment, for a teammate's `up` (or yours) to build."""
    from provision.commands.env import lock

    lock(_name(name), _store(), Output(quiet=quiet), output)


@app.command("ssh-config")
def ssh_config(name: NameArg = None) -> None:
    """A `Host` block for ~/.ssh/config (VS Code Remote-SSH, plain ssh, scp)."""
    from provision.sshfiles import ssh_config_block

    Output().result(ssh_config_block(_store(), _name(name)))


# -- quota: where a GPU fits, and asking Azure for more (provision/commands/quota.py) ------------------------

quota_app = typer.Typer(add_completion=False, rich_markup_mode=None)
app.add_typer(quota_app, name="quota")


def _cloud(flags: dict[str, Any]):
    """Settings for a quota command: the cloud, whatever provision.toml's target."""
    from provision.settings import load
    from provision.targets import CLOUD

    return load({**_flags(flags), "target": CLOUD})


def _words(values: list[str] | None) -> tuple[str, ...] | None:
    """`--size a --size b` or `--size a,b`."""
    found = tuple(word.strip() for value in values or [] for word in value.split(",") if word.strip())
    return found or None


@quota_app.callback(invoke_without_command=True)
def quota(
    context: typer.Context,
    size: Annotated[
        list[str] | None,
        typer.Option(metavar="SIZE", help="A VM size (repeat it, or a,b) [default: the kit's GPU sizes and yours]."),
    ] = None,
    region: Annotated[
        list[str] | None, typer.Option(metavar="REGION", help="A region (repeat it, or a,b) [default: your regions].")
    ] = None,
    all_regions: Annotated[
        bool, typer.Option("--all-regions", help="Every region where the size is offered to you.")
    ] = False,
    subscription: Subscription = None,
    json: Json = False,
) -> None:
    """Where a GPU fits today: each size's family, your limit and use, and whether `up` fits; `quota request`
    asks Azure for more, `quota status` shows how requests stand."""
    if context.invoked_subcommand is not None:
        return
    from provision.commands.quota import show

    if region and all_regions:
        raise UsageError("--region and --all-regions exclude each other")
    sizes = _words(size)
    settings = _cloud({"sizes": sizes, "regions": _words(region), "subscription": subscription})
    show(settings, Output(), sizes=settings.sizes if sizes else None, all_regions=all_regions, as_json=json)


@quota_app.command("request")
def quota_request(
    size: Annotated[str, typer.Option(help="The VM size, e.g. Standard_NC4as_T4_v3 (its family comes from Azure).")],
    region: Annotated[str, typer.Option(help="The region, e.g. eastus.")],
    vcpus: Annotated[
        int | None, typer.Option(help="vCPUs to make room for [default: what `up` needs: the size's vCPUs x nodes].")
    ] = None,
    spot: Annotated[
        bool, typer.Option("--spot", help="Ask for Spot (low-priority) vCPUs, which Spot VMs count against.")
    ] = False,
    wait: Annotated[float, typer.Option(help="Seconds to wait for Azure's answer.")] = 120.0,
    subscription: Subscription = None,
    quiet: Quiet = False,
) -> None:
    """Ask Azure (its Quota API) to raise your quota so that `up` fits; approved, pending or refused."""
    from provision.commands.quota import request

    settings = _cloud({"sizes": size, "regions": region, "subscription": subscription})
    request(settings, Output(quiet=quiet), _store(), vcpus=vcpus, spot=spot, wait=wait)


@quota_app.command("status")
def quota_status(
    request_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="A request's id [default: the latest filed from here].")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="Where a request filed elsewhere was filed [default: your first region].")
    ] = None,
    subscription: Subscription = None,
) -> None:
    """A quota request (or the latest ones filed from here) as Azure reports it now."""
    from provision.commands.quota import status as read_status

    settings = _cloud({"regions": region, "subscription": subscription})
    read_status(settings, Output(), _store(), request_id=request_id)


def main() -> None:
    """Run the app; every expected failure becomes one line on stderr and an exit code."""
    code = run(sys.argv[1:])
    freeze()  # exit frees everything anyway: no collector pass over every module loaded (~20-50 ms of each exit)
    sys.exit(code)


def _hoisted(argv: list[str]) -> list[str]:
    """`provision up --verbose` (or `-v`) as `provision --verbose up` (not past a `--`)."""
    end = argv.index("--") if "--" in argv else len(argv)
    if not {VERBOSE, "-v"} & set(argv[:end]):
        return argv
    return [VERBOSE, *(arg for i, arg in enumerate(argv) if not (arg in (VERBOSE, "-v") and i < end))]


def run(argv: list[str]) -> int:
    verbose = os.environ.get("PROVISION_DEBUG", "") not in ("", "0")
    configure_logging(verbose=verbose)
    argv = _hoisted(argv)
    verbose = verbose or argv[:1] == [VERBOSE]
    try:
        code = app(args=argv, prog_name="provision", standalone_mode=False)
    except typer.TyperException as e:  # bad usage: unknown option, missing argument...
        e.show()
        return ExitStatus.USAGE
    except typer.Abort:
        code = ExitStatus.INTERRUPTED
    except ProvisionError as e:
        _report(e, verbose)
        return e.exit_status
    except Exception as e:
        from bootstrap.remote import BootstrapError

        if not isinstance(e, BootstrapError):
            raise
        _report(e, verbose)
        return ExitStatus.FAILURE
    if code == ExitStatus.INTERRUPTED:  # typer turns KeyboardInterrupt into exit code 130
        Output().error("interrupted")
    return code if isinstance(code, int) else ExitStatus.OK


def _report(error: Exception, verbose: bool) -> None:
    if verbose:
        show_chain(error)
    Output().error(str(error))
