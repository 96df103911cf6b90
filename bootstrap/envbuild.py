"""dsvm-kit's environment builder, run on the machine by the Python it layers over (the one with the image's
CUDA torch; standard library only, Python 3.8 or newer). bootstrap/environment.py sends it with a job on stdin;
it prints one JSON line: what it did.

build: under a lock per project (nodes may share a home), the environment named after the file's content hash is
  kept when its marker says it was built from the same content over the same Python; else it is built anew:
  - requirements.txt: a venv whose own site-packages come first and the base env's after (a .pth file calls
    site.addsitedir on them): nothing of the base is copied, and what pip installs shadows it;
  - environment.yml: a conda env cloned from the base env (conda packages need a conda prefix), then its
    conda dependencies, then its `pip:` section as for requirements.txt.
  Before anything is installed, the resolvers say what they would install (`pip install --dry-run --report`,
  `conda install --dry-run --json`); a replacement of the image's torch or CUDA libraries is refused unless
  allowed. Then the kernelspec is pointed at the new environment and the project's older ones are removed.
  A failure removes only the half-built environment: the kernel keeps its previous one.
lock: the exact versions of the environment's own packages (not the base's).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig

MARKER = "dsvm-kit.json"  # written last: an environment without it is half-built
BASE_PTH = "_dsvm_kit_base.pth"  # in the venv's own site-packages: the base env's site-packages after them
PIP_DRY_RUN = (22, 2)  # pip's first version with `install --dry-run --report`
HASH_LENGTH = 12  # hex digits of the content hash in an environment's name
STAGE = "== "  # how the builder's own lines start in the log
# The image's torch and the CUDA libraries it was built with: pip and conda names.
PROTECTED_NAMES = frozenset(
    {
        *("torch", "pytorch", "libtorch", "pytorch-cuda", "pytorch-gpu", "pytorch-cpu", "cpuonly", "triton"),
        *("cudatoolkit", "cuda-toolkit", "cudnn", "nccl"),
    }
)
PROTECTED_PREFIXES = ("nvidia-", "cuda-cudart", "cuda-runtime", "cuda-libraries", "cuda-nvrtc", "libcu", "libnccl")
_PROGRESS = ("Collecting ", "Downloading ", "Installing collected packages: ", "Building wheel for ", STAGE)


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def protected(name: str) -> bool:
    name = canonical(name)
    return name in PROTECTED_NAMES or name.startswith(PROTECTED_PREFIXES)


def pip_items(report: dict) -> list[dict]:
    """What `pip install --report` would install: name, version, source (a URL or "the package index")."""
    items = []
    for entry in report.get("install", []):
        url = entry.get("download_info", {}).get("url", "")
        source = url if entry.get("is_direct") else "the package index"
        items.append({"name": entry["metadata"]["name"], "version": entry["metadata"]["version"], "source": source})
    return items


def conda_items(answer: dict) -> list[dict]:
    """What `conda install --dry-run --json` would link: name, version, source (its channel)."""
    items = []
    for entry in (answer.get("actions") or {}).get("LINK", []):
        channel = entry.get("channel") or entry.get("schannel") or "a conda channel"
        items.append({"name": entry["name"], "version": entry.get("version", "?"), "source": channel})
    return items


def refusal(items: list[dict], file: str, torch_version: str | None, allow_torch: bool) -> str | None:
    """One line naming the first package that would replace the image's torch or its CUDA libraries; None when
    nothing would (or when allowed)."""
    hits = [item for item in items if protected(item["name"])]
    if allow_torch or not hits:
        return None
    hit = min(hits, key=lambda item: canonical(item["name"]) not in ("torch", "pytorch"))
    what = f"{hit['name']} {hit['version']}"
    if "+cpu" in hit["version"] or "/cpu/" in hit["source"] or canonical(hit["name"]) in ("cpuonly", "pytorch-cpu"):
        what += " (a CPU build)"
    image = f"the image's torch {torch_version}" if torch_version else "the image's torch"
    if canonical(hit["name"]) in ("torch", "pytorch", "libtorch"):
        change = f"would replace {image} with {what}"
    else:
        change = f"would install {what} over the CUDA libraries of {image}"
    return (
        f"{file} {change} (from {hit['source']}); nothing was installed: remove that requirement "
        "(or what pulls it in), or pass --environment-allow-torch to install it anyway"
    )


def progress(lines: list[str]) -> str | None:
    """What the build is doing, from the log's last lines: the current package or stage."""
    for line in reversed(lines):
        text = line.strip()
        if text.startswith(_PROGRESS):
            text = text[len(STAGE) :] if text.startswith(STAGE) else text
            return re.sub(r" \(from .*\)$", "", text)[:120]
    return None


def failure_lines(text: str, most: int = 12) -> list[str]:
    """The lines of a failed stage's output that say why: conda's `--json` error message, or from pip's first
    error line on, else its last lines; warnings about unreachable extra indexes left out."""
    conda_error = re.search(r'^\s*"error": ("(?:[^"\\]|\\.)*")', text, re.M)
    if conda_error:
        text = json.loads(conda_error.group(1))
    lines = [line.rstrip() for line in text.splitlines() if line.strip() and "is ignored: it is neither" not in line]
    first_error = next((i for i, line in enumerate(lines) if re.match(r"(ERROR|\w+Error)\b", line.strip())), None)
    chosen = lines[first_error:] if first_error is not None else lines
    return chosen[-most:]


def pinned(report: dict) -> list[str]:
    """`name==version` for each package the dry run resolved from an index: installed with the file, these make
    the install take exactly what was checked (direct URLs are pinned in the file already)."""
    return [f"{item['name']}=={item['version']}" for item in pip_items(report) if item["source"] == "the package index"]


def conda_root(prefix: str) -> str:
    """The conda installation a conda env (<root>/envs/<name>) or a root env belongs to."""
    parent = os.path.dirname(prefix)
    return os.path.dirname(parent) if os.path.basename(parent) == "envs" else prefix


def find_conda(prefix: str) -> str | None:
    root = conda_root(prefix)
    for path in (os.path.join(root, "bin", "conda"), os.path.join(root, "condabin", "conda")):
        if os.access(path, os.X_OK):
            return path
    return None


def conda_commands(conda: str, base: str, env: str, channels: list[str], specs: list[str]) -> dict[str, list[str]]:
    """The conda command lines of a build: the clone of the base env (conda links what its package cache holds
    and downloads the rest), the dry run of the file's conda dependencies in the clone (our own prefix: the base
    may not be writable), then their install there."""
    channel_args = ["--override-channels", *[arg for c in channels for arg in ("-c", c)]] if channels else []
    return {
        "clone": [conda, "create", "--yes", "--quiet", "--prefix", env, "--clone", base],
        "dry_run": [conda, "install", "--dry-run", "--json", "--prefix", env, *channel_args, *specs],
        "install": [conda, "install", "--yes", "--quiet", "--prefix", env, *channel_args, *specs],
    }


def conda_lock(env_list: list[dict], base_list: list[dict], header: str) -> str:
    """environment.lock.yml: the packages `conda list --json` shows in the environment and not, the same, in the
    base env it was cloned from; conda's as channel::name=version=build, pip's (channel pypi) under `pip:`."""

    def key(entry: dict) -> tuple:
        return (entry["name"], entry["version"], entry.get("build_string", ""), entry.get("channel", ""))

    base = {key(entry) for entry in base_list}
    own = sorted((entry for entry in env_list if key(entry) not in base), key=lambda e: e["name"])
    conda = [e for e in own if e.get("channel") != "pypi"]
    pip = [e for e in own if e.get("channel") == "pypi"]
    lines = [header.rstrip("\n"), "dependencies:"]
    lines += [f"  - {e['channel']}::{e['name']}={e['version']}={e.get('build_string', '')}" for e in conda]
    if pip:
        lines += ["  - pip:", *(f"    - {e['name']}=={e['version']}" for e in pip)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- on the machine


class Failed(Exception):
    def __init__(self, stage: str, lines: list[str]):
        super().__init__(stage)
        self.stage, self.lines = stage, lines


class Build:
    def __init__(self, job: dict):
        self.job = job
        self.env = os.path.join(job["envs_dir"], job["name"])
        self.log_path = os.path.join(job["envs_dir"], job["name"] + ".log")
        self.marker = {"sha256": job["sha256"], "base": sys.executable, "file": job["file"]}
        self.log = None

    def stage(self, text: str) -> None:
        self.log.write(f"{STAGE}{text}\n")
        self.log.flush()

    def run(self, stage: str, argv: list[str], *, capture: bool = False) -> str:
        """Run argv, its output into the log (or captured and returned); Failed with its lines if it fails."""
        self.log.write("$ " + " ".join(argv) + "\n")
        self.log.flush()
        start = self.log.tell()
        done = subprocess.run(
            argv,
            stdout=subprocess.PIPE if capture else self.log,
            stderr=subprocess.PIPE if capture else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
        if capture:
            self.log.write(done.stderr or "")
            self.log.flush()
        if done.returncode != 0:
            output = done.stdout + done.stderr if capture else _read_from(self.log_path, start)
            raise Failed(stage, failure_lines(output))
        return done.stdout if capture else ""

    def python(self) -> str:
        return os.path.join(self.env, "bin", "python")

    def built_marker(self) -> dict | None:
        """The marker of this environment when it was built from the same content over the same Python."""
        try:
            with open(os.path.join(self.env, MARKER)) as f:
                marker = json.load(f)
        except (OSError, ValueError):
            return None
        return marker if all(marker.get(key) == value for key, value in self.marker.items()) else None

    def make(self) -> dict:
        """Build the environment; what it installed, and what of the image it replaced (allowed)."""
        shutil.rmtree(self.env, ignore_errors=True)
        os.makedirs(self.job["envs_dir"], exist_ok=True)
        with open(self.log_path, "w") as self.log:
            installed, replaced = [], []
            if self.job["kind"] == "conda":
                installed, replaced = self.conda()
            else:
                self.venv()
            if self.job["pip"].strip():
                more, more_replaced = self.pip()
                installed, replaced = installed + more, replaced + more_replaced
            self.stage("checking that the kernel and torch import")
            self.run("checking the environment", [self.python(), "-c", "import ipykernel, torch"])
            self.stage("done")
        return {"installed": installed, "replaced": replaced}

    def venv(self) -> None:
        self.stage(f"creating a venv over {sys.executable}")
        self.run("creating the venv", [sys.executable, "-m", "venv", "--without-pip", self.env])
        purelib = self.run(
            "creating the venv",
            [self.python(), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture=True,
        ).strip()
        lines = [f"import site; site.addsitedir({d!r})\n" for d in base_site_dirs()]
        with open(os.path.join(purelib, BASE_PTH), "w") as f:
            f.writelines(lines)

    def conda(self) -> tuple[list[str], list[str]]:
        conda = find_conda(sys.prefix)
        if conda is None:
            raise Failed(
                "finding conda",
                [
                    f"{self.job['file']} needs conda on the machine, and {sys.executable} is in no conda installation; "
                    "use a requirements.txt"
                ],
            )
        spec = self.job["conda"]
        commands = conda_commands(conda, sys.prefix, self.env, spec["channels"], spec["specs"])
        self.stage(f"cloning {sys.prefix}")
        self.run("cloning the base env", commands["clone"])
        items = []
        if spec["specs"]:
            self.stage(f"resolving the conda dependencies of {self.job['file']}")
            answer = json.loads(self.run("resolving", commands["dry_run"], capture=True) or "{}")
            items = conda_items(answer)
            self.refuse(items)
        if items:
            self.stage(f"installing {len(items)} conda package(s): " + ", ".join(i["name"] for i in items))
            self.run("installing", commands["install"])
        return [f"{i['name']} {i['version']}" for i in items], [i["name"] for i in items if protected(i["name"])]

    def pip(self) -> tuple[list[str], list[str]]:
        requirements = os.path.join(self.env, "requirements.txt")
        with open(requirements, "w") as f:
            f.write(self.job["pip"])
        pip = [self.python(), "-m", "pip"]
        version = self.run("finding pip", [self.python(), "-c", "import pip; print(pip.__version__)"], capture=True)
        if tuple(int(p) for p in re.findall(r"\d+", version)[:2]) < PIP_DRY_RUN:
            self.stage(f"pip {version.strip()} cannot tell what it would install: a newer pip into the environment")
            self.run("installing pip", [*pip, "install", "--quiet", "pip>={}.{}".format(*PIP_DRY_RUN)])
        self.stage(f"resolving {self.job['file']}")
        report_path = os.path.join(self.env, "resolution.json")
        self.run("resolving", [*pip, "install", "--dry-run", "--report", report_path, "-r", requirements])
        with open(report_path) as f:
            report = json.load(f)
        items = pip_items(report)
        self.refuse(items)
        if not items:
            self.stage("nothing to install: the base env has it all")
            return [], []
        self.stage(f"installing {len(items)} package(s): " + ", ".join(i["name"] for i in items))
        exact = []
        if "--hash" not in self.job["pip"]:  # hash-checking mode wants a hash on every line
            exact = [os.path.join(self.env, "resolution.txt")]
            with open(exact[0], "w") as f:
                f.write("".join(line + "\n" for line in pinned(report)))
        argv = [*pip, "install", "--progress-bar", "off", "-r", requirements, *(a for p in exact for a in ("-r", p))]
        self.run("installing", argv)
        return [f"{i['name']} {i['version']}" for i in items], [i["name"] for i in items if protected(i["name"])]

    def refuse(self, items: list[dict]) -> None:
        line = refusal(items, self.job["file"], _torch_version(), self.job["allow_torch"])
        if line is not None:
            self.stage("refused: " + line)
            raise Refused(line)

    def register(self) -> bool:
        """Point the project's kernelspec at this environment (atomically); True if it changed."""
        kernel = self.job["kernel"]
        spec = {
            "argv": [self.python(), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": kernel["display_name"],
            "language": "python",
            "metadata": {"debugger": True, "dsvm-kit": {"environment": self.job["name"]}},
        }
        path = os.path.join(kernel["dir"], "kernel.json")
        if _read(path) and json.loads(_read(path)) == spec:
            return False
        os.makedirs(kernel["dir"], exist_ok=True)
        with open(path + ".partial", "w") as f:
            json.dump(spec, f, indent=1)
        os.replace(path + ".partial", path)
        return True

    def prune(self) -> list[str]:
        """Remove the project's other environments and logs (older contents of the file, failed builds); the
        names of the environments removed."""
        same_project = re.compile(re.escape(self.job["project"]) + rf"-[0-9a-f]{{{HASH_LENGTH}}}(\.log)?")
        removed = []
        for entry in sorted(os.listdir(self.job["envs_dir"])):
            log = entry.endswith(".log")
            if not same_project.fullmatch(entry) or (entry[:-4] if log else entry) == self.job["name"]:
                continue
            path = os.path.join(self.job["envs_dir"], entry)
            if log:
                _remove(path)
            else:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(entry)
        return removed


class Refused(Exception):
    pass


def base_site_dirs() -> list[str]:
    """The base env's site-packages directories, in its own order: the user's first where the base reads it (what
    `pip install --user` put there, e.g. when the base env is not writable), then the env's."""
    user = [site.getusersitepackages()] if site.ENABLE_USER_SITE else []
    found = [*user, *site.getsitepackages(), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    return [d for i, d in enumerate(found) if d not in found[:i] and os.path.isdir(d)]


def _torch_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("torch")
    except Exception:
        return None


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _read_from(path: str, offset: int) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def build(job: dict) -> dict:
    import fcntl  # POSIX: the machine's; this module is imported on the laptop too

    os.makedirs(job["envs_dir"], exist_ok=True)
    with open(os.path.join(job["envs_dir"], "." + job["project"] + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another node on a shared home, another `up`: one builds, one waits
        b = Build(job)
        result = {"python": b.python(), "log": b.log_path, "installed": [], "built": False}
        marker = b.built_marker()
        if marker is not None and marker.get("replaced") and not job["allow_torch"]:
            message = (
                f"{job['file']} was built with --environment-allow-torch and replaced the image's "
                f"{', '.join(marker['replaced'])}: pass it again, or remove that requirement"
            )
            return {**result, "status": "refused", "message": message}
        if marker is None:
            try:
                made = b.make()
            except Refused as e:
                shutil.rmtree(b.env, ignore_errors=True)
                return {**result, "status": "refused", "message": str(e)}
            except Failed as e:
                shutil.rmtree(b.env, ignore_errors=True)
                return {**result, "status": "failed", "stage": e.stage, "lines": e.lines}
            with open(os.path.join(b.env, MARKER), "w") as f:
                json.dump({**b.marker, "replaced": made["replaced"]}, f)
            result.update(built=True, installed=made["installed"])
        return {**result, "status": "ready", "registered": b.register(), "removed": b.prune()}


def lock(job: dict) -> dict:
    env = job["env"]
    python = os.path.join(env, "bin", "python")
    if job["kind"] == "conda":
        conda = find_conda(sys.prefix)
        if conda is None:
            return {"status": "failed", "lines": [f"no conda found beside {sys.executable}"]}
        lists = [_output([conda, "list", "--json", "--prefix", prefix]) for prefix in (env, sys.prefix)]
        return {"status": "ready", "text": conda_lock(json.loads(lists[0]), json.loads(lists[1]), job["header"])}
    purelib = _output([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip()
    frozen = _output([python, "-m", "pip", "freeze", "--all", "--path", purelib])
    return {"status": "ready", "text": job["header"] + frozen}


def _output(argv: list[str]) -> str:
    return subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True).stdout


def main() -> None:
    job = json.load(sys.stdin)
    result = lock(job) if job.get("mode") == "lock" else build(job)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
