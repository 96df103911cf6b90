"""A project's Python environment on the machine, from its requirements.txt or environment.yml, layered over the
env with the image's CUDA torch, and registered as a Jupyter kernel named after the project.

bootstrap/envbuild.py does the work on the machine, in one command; this side reads the file, sends the job,
shows the build's progress from its log, and turns the answer into an Environment or one error. The
environment's name is `<project>-<first 12 hex digits of the file's sha256>`: the same content is built once.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath

from bootstrap import envbuild
from bootstrap.pyenv import KERNEL_DATA_DIR
from bootstrap.remote import BootstrapError, CommandResult, Remote, expand

ENVS_DIR = "~/.dsvm-kit/envs"
KINDS = {".txt": "pip", ".yml": "conda", ".yaml": "conda"}
LOCK_FILES = {"pip": "requirements.lock.txt", "conda": "environment.lock.yml"}
_BUILD_TIMEOUT = 3600.0  # seconds: a large environment downloads gigabytes
_POLL = 0.5  # seconds between looks at the build's log
_INCLUDES = ("-r", "--requirement", "-c", "--constraint")  # pip options that read another file


class SpecError(ValueError):
    """The environment file cannot be used; str(e) is one line."""


class Refused(BootstrapError):
    """The requirements would replace the image's torch or CUDA libraries; nothing was installed."""


class BuildFailed(BootstrapError):
    """A resolver or installer failed; the previous environment and kernel are as they were."""

    def __init__(self, message: str, log: str):
        super().__init__(message)
        self.log = log  # the full log's path on the machine


@dataclass(frozen=True)
class Spec:
    """An environment file's name (as given) and content."""

    file: str
    text: str

    @property
    def kind(self) -> str:
        return KINDS[PurePath(self.file).suffix.lower()]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def name(self, project: str) -> str:
        return f"{project}-{self.sha256[: envbuild.HASH_LENGTH]}"

    def parts(self) -> tuple[dict | None, str]:
        """The conda part ({channels, specs}; None for a requirements file) and the pip requirements' text."""
        conda, pip = (None, self.text) if self.kind == "pip" else parse_conda(self.text, self.file)
        for line in pip.splitlines():
            words = line.split()
            if words and (words[0] in _INCLUDES or words[0].startswith(tuple(f"{w}=" for w in _INCLUDES))):
                raise SpecError(
                    f"{self.file} refers to another file ({line.strip()}): only {self.file} goes to the machine; "
                    "put that file's lines in it"
                )
        return conda, pip


def read(path: Path) -> Spec:
    """The environment file at `path`, checked: a requirements .txt, or an environment .yml that parses."""
    if path.suffix.lower() not in KINDS:
        raise SpecError(f"environment {path.name} must be a requirements .txt or a conda environment .yml")
    try:
        spec = Spec(path.name, path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"environment file {path} cannot be read: {e}") from None
    spec.parts()
    return spec


def parse_conda(text: str, file: str) -> tuple[dict, str]:
    """environment.yml's channels and conda dependencies, and its `pip:` section as requirements text."""
    import yaml  # only an environment.yml needs it

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise SpecError(f"{file} is not YAML: {str(e).splitlines()[0]}") from None
    dependencies = data.get("dependencies") if isinstance(data, dict) else None
    channels = (data.get("channels") or []) if isinstance(data, dict) else []
    if not isinstance(dependencies, list) or not isinstance(channels, list):
        raise SpecError(f"{file} must be a conda environment file with a `dependencies:` list")
    specs, pip = [], []
    for entry in dependencies:
        if isinstance(entry, dict) and list(entry) == ["pip"] and isinstance(entry["pip"], list):
            pip += [str(line) for line in entry["pip"]]
        elif isinstance(entry, str | int | float):
            specs.append(str(entry))
        else:
            raise SpecError(f"{file}: dependency {entry!r} is neither a conda package nor a `pip:` list")
    return {"channels": [str(c) for c in channels], "specs": specs}, "".join(line + "\n" for line in pip)


@dataclass(frozen=True)
class Environment:
    name: str
    path: str  # on the machine
    python: str
    kernel: str
    built: bool  # False: the environment of this content was there already
    installed: tuple[str, ...] = ()  # "name version" of each package the build installed
    removed: tuple[str, ...] = ()  # the project's older environments, removed

    def to_record(self, spec: Spec) -> dict:
        return {
            "name": self.name,
            "path": self.path,
            "python": self.python,
            "kernel": self.kernel,
            "kind": spec.kind,
            "file": spec.file,
            "sha256": spec.sha256,
        }


def ensure(
    remote: Remote,
    base_python: str,
    project: str,
    spec: Spec,
    *,
    envs_dir: str = ENVS_DIR,
    allow_torch: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> Environment:
    """The environment of `spec` for `project` over `base_python`, built unless there already, and the kernel
    `project` pointed at it. Raises Refused (nothing installed) or BuildFailed (the last lines, the log's path)."""
    envs = expand(remote, envs_dir)
    name = spec.name(project)
    conda, pip = spec.parts()
    job = {
        "envs_dir": envs,
        "name": name,
        "project": project,
        "kind": spec.kind,
        "file": spec.file,
        "sha256": spec.sha256,
        "conda": conda,
        "pip": pip,
        "allow_torch": allow_torch,
        "kernel": {"dir": f"{expand(remote, KERNEL_DATA_DIR)}/kernels/{project}", "display_name": project},
    }
    log = f"{envs}/{name}.log"
    answer = _answer(_run_watched(remote, base_python, job, log, on_progress, f"building environment {name}"))
    if answer["status"] == "refused":
        raise Refused(answer["message"])
    if answer["status"] == "failed":
        lines = "\n".join(f"  {line}" for line in answer["lines"])
        raise BuildFailed(f"the environment from {spec.file} did not build ({answer['stage']}):\n{lines}", log)
    return Environment(
        name=name,
        path=f"{envs}/{name}",
        python=answer["python"],
        kernel=project,
        built=answer["built"],
        installed=tuple(answer["installed"]),
        removed=tuple(answer["removed"]),
    )


def lock(remote: Remote, base_python: str, environment: dict, header: str) -> str:
    """The exact versions of the environment's own packages: requirements lines (pip freeze of its own
    site-packages), or an environment.yml of what differs from the base env; `header` (comment lines) first."""
    job = {"mode": "lock", "env": environment["path"], "kind": environment["kind"], "header": header}
    answer = _answer(remote.run(_command(base_python), stdin=json.dumps(job), step="reading the exact versions"))
    if answer["status"] != "ready":
        raise BootstrapError("; ".join(answer["lines"]))
    return answer["text"]


def _command(base_python: str) -> str:
    script = (Path(__file__).parent / "envbuild.py").read_text()
    return f"{shlex.quote(base_python)} -c {shlex.quote(script)}"


def _answer(result: CommandResult) -> dict:
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BootstrapError(f"the environment builder gave no answer: {result.stderr.strip()[-300:]!r}") from None


def _run_watched(
    remote: Remote, base_python: str, job: dict, log: str, on_progress: Callable[[str], None] | None, step: str
) -> CommandResult:
    """Run the builder; while it runs, tell on_progress what its log says it is doing."""
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["result"] = remote.run(
                _command(base_python), stdin=json.dumps(job), timeout=_BUILD_TIMEOUT, step=step
            )
        except BaseException as e:  # handed to the caller
            outcome["error"] = e

    thread = threading.Thread(target=work, name="environment-build", daemon=True)
    thread.start()
    shown = None
    while True:
        thread.join(_POLL)
        if not thread.is_alive():
            break
        if on_progress is None:
            continue
        tail = remote.run(f"tail -n 20 {shlex.quote(log)} 2>/dev/null", check=False).stdout
        text = envbuild.progress(tail.splitlines())
        if text and text != shown:
            on_progress(text)
            shown = text
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
