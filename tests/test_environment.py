"""A project's environment on the machine (bootstrap.environment, bootstrap.envbuild): the rules as pure functions,
then real builds with real pip from the package index, over SSH to a fake VM and on this machine.

The package installed is inflection (one small pure-Python file, not in the test venv, so not in the base env).
The lock's round trip is in test_environment_e2e.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex

import pytest

from bootstrap import envbuild, environment
from bootstrap.environment import BuildFailed, Refused, Spec, SpecError
from bootstrap.pyenv import KERNEL_DATA_DIR
from bootstrap.remote import LocalRemote, Remote, expand
from provision import projectenv
from provision.errors import UsageError
from provision.output import Output
from provision.settings import Settings, load
from provision.state import Journal, Record, StateStore
from tests.fakes.wheels import wheel

pytest_plugins = ["tests.fakes.fixtures"]

INDEX = "the package index"


# ------------------------------------------------------------------------------------------------ the rules


@pytest.mark.parametrize(
    ("items", "names"),
    [
        ([{"name": "torch", "version": "2.4.0", "source": INDEX}], "with torch 2.4.0 (from the package index)"),
        (
            [{"name": "torch", "version": "2.4.0+cpu", "source": "https://download.pytorch.org/whl/cpu/torch.whl"}],
            "with torch 2.4.0+cpu (a CPU build) (from https://download.pytorch.org/whl/cpu/torch.whl)",
        ),
        (
            [{"name": "nvidia_cublas_cu12", "version": "12.1.3.1", "source": INDEX}],
            "would install nvidia_cublas_cu12 12.1.3.1 over the CUDA libraries of the image's torch 2.13.0+cu121",
        ),
        (  # torch named first, whatever order the resolver lists them in
            [
                {"name": "nvidia-nccl-cu13", "version": "2.29.7", "source": INDEX},
                {"name": "Torch", "version": "2.12.0", "source": INDEX},
            ],
            "would replace the image's torch 2.13.0+cu121 with Torch 2.12.0",
        ),
        ([{"name": "pytorch", "version": "2.1.0", "source": "conda-forge"}], "with pytorch 2.1.0 (from conda-forge)"),
    ],
)
def test_a_replacement_of_torch_or_its_cuda_libraries_is_refused_in_one_line_naming_it(items, names):
    line = envbuild.refusal(items, "requirements.txt", "2.13.0+cu121", allow_torch=False)
    assert line.startswith("requirements.txt would ") and names in line and "\n" not in line, line
    assert line.endswith("or pass --environment-allow-torch to install it anyway")
    assert envbuild.refusal(items, "requirements.txt", "2.13.0+cu121", allow_torch=True) is None


def test_packages_beside_torch_are_not_refused():
    items = [{"name": name, "version": "1", "source": INDEX} for name in ("inflection", "torchmetrics", "cuda-python")]
    assert envbuild.refusal(items, "requirements.txt", "2.13.0", allow_torch=False) is None


def test_the_dry_run_report_gives_what_would_be_installed_and_pins_what_came_from_the_index():
    report = {
        "install": [
            {"metadata": {"name": "inflection", "version": "0.5.1"}, "is_direct": False, "download_info": {"url": "x"}},
            {
                "metadata": {"name": "torch", "version": "0.0.1"},
                "is_direct": True,
                "download_info": {"url": "file:///w/torch-0.0.1-py3-none-any.whl"},
            },
        ]
    }
    assert [i["source"] for i in envbuild.pip_items(report)] == [INDEX, "file:///w/torch-0.0.1-py3-none-any.whl"]
    assert envbuild.pinned(report) == ["inflection==0.5.1"]


def test_progress_shows_the_current_package_or_stage():
    log = [
        "== resolving requirements.txt",
        "Collecting inflection (from -r /e/requirements.txt (line 1))",
        "  Downloading inflection-0.5.1-py2.py3-none-any.whl (9.5 kB)",
        "Would install inflection-0.5.1",
    ]
    assert envbuild.progress(log) == "Downloading inflection-0.5.1-py2.py3-none-any.whl (9.5 kB)"
    assert envbuild.progress(log[:2]) == "Collecting inflection"
    assert envbuild.progress([*log, "== installing 1 package(s): inflection"]) == "installing 1 package(s): inflection"
    assert envbuild.progress(["Looking in links: /opt/wheels"]) is None


def test_failure_lines_start_at_the_resolvers_first_error():
    output = "\n".join(
        [
            "Collecting a",
            "WARNING: Location 'file:///x/' is ignored: it is neither a file nor a directory.",
            "ERROR: Cannot install a==1 and a==2 because these package versions have conflicting dependencies.",
            "The conflict is caused by:",
            "    The user requested a==1",
            "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/...",
        ]
    )
    lines = envbuild.failure_lines(output)
    assert lines[0].startswith("ERROR: Cannot install a==1") and lines[-1].startswith("ERROR: ResolutionImpossible")
    assert envbuild.failure_lines("one\ntwo\n") == ["one", "two"]


def test_an_environment_is_named_by_project_and_content_hash():
    spec = Spec("requirements.txt", "inflection\n")
    assert spec.name("proj") == "proj-" + hashlib.sha256(b"inflection\n").hexdigest()[:12]
    assert Spec("requirements.txt", "inflection==0.5.1\n").name("proj") != spec.name("proj")
    assert spec.kind == "pip" and spec.parts() == (None, "inflection\n")


ENVIRONMENT_YML = """\
name: team
channels: [conda-forge, nodefaults]
dependencies:
  - python=3.10
  - conda-forge::scipy>=1.11
  - pip
  - pip:
    - inflection==0.5.1
    - --extra-index-url https://example.org/simple
"""


def test_environment_yml_gives_channels_conda_specs_and_its_pip_section():
    conda, pip = Spec("environment.yml", ENVIRONMENT_YML).parts()
    assert conda == {
        "channels": ["conda-forge", "nodefaults"],
        "specs": ["python=3.10", "conda-forge::scipy>=1.11", "pip"],
    }
    assert pip == "inflection==0.5.1\n--extra-index-url https://example.org/simple\n"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("environment.yml", "dependencies: [a\n", "environment.yml is not YAML: "),
        ("environment.yml", "name: x\n", "must be a conda environment file with a `dependencies:` list"),
        ("environment.yml", "dependencies:\n  - {conda: [a]}\n", "dependency {'conda': ['a']} is neither"),
        ("Pipfile", "[packages]\n", "must be a requirements .txt or a conda environment .yml"),
        ("requirements.txt", "a\n-r base.txt\n", "requirements.txt refers to another file (-r base.txt): only"),
        ("environment.yml", "dependencies:\n  - pip:\n    - --constraint=c.txt\n", "refers to another file"),
    ],
)
def test_a_bad_environment_file_is_one_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(SpecError) as caught:
        environment.read(tmp_path / name)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_conda_command_lines_clone_the_base_then_resolve_and_install_in_the_clone():
    conda, base = "/anaconda/bin/conda", "/anaconda/envs/py38_default"
    commands = envbuild.conda_commands(conda, base, "/e/p-1", ["conda-forge"], ["scipy>=1.11"])
    assert list(commands) == ["clone", "dry_run", "install"]  # the order a build runs them in
    assert commands["clone"] == [conda, "create", "--yes", "--quiet", "--prefix", "/e/p-1", "--clone", base]
    channels = ["--override-channels", "-c", "conda-forge", "scipy>=1.11"]
    assert commands["dry_run"] == [conda, "install", "--dry-run", "--json", "--prefix", "/e/p-1", *channels]
    assert commands["install"] == [conda, "install", "--yes", "--quiet", "--prefix", "/e/p-1", *channels]
    assert envbuild.conda_commands("c", "b", "e", [], ["x"])["install"] == [
        "c",
        "install",
        "--yes",
        "--quiet",
        "--prefix",
        "e",
        "x",
    ]
    assert envbuild.conda_root(base) == envbuild.conda_root("/anaconda") == "/anaconda"


def test_a_conda_json_error_gives_its_message():
    answer = json.dumps(
        {
            "error": "PackagesNotFoundError: The following packages are not available from current channels:\n\n  - nosuch",
            "exception_name": "PackagesNotFoundError",
        },
        indent=2,
    )
    assert envbuild.failure_lines(answer + "\n") == [
        "PackagesNotFoundError: The following packages are not available from current channels:",
        "  - nosuch",
    ]


def test_conda_dry_run_answers_are_judged_like_pips():
    answer = {
        "actions": {
            "LINK": [
                {"name": "scipy", "version": "1.11.4", "channel": "conda-forge"},
                {"name": "pytorch", "version": "2.1.0", "build_string": "cpu_py310", "channel": "conda-forge"},
            ]
        }
    }
    items = envbuild.conda_items(answer)
    line = envbuild.refusal(items, "environment.yml", "2.13.0+cu121", allow_torch=False)
    assert "environment.yml would replace the image's torch 2.13.0+cu121 with pytorch 2.1.0" in line
    assert envbuild.conda_items({"message": "All requested packages already installed.", "success": True}) == []


def test_the_conda_lock_holds_what_differs_from_the_base_env():
    base = [
        {"name": "pytorch", "version": "2.1.0", "build_string": "cuda", "channel": "pytorch"},
        {"name": "numpy", "version": "1.26.0", "build_string": "py310", "channel": "defaults"},
    ]
    env = [
        *base[:1],
        {"name": "numpy", "version": "1.26.4", "build_string": "py310", "channel": "conda-forge"},
        {"name": "inflection", "version": "0.5.1", "build_string": "pypi_0", "channel": "pypi"},
    ]
    assert envbuild.conda_lock(env, base, "# header\n") == (
        "# header\ndependencies:\n  - conda-forge::numpy=1.26.4=py310\n  - pip:\n    - inflection==0.5.1\n"
    )


# -------------------------------------------------------------------------------------------------- settings


def test_the_environment_setting_is_relative_to_the_project_and_checked_before_anything(tmp_path):
    (tmp_path / "requirements.txt").write_text("inflection\n")
    (tmp_path / "provision.toml").write_text('environment = "requirements.txt"\ntarget = "local"\n')
    s = load({}, env={}, cwd=tmp_path)
    assert s.environment == str(tmp_path / "requirements.txt") and s.environment_allow_torch is False
    s = load({}, env={"PROVISION_ENVIRONMENT_ALLOW_TORCH": "1"}, cwd=tmp_path)
    assert s.environment_allow_torch is True
    with pytest.raises(UsageError, match=r"environment .*/nothing\.txt is not a file"):
        load({"environment": "nothing.txt", "target": "local"}, env={}, cwd=tmp_path)
    (tmp_path / "environment.yml").write_text("dependencies: [a\n")
    with pytest.raises(UsageError, match="environment.yml is not YAML"):
        load({"target": "local"}, env={"PROVISION_ENVIRONMENT": "environment.yml"}, cwd=tmp_path)


# --------------------------------------------------------------------------------------- builds on a machine


def build(remote: Remote, base: str, text: str, **options) -> environment.Environment:
    return environment.ensure(remote, base, "proj", Spec("requirements.txt", text), **options)


def kernel_says(remote: Remote, base: str, code: str) -> str:
    """What `code` prints in a real kernel started from the kernelspec `proj`, as the kit's Jupyter finds it."""
    driver = (
        "import sys\nfrom jupyter_client.manager import start_new_kernel\n"
        "km, kc = start_new_kernel(kernel_name='proj', startup_timeout=60)\nout = []\n"
        "hook = lambda m: out.append(m['content'].get('text', '')) if m['msg_type'] == 'stream' else None\n"
        "try:\n    kc.execute_interactive(sys.argv[1], output_hook=hook, timeout=60)\n"
        "finally:\n    kc.stop_channels(); km.shutdown_kernel(now=True)\nprint(''.join(out))\n"
    )
    data = shlex.quote(expand(remote, KERNEL_DATA_DIR))
    command = f"JUPYTER_PATH={data} {shlex.quote(base)} -c {shlex.quote(driver)} {shlex.quote(code)}"
    return remote.run(command, timeout=120).stdout


def modified(remote: Remote, env: environment.Environment) -> str:
    return remote.run(f"stat -c %y {shlex.quote(env.path)}/{envbuild.MARKER}").stdout


def test_the_kernel_runs_the_environment_over_the_base_and_a_rerun_does_not_build(remote: Remote, env_python: str):
    shown = []
    env = build(remote, env_python, "inflection\n", on_progress=shown.append)
    assert env.built and env.installed == ("inflection 0.5.1",) and env.kernel == "proj"
    assert any("inflection" in line for line in shown), shown  # the progress line named the package
    said = kernel_says(remote, env_python, "import inflection, sys, torch; print(inflection.__file__, sys.executable)")
    module, executable = said.split()
    assert module.startswith(env.path + "/") and executable == env.python  # its own package, the base's torch
    built_at = modified(remote, env)
    again = build(remote, env_python, "inflection\n")
    assert not again.built and again.installed == () and again.python == env.python
    assert modified(remote, env) == built_at


def test_an_edit_rebuilds_and_a_failed_or_refused_build_leaves_the_kernel_as_it_was(ssh_remote, vm, tmp_path):
    base = vm.python
    old = build(ssh_remote, base, "inflection\n")
    new = build(ssh_remote, base, "inflection==0.5.1\n")
    assert new.built and new.name != old.name and new.removed == (old.name,)
    envs = shlex.quote(expand(ssh_remote, environment.ENVS_DIR))
    assert ssh_remote.run(f"ls {envs}").stdout.split() == [new.name, f"{new.name}.log"]

    broken = "inflection==0.5.1\ninflection==0.3.0\n"
    with pytest.raises(BuildFailed) as caught:  # a broken requirement: the resolver's lines, the log's path
        build(ssh_remote, base, broken)
    message = str(caught.value)
    assert message.startswith("the environment from requirements.txt did not build (resolving):\n  ERROR: ")
    assert "ResolutionImpossible" in message and "ResolutionImpossible" in ssh_remote.read_text(caught.value.log)

    ssh_remote.put(wheel(tmp_path, "torch", "0.0.1"), "~/wheels/torch-0.0.1-py3-none-any.whl")
    swap = f"inflection\ntorch @ file://{ssh_remote.home}/wheels/torch-0.0.1-py3-none-any.whl\n"
    with pytest.raises(Refused) as caught:  # another torch: refused before anything is installed
        build(ssh_remote, base, swap)
    torch = ssh_remote.run(f"{shlex.quote(base)} -c 'import torch; print(torch.__version__)'").stdout.strip()
    assert str(caught.value).startswith(f"requirements.txt would replace the image's torch {torch} with torch 0.0.1 (")
    refused = Spec("requirements.txt", swap).name("proj")
    log = ssh_remote.read_text(f"{environment.ENVS_DIR}/{refused}.log")
    assert "--dry-run" in log and "Installing collected" not in log and "Successfully installed" not in log
    logs = [f"{Spec('requirements.txt', text).name('proj')}.log" for text in (broken, swap)]
    assert ssh_remote.run(f"ls {envs}").stdout.split() == sorted([new.name, f"{new.name}.log", *logs])

    said = kernel_says(ssh_remote, base, "import inflection, sys; print(sys.executable)").strip()
    assert said == new.python  # the kernel still runs the last good environment

    allowed = build(ssh_remote, base, swap, allow_torch=True)  # asked for: the swap happens...
    version = ssh_remote.run(f"{allowed.python} -c 'import torch; print(torch.__version__)'").stdout.strip()
    assert allowed.built and version == "0.0.1"
    with pytest.raises(Refused, match="was built with --environment-allow-torch and replaced the image's torch"):
        build(ssh_remote, base, swap)  # ...and is refused once no longer allowed, the environment left as it is
    assert modified(ssh_remote, allowed)


@pytest.mark.parametrize(("content", "shown"), [("inflection==0.3.0\n", "changed since `up`"), (None, "is gone")])
def test_start_keeps_the_environment_up_made_when_its_file_changed_or_is_gone(tmp_path, content, shown):
    file = tmp_path / "requirements.txt"
    if content is not None:
        file.write_text(content)
    made = {"name": "proj-0123456789ab", "file": str(file), "sha256": Spec("requirements.txt", "inflection\n").sha256}
    journal = Journal(StateStore(tmp_path / "state"), Record(name="proj", target="local", created="", environment=made))
    err = io.StringIO()
    nowhere = LocalRemote(str(tmp_path / "no-such-home"), env={"PATH": ""})  # nothing may run there
    projectenv.restore(nowhere, "/no/python", Settings(), journal, Output(err=err))
    assert (
        f"{file} {shown}: the machine keeps environment proj-0123456789ab; `provision up` rebuilds it" in err.getvalue()
    )
    assert journal.record.environment == made
