"""The project's Python environment, laptop side: built on the machine by `up` (on every node), its kernel
registered again by `start` (bootstrap.environment does the machine's part; commands/env.py locks it)."""

from dataclasses import replace
from pathlib import Path

from bootstrap import environment
from bootstrap.remote import BootstrapError, Remote, SSHRemote
from provision import session
from provision.output import Output
from provision.settings import Settings
from provision.state import Journal, Record
from provision.targets import Machine


def prepare(remote: Remote, python: str, settings: Settings, journal: Journal, out: Output) -> None:
    """The project's environment (settings.environment) over `python`, built unless its content was built
    before, and the kernel named after the project pointed at it; kept in record.environment (None without one).
    On this machine it lives in the state directory, elsewhere in ~/.dsvm-kit/envs."""
    record, name = journal.record, journal.record.name
    if settings.environment is None:
        record.environment = None
        journal.save()
        return
    spec = environment.read(Path(settings.environment))
    over_ssh = Machine.from_dict(record.machine or {}).over_ssh  # else this machine: in the state directory
    envs_dir = environment.ENVS_DIR if over_ssh else str(journal.store.dir_for(name) / "envs")
    with out.step(f"Python environment from {spec.file} over {python} (kernel {name!r})") as step:
        try:
            env = environment.ensure(
                remote,
                python,
                name,
                spec,
                envs_dir=envs_dir,
                allow_torch=settings.environment_allow_torch,
                on_progress=step.update,
            )
        except environment.BuildFailed as e:
            raise _with_log(e, remote, journal) from None
        out.note(_built(env))
    record.environment = {
        **env.to_record(spec),
        "file": settings.environment,
        "allow_torch": settings.environment_allow_torch,
    }
    journal.save()


def checked_in(record: Record, check: dict) -> bool:
    """Whether a check (the notebook's, the all-reduce) ran in the environment the deployment has now: both
    none, or the same content."""
    return check.get("environment") == (record.environment or {}).get("name")


def restore(remote: Remote, python: str, settings: Settings, journal: Journal, out: Output) -> None:
    """`start`: the environment `up` made, its kernel registered again; rebuilt by `up` only (on every node),
    so a file changed since is noted and not built."""
    made = journal.record.environment
    if made is None:
        return
    path = Path(made["file"])
    current = environment.read(path).sha256 if path.is_file() else None
    if current != made["sha256"]:
        why = "is gone" if current is None else "changed since `up`"
        out.warn(f"{path} {why}: the machine keeps environment {made['name']}; `provision up` rebuilds it")
        return
    allow = bool(made.get("allow_torch"))
    same = replace(settings, environment=made["file"], environment_allow_torch=allow)
    prepare(remote, python, same, journal, out)


def prepare_workers(workers: list[SSHRemote], journal: Journal, out: Output) -> None:
    """The head's environment on every worker (each over the Python chosen there), built at once; a worker
    sharing the head's home finds it built."""
    made = journal.record.environment
    if made is None or not workers:
        return
    spec = environment.read(Path(made["file"]))
    pythons = [node["python"] for node in journal.record.nodes[1:]]
    allow = bool(made.get("allow_torch"))

    def build(worker: SSHRemote, python: str) -> environment.Environment:
        try:
            return environment.ensure(worker, python, journal.record.name, spec, allow_torch=allow)
        except environment.BuildFailed as e:
            raise _with_log(e, worker, journal, where="the worker") from None

    with out.step(f"Python environment {made['name']} on {len(workers)} worker node(s)"):
        envs = session.alongside(*(lambda w=w, p=p: build(w, p) for w, p in zip(workers, pythons, strict=True)))
        for env in envs:
            out.note(_built(env))
    if any(env.python != made["python"] for env in envs):
        raise BootstrapError(f"the workers' environment is not at {made['python']}, where the head's is")


def _built(env: environment.Environment) -> str:
    if not env.built:
        return f"{env.name} is built already (same content): nothing to do"
    text = f"built {env.name}: " + (", ".join(env.installed) or "nothing to add to the base")
    return text + (f"; removed {', '.join(env.removed)}" if env.removed else "")


def _with_log(
    error: environment.BuildFailed, remote: Remote, journal: Journal, where: str = "the machine"
) -> BootstrapError:
    """The failure, and where its full log is: on the machine, and copied into the deployment's state directory."""
    local = journal.store.dir_for(journal.record.name) / Path(error.log).name
    try:
        remote.get(error.log, local)
        copied = f"{local} here"
    except (OSError, BootstrapError) as e:
        copied = f"not copied here ({e})"
    return BootstrapError(f"{error}\nthe full log: {error.log} on {where}, {copied}")
