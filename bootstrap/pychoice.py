"""Which Python on the machine runs Jupyter and the notebook: probe every candidate in one
command, rank them, and say why the chosen one won and the others did not.

A DSVM (Ubuntu 22.04) has several conda envs under /anaconda (py38_default, azureml_py38,
azureml_py38_PT_and_TF, azureml_py310_sdkv2); which of them has a CUDA torch and a recent
jupyter_server varies between image versions, so it is checked, never assumed.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from bootstrap.remote import BootstrapError, Remote, expand

# The DSVM's conda, then a user's own (an existing machine, --target ssh); python3 on PATH last.
CONDA_ROOTS = ("/anaconda", "~/miniconda3", "~/anaconda3")
CANDIDATES = tuple(path for root in CONDA_ROOTS for path in (f"{root}/envs/*/bin/python", f"{root}/bin/python"))
SERVER_MAJOR = 2  # IdentityProvider.token, the trait jupyter.start sets, exists from jupyter_server 2
_PROBE_TIMEOUT = 300.0  # seconds for every candidate to import torch and ask CUDA (a cold disk is slow)

# Runs in each candidate (Python 3.8 or newer): versions from metadata. torch is imported (1-5 s) only where it could
# see a GPU: the build's own version file says, without an import, when it was built for the CPU alone.
_PROBE = """\
import json, sys, importlib.util as u
from importlib.metadata import version
def installed(name):
    try:
        return version(name)
    except Exception:
        return "unknown"
def cpu_build(spec):
    facts = {}
    try:
        with open(spec.submodule_search_locations[0] + "/version.py") as f:
            exec(f.read(), facts)
    except Exception:
        return None
    gpu = facts.get("cuda") or facts.get("hip")  # what torch.cuda runs on: NVIDIA's CUDA or AMD's ROCm
    return None if gpu or "__version__" not in facts else str(facts["__version__"])
found = {key: bool(u.find_spec(name)) for key, name in (("pip", "pip"), ("lab", "jupyterlab"), ("kernel", "ipykernel"))}
if u.find_spec("jupyter_server"):
    found["server"] = installed("jupyter_server")
torch = u.find_spec("torch")
cpu_version = torch and cpu_build(torch)
if cpu_version:
    found.update(torch=cpu_version, cuda=False, cpu_build=True)
elif torch:
    try:
        import torch
        found["torch"] = str(getattr(torch, "__version__", "unknown"))
        found["cuda"] = bool(torch.cuda.is_available())
    except Exception as e:
        found["error"] = ("torch does not import: %s: %s" % (type(e).__name__, e)).splitlines()[0][:200]
print(json.dumps(found))
"""


@dataclass(frozen=True)
class Env:
    """What the probe found in one Python."""

    python: str
    torch: str | None = None
    cuda: bool = False
    cpu_build: bool = False  # torch built for the CPU alone (known without importing it)
    server: str | None = None  # jupyter_server's version
    lab: bool = False
    kernel: bool = False
    pip: bool = False
    error: str | None = None

    @property
    def label(self) -> str:
        """The conda env's name for an env, else the path."""
        parts = self.python.split("/")
        return parts[-3] if len(parts) > 3 and parts[-4] == "envs" else self.python

    @property
    def server_ok(self) -> bool:
        major = (self.server or "").split(".")[0]
        return major.isdigit() and int(major) >= SERVER_MAJOR

    @property
    def missing(self) -> tuple[str, ...]:
        """Requirements to pip-install before Jupyter can run here."""
        wanted = {f"jupyter_server>={SERVER_MAJOR}": self.server_ok, "jupyterlab": self.lab, "ipykernel": self.kernel}
        return tuple(requirement for requirement, present in wanted.items() if not present)

    def flaw(self, allow_cpu: bool) -> str | None:
        """Why this env cannot be used at all; None when it can."""
        if self.error:
            return self.error
        if self.torch is None:
            return "no torch"
        if not self.cuda and not allow_cpu:
            return self.no_gpu
        if self.missing and not self.pip:
            return f"{self.server_text()}, and no pip to install what is missing"
        return None

    @property
    def no_gpu(self) -> str:
        """Why this env's torch does not use a GPU."""
        return f"torch {self.torch} is a CPU-only build" if self.cpu_build else f"torch {self.torch} sees no CUDA GPU"

    def describe(self) -> str:
        gpu = "with CUDA" if self.cuda else "CPU only"
        return f"torch {self.torch} {gpu}, {self.server_text()}"

    def server_text(self) -> str:
        if self.server is None:
            return "no jupyter_server"
        return f"jupyter_server {self.server}" + ("" if self.server_ok else f" (needs {SERVER_MAJOR} or newer)")


@dataclass(frozen=True)
class Choice:
    env: Env
    others: tuple[tuple[str, str], ...]  # (label, why not chosen), in probe order

    @property
    def python(self) -> str:
        return self.env.python

    def describe(self) -> str:
        """One line: the chosen Python and what it has; every other candidate and why not."""
        text = f"Python: {self.env.python} ({self.env.describe()})"
        if self.others:
            text += "; skipped " + ", ".join(f"{label}: {why}" for label, why in self.others)
        return text


def choose(
    remote: Remote,
    preferred: str | None = None,
    *,
    allow_cpu: bool = False,
    candidates: Sequence[str] = CANDIDATES,
) -> Choice:
    """The best Python: `preferred` alone if given, else the best of `candidates` (globs) and
    python3 on PATH. Best: torch that sees CUDA, then jupyter_server 2 or newer (else it gets
    installed); torch on the CPU only with `allow_cpu`. Raises when none can run the notebook."""
    listed = [expand(remote, preferred)] if preferred else [expand(remote, c) for c in candidates]
    envs = probe(remote, listed, path_python=not preferred)
    usable = [env for env in envs if env.flaw(allow_cpu) is None]
    if not usable:
        raise BootstrapError(_none_fits(envs, listed, allow_cpu, preferred))
    best = min(usable, key=lambda env: (not env.cuda, not env.server_ok, envs.index(env)))
    others = tuple((env.label, env.flaw(allow_cpu) or _lost(env, best)) for env in envs if env is not best)
    return Choice(best, others)


def _lost(env: Env, best: Env) -> str:
    if best.cuda and not env.cuda:
        return env.no_gpu
    if best.server_ok and not env.server_ok:
        return env.server_text()
    return "as good, found later"


def _none_fits(envs: list[Env], listed: list[str], allow_cpu: bool, preferred: str | None) -> str:
    if preferred and not envs:
        return f"{preferred} is not an executable file on the machine"
    if not envs:
        return f"no Python on the machine (looked for {', '.join(listed)} and python3 on PATH)"
    reasons = "; ".join(f"{env.label}: {env.flaw(allow_cpu)}" for env in envs)
    text = f"no Python on the machine can run the notebook ({reasons})"
    cpu_only = [env for env in envs if env.torch and not env.cuda]
    if cpu_only and not allow_cpu:
        if not all(env.cpu_build for env in cpu_only):
            text += "; on a GPU machine `nvidia-smi` shows whether the driver works"
        if any(env.cpu_build for env in cpu_only):
            text += "; a CPU-only torch uses no GPU: install a CUDA build (pytorch.org/get-started/locally)"
        text += "; --allow-cpu accepts the CPU"
    return text


def probe(remote: Remote, paths: Sequence[str], *, path_python: bool) -> list[Env]:
    """Probe every existing executable among `paths` (globs; python3 on PATH too if asked) at
    once, in one command; the result keeps the order of `paths`, each Python once."""
    words = [_glob_quote(path) for path in paths] + (['"$(command -v python3)"'] if path_python else [])
    script = (
        f'i=0; for p in {" ".join(words)}; do [ -f "$p" ] && [ -x "$p" ] || continue; i=$((i + 1)); '
        f'(r=$("$p" -c {shlex.quote(_PROBE)} 2>/dev/null); printf \'%s\\t%s\\t%s\\n\' "$i" "$p" "$r") & '
        "done; wait"
    )
    result = remote.run(script, timeout=_PROBE_TIMEOUT, step="probing the Python environments")
    answers = [line.split("\t", 2) for line in result.stdout.splitlines()]
    found: dict[str, Env] = {}
    for _, path, answer in sorted((a for a in answers if len(a) == 3 and a[0].isdigit()), key=lambda a: int(a[0])):
        found.setdefault(path, _env(path, answer))
    return list(found.values())


def _env(path: str, answer: str) -> Env:
    try:
        facts = json.loads(answer)
    except ValueError:
        return Env(path, error="does not run the probe (Python 3.8 or newer needed)")
    fields = ("torch", "cuda", "cpu_build", "server", "lab", "kernel", "pip", "error")
    return Env(path, **{key: facts[key] for key in fields if key in facts})


def _glob_quote(pattern: str) -> str:
    """shlex.quote every part of a path pattern except its `*` wildcards."""
    return "*".join(shlex.quote(part) if part else "" for part in pattern.split("*"))
