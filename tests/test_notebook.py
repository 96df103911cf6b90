"""The training notebook, executed for real on the CPU by papermill in a python3 kernel from this venv."""

import ast
import json
import math
import os
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from bootstrap.gpucheck import RESULT_SCHEMA, judge

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "first_pytorch_classifier.ipynb"
PARAMETERS = {"dataset", "epochs", "batch_size", "learning_rate", "device", "seed", "result_path", "data_dir"}
DIGITS = {"dataset": "digits", "epochs": 10, "batch_size": 128, "learning_rate": 0.01}
PROBE = """
import json, sys
print("PROBE " + json.dumps({
    "executable": sys.executable,
    "torchvision": sorted(name for name in sys.modules if name.split(".")[0] == "torchvision"),
}))
"""


FAKE_TORCHVISION = """
import sys, types
import numpy as np

class CIFAR10:
    # Stands in for torchvision.datasets.CIFAR10: no download, a few random images of CIFAR's shape and types.
    calls = []
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def __init__(self, root, train, download):
        CIFAR10.calls.append([str(root), train, download])
        rng = np.random.default_rng(int(train))
        size = 600 if train else 200
        self.data = rng.integers(0, 256, (size, 32, 32, 3), dtype=np.uint8)
        self.targets = rng.integers(0, 10, size).tolist()

sys.modules["torchvision"] = types.SimpleNamespace(datasets=types.SimpleNamespace(CIFAR10=CIFAR10))
"""
CIFAR_CALLS = (
    """print("PROBE " + __import__("json").dumps(__import__("sys").modules["torchvision"].datasets.CIFAR10.calls))"""
)


@pytest.fixture(autouse=True)
def share_the_cores(monkeypatch):
    """Kernels run side by side under pytest-xdist split the cores rather than oversubscribe them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    monkeypatch.setenv("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))


def execute(tmp_path, parameters, *, first_cell=None, last_cell=None):
    """Run a copy of the notebook with these parameters (and extra cells); return the executed notebook."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    if first_cell:
        notebook.cells.insert(0, nbformat.v4.new_code_cell(first_cell))
    if last_cell:
        notebook.cells.append(nbformat.v4.new_code_cell(last_cell))
    source, executed = tmp_path / "input.ipynb", tmp_path / "executed.ipynb"
    nbformat.write(notebook, source)
    papermill.execute_notebook(
        str(source),
        str(executed),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    return nbformat.read(executed, as_version=4)


def stdout_of(cell):
    return "".join(output["text"] for output in cell.get("outputs", []) if output.get("name") == "stdout")


def png_figures(notebook):
    return [
        output for cell in notebook.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {})
    ]


def assert_schema(result):
    assert set(result) == set(RESULT_SCHEMA)
    for key, types in RESULT_SCHEMA.items():
        assert isinstance(result[key], types), (key, result[key])
        if bool not in types:
            assert not isinstance(result[key], bool), (key, result[key])
    assert all(isinstance(loss, float) for loss in result["losses"])


def parameters_cell(notebook):
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    return tagged[0]


def test_the_committed_notebook_is_clean_valid_and_parameterised():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)

    cell = parameters_cell(notebook)
    defaults = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(cell.source).body}
    assert set(defaults) == PARAMETERS
    assert defaults["dataset"] == "cifar10" and defaults["device"] == "auto"
    assert defaults["result_path"] == "result.json" and defaults["data_dir"] == "~/data"
    assert 100 <= defaults["batch_size"] < 1000 and defaults["epochs"] >= 1 and defaults["learning_rate"] > 0


def test_digits_train_on_the_cpu_to_85_percent_with_figures_and_a_report(tmp_path):
    executed = execute(tmp_path, DIGITS | {"device": "auto", "seed": 3}, last_cell=PROBE)

    result = json.loads((tmp_path / "result.json").read_text())
    assert_schema(result)
    assert result["test_accuracy"] >= 0.85
    assert result["device"] == "cpu" and result["cuda_available"] is False and result["mixed_precision"] is False
    assert result["dataset"] == "digits" and result["num_classes"] == 10
    assert result["train_samples"] + result["test_samples"] == 1797
    assert result["epochs"] == len(result["losses"]) == 10 and result["batch_size"] == 128
    assert result["losses"][-1] < result["losses"][0]
    assert result["images_per_second"] > 0 and result["train_seconds"] > 0

    assert len(png_figures(executed)) >= 3  # training images, loss curve, confusion matrix

    probe = json.loads(stdout_of(executed.cells[-1]).split("PROBE ", 1)[1])
    assert probe["torchvision"] == []
    assert Path(probe["executable"]).resolve() == Path(sys.executable).resolve()

    assert judge(result, nvidia_smi=None, error=None, allow_cpu=True).passed
    assert judge(result, nvidia_smi=None, error=None).summary.startswith(
        "GPU check failed: the notebook ran on the CPU"
    )


NO_NETWORK = """
import socket
def refuse(*args, **kwargs):
    raise OSError("no network in this kernel")
socket.socket.connect = socket.socket.connect_ex = socket.create_connection = socket.getaddrinfo = refuse
"""


def test_synthetic_data_trains_offline_and_the_report_goes_where_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # the kernel inherits it: "~" is tmp_path there
    parameters = {"dataset": "synthetic", "epochs": 1, "result_path": "~/reports/run 1/result.json"}
    execute(tmp_path, parameters, first_cell=NO_NETWORK)

    result = json.loads((tmp_path / "reports" / "run 1" / "result.json").read_text())
    assert_schema(result)
    assert (result["dataset"], result["epochs"], result["train_samples"], result["test_samples"]) == (
        "synthetic",
        1,
        5000,
        1000,
    )
    assert len(result["losses"]) == 1 and math.isfinite(result["losses"][0])
    assert result["test_accuracy"] > 0.2
    assert not (tmp_path / "result.json").exists()


def test_the_same_seed_gives_the_same_run_on_the_cpu(tmp_path):
    runs = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        execute(tmp_path / name, DIGITS | {"epochs": 2, "seed": 7})
        runs.append(json.loads((tmp_path / name / "result.json").read_text()))
    assert runs[0]["losses"] == runs[1]["losses"]
    assert runs[0]["test_accuracy"] == runs[1]["test_accuracy"]


def test_cifar10_is_loaded_through_torchvision_into_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    parameters = {"dataset": "cifar10", "epochs": 1, "data_dir": "~/cifar"}
    executed = execute(tmp_path, parameters, first_cell=FAKE_TORCHVISION, last_cell=CIFAR_CALLS)

    calls = json.loads(stdout_of(executed.cells[-1]).split("PROBE ", 1)[1])
    assert calls == [[str(tmp_path / "cifar"), True, True], [str(tmp_path / "cifar"), False, True]]
    result = json.loads((tmp_path / "result.json").read_text())
    assert_schema(result)
    assert (result["dataset"], result["num_classes"], result["train_samples"], result["test_samples"]) == (
        "cifar10",
        10,
        600,
        200,
    )
    assert "truck" in "".join(stdout_of(cell) for cell in executed.cells)  # the per-class accuracy names classes


def test_a_failed_cifar10_download_is_a_download_problem_not_a_gpu_one(tmp_path):
    unreachable = FAKE_TORCHVISION.replace(
        "CIFAR10.calls.append([str(root), train, download])",
        "raise __import__('urllib.error').error.URLError('[Errno -3] Temporary failure in name resolution')",
    )
    with pytest.raises(PapermillExecutionError) as raised:
        execute(tmp_path, {"dataset": "cifar10", "data_dir": str(tmp_path / "data")}, first_cell=unreachable)

    assert raised.value.ename == "DownloadError"
    verdict = judge(None, nvidia_smi=None, error=f"{raised.value.ename}: {raised.value.evalue}")
    assert verdict.summary == (
        "could not download CIFAR-10: URLError: <urlopen error [Errno -3] Temporary failure in name resolution>; "
        "the check can run offline with --dataset synthetic"
    )


def test_cifar10_without_torchvision_fails_with_a_clear_error(tmp_path):
    hide_torchvision = "import sys\nsys.modules['torchvision'] = None  # as on a machine without torchvision"
    with pytest.raises(PapermillExecutionError) as raised:
        execute(tmp_path, {"dataset": "cifar10", "data_dir": str(tmp_path / "data")}, first_cell=hide_torchvision)

    assert raised.value.ename == "ModuleNotFoundError"
    assert "dataset='cifar10' needs torchvision" in raised.value.evalue
    assert not (tmp_path / "result.json").exists()
    verdict = judge(None, nvidia_smi=None, error=f"{raised.value.ename}: {raised.value.evalue}")
    assert verdict.summary.startswith("GPU check failed: the notebook raised ModuleNotFoundError: dataset='cifar10'")
