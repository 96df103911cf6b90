"""bootstrap.pychoice: every candidate Python probed in one command, the best chosen and explained.

Stand-in Pythons (a real python seeing only stub packages, with dist-info versions and a stub
torch that answers `cuda.is_available()` as told) cover GPU machines; the fake VM's conda envs
(real torch on the CPU, a jupyter_server 1.x dist-info) cover the choice over SSH.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.pychoice import choose
from bootstrap.remote import BootstrapError, LocalRemote, SSHRemote
from tests.fakes.vm import CONDA_DIR

pytest_plugins = ["tests.fakes.fixtures"]


def _fake_python(
    path: Path,
    *,
    torch: str | None = None,
    cuda: bool = False,
    build: str | None = None,  # torch/version.py's: "cpu", or the GPU platform it was built for ("cuda=12.1")
    broken_torch: bool = False,
    server: str | None = None,
    others: tuple[str, ...] = ("jupyterlab", "ipykernel", "pip"),
) -> Path:
    """An executable that is a real python seeing only stub packages (and their versions)."""
    site = path.parent.parent / "fake-site"
    modules = {module: "" for module in others}
    if torch:
        modules["torch"] = f"__version__ = {torch!r}\nclass cuda:\n    is_available = staticmethod(lambda: {cuda})\n"
    if broken_torch:
        modules["torch"] = "raise ImportError('libcudart.so.12: cannot open shared object file')\n"
    if build:  # as a wheel ships it
        platforms = {"cuda": None, "hip": None} | dict([build.split("=")] if "=" in build else [])
        modules["torch/version.py"] = f"__version__ = {torch!r}\n" + "".join(
            f"{k} = {v!r}\n" for k, v in platforms.items()
        )
    if server:
        modules["jupyter_server"] = ""
        info = site / f"jupyter_server-{server}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: jupyter_server\nVersion: {server}\n")
    for module, code in modules.items():
        file = site / module if module.endswith(".py") else site / module / "__init__.py"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(code)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec /usr/bin/python3 -S "$@"\n')
    path.chmod(0o755)
    return path


def _dsvm(tmp_path: Path, envs: dict[str, dict]) -> tuple[LocalRemote, tuple[str, ...]]:
    """A machine whose conda root holds `envs` ({name: _fake_python options}) and no python3 on PATH."""
    conda = tmp_path / "anaconda"
    for name, options in envs.items():
        _fake_python(conda / "envs" / name / "bin" / "python", **options)
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "bash").symlink_to("/bin/bash")
    remote = LocalRemote(str(tmp_path), env={"PATH": str(tools)})
    return remote, (f"{conda}/envs/*/bin/python", f"{conda}/bin/python")


def test_on_a_gpu_dsvm_the_env_with_cuda_torch_and_jupyter_server_2_wins_and_says_why(tmp_path):
    remote, candidates = _dsvm(
        tmp_path,
        {
            "azureml_py310_sdkv2": {"server": "2.14.1"},
            "azureml_py38": {"torch": "1.13.1", "cuda": True, "server": "1.24.0"},
            "azureml_py38_PT_and_TF": {"broken_torch": True, "server": "2.14.1"},
            "py38_default": {"torch": "2.3.1+cu121", "cuda": True, "server": "2.14.1"},
        },
    )
    choice = choose(remote, candidates=candidates)
    assert choice.python == f"{tmp_path}/anaconda/envs/py38_default/bin/python"
    assert choice.env.missing == ()
    assert choice.describe() == (
        f"Python: {choice.python} (torch 2.3.1+cu121 with CUDA, jupyter_server 2.14.1); "
        "skipped azureml_py310_sdkv2: no torch, "
        "azureml_py38: jupyter_server 1.24.0 (needs 2 or newer), "
        "azureml_py38_PT_and_TF: torch does not import: ImportError: libcudart.so.12: cannot open shared object file"
    )


def test_cuda_torch_with_an_old_jupyter_server_beats_cpu_torch_and_gets_an_upgrade(tmp_path):
    remote, candidates = _dsvm(
        tmp_path,
        {
            "a_cpu": {"torch": "2.3.1+cpu", "server": "2.14.1"},
            "b_gpu": {"torch": "2.0.1", "cuda": True, "server": "1.24.0", "others": ("pip",)},
            "c_gpu_no_pip": {"torch": "2.0.1", "cuda": True, "others": ()},
        },
    )
    choice = choose(remote, allow_cpu=True, candidates=candidates)
    assert choice.env.label == "b_gpu"
    assert choice.env.missing == ("jupyter_server>=2", "jupyterlab", "ipykernel")
    assert dict(choice.others) == {
        "a_cpu": "torch 2.3.1+cpu sees no CUDA GPU",
        "c_gpu_no_pip": "no jupyter_server, and no pip to install what is missing",
    }


def test_cpu_only_envs_need_allow_cpu_and_are_then_chosen_deterministically(tmp_path):
    remote, candidates = _dsvm(
        tmp_path,
        {
            "a_old": {"torch": "2.3.1+cpu", "server": "1.24.0"},
            "b_good": {"torch": "2.3.1+cpu", "server": "2.14.1"},
            "c_good": {"torch": "2.3.1+cpu", "server": "2.15.0"},
        },
    )
    with pytest.raises(BootstrapError) as refused:
        choose(remote, candidates=candidates)
    message = str(refused.value)
    assert message.startswith("no Python on the machine can run the notebook (a_old: torch 2.3.1+cpu sees no CUDA")
    assert "`nvidia-smi`" in message and "--allow-cpu" in message
    choice = choose(remote, allow_cpu=True, candidates=candidates)
    assert choice.describe() == (
        f"Python: {choice.python} (torch 2.3.1+cpu CPU only, jupyter_server 2.14.1); "
        "skipped a_old: jupyter_server 1.24.0 (needs 2 or newer), c_good: as good, found later"
    )


def test_torch_is_imported_only_where_its_build_could_see_a_gpu(tmp_path):
    """A CPU build says so in torch/version.py: the probe reads that and never imports it (here, an import would
    fail); a CUDA build, or a torch without that file, is imported to ask CUDA."""
    remote, candidates = _dsvm(
        tmp_path,
        {
            "a_cpu_build": {"torch": "2.3.1+cpu", "build": "cpu", "broken_torch": True, "server": "2.14.1"},
            "b_cuda_build": {"torch": "2.3.1+cu121", "build": "cuda=12.1", "server": "2.14.1"},
            "c_rocm_build": {"torch": "2.3.1+rocm6.0", "build": "hip=6.0", "server": "2.14.1"},
        },
    )
    with pytest.raises(BootstrapError) as refused:
        choose(remote, candidates=candidates)
    message = str(refused.value)
    assert "a_cpu_build: torch 2.3.1+cpu is a CPU-only build" in message
    assert "b_cuda_build: torch 2.3.1+cu121 sees no CUDA GPU" in message  # imported: its stub answers False
    assert "c_rocm_build: torch 2.3.1+rocm6.0 sees no CUDA GPU" in message  # torch.cuda runs on ROCm too
    assert "`nvidia-smi`" in message and "install a CUDA build" in message and "--allow-cpu" in message
    choice = choose(remote, allow_cpu=True, candidates=candidates)
    assert choice.env.label == "a_cpu_build" and choice.env.cpu_build and choice.env.error is None


def test_no_python_at_all_names_where_it_looked(tmp_path):
    remote, candidates = _dsvm(tmp_path, {})
    with pytest.raises(BootstrapError, match=r"no Python on the machine \(looked for .*/anaconda/envs/\*/bin/python"):
        choose(remote, candidates=candidates)


def test_the_preferred_python_is_probed_like_any(tmp_path):
    remote = LocalRemote(str(tmp_path))
    with pytest.raises(BootstrapError, match="~/nowhere/python is not an executable file"):
        choose(remote, "~/nowhere/python")
    _fake_python(tmp_path / "bare" / "bin" / "python", others=("pip",))
    with pytest.raises(BootstrapError, match=r"\(.*/bare/bin/python: no torch\)"):
        choose(remote, "~/bare/bin/python")
    mine = _fake_python(tmp_path / "mine" / "bin" / "python", torch="2.3.1", server="2.14.1")
    assert choose(remote, "~/mine/bin/python", allow_cpu=True).python == str(mine)


def test_on_the_fake_dsvm_over_ssh_the_suitable_conda_env_is_chosen_and_explained(ssh_remote: SSHRemote, vm):
    choice = choose(ssh_remote, allow_cpu=True)
    envs = f"{ssh_remote.home}/{CONDA_DIR}/envs"
    assert choice.python == f"{envs}/py38_default/bin/python"
    assert choice.env.cuda is False and choice.env.server_ok and choice.env.missing == ()
    others = dict(choice.others)
    assert others["azureml_py310_sdkv2"] == "no torch"
    assert others["azureml_py38"] == "jupyter_server 1.24.0 (needs 2 or newer)"
    assert others[str(Path(vm.python).parent / "python3")] == "as good, found later"
    assert choice.describe().startswith(f"Python: {envs}/py38_default/bin/python (torch ")
