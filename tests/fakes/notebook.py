"""A tiny parameterised notebook for tests and benches."""

from __future__ import annotations

from pathlib import Path

import nbformat

STAND_IN_STARTS = "stand-in-starts"  # the file (beside result_path) where each run of the stand-in adds a line
STAND_IN_TIMES = "stand-in-times"  # beside it: "start <epoch s>" and "end <epoch s>" of each run


def write_notebook(path: Path) -> Path:
    """A tiny notebook: `mode` "ok" writes its parameters and kernel facts to result_path,
    "raise" raises ValueError, "sleep" sleeps for an hour."""
    cells = [
        nbformat.v4.new_code_cell(
            'mode = "ok"\nlearning_rate = 0.1\nresult_path = ""', metadata={"tags": ["parameters"]}
        ),
        nbformat.v4.new_code_cell('import json, os, sys, time\nprint("hello from the kernel")'),
        nbformat.v4.new_code_cell(
            'if mode == "raise":\n    raise ValueError("boom on purpose")\nif mode == "sleep":\n    time.sleep(3600)'
        ),
        nbformat.v4.new_code_cell(
            'with open(result_path, "w") as f:\n'
            '    json.dump({"executable": sys.executable, "learning_rate": learning_rate,\n'
            '               "token_in_env": "JUPYTER_TOKEN" in os.environ}, f)'
        ),
    ]
    return _save(cells, path)


def write_training_stand_in(path: Path, seconds: float = 0.0) -> Path:
    """A stand-in for the training notebook, for tests about everything around it: it takes the
    same parameters, needs torchvision for CIFAR-10 as the real one does (and so raises
    ModuleNotFoundError where torchvision is missing), else "trains" for `seconds` (a fixed
    length, for benches) and writes a result the GPU check accepts under --allow-cpu. Each run
    adds a line to STAND_IN_STARTS beside its result, and its start and end times to STAND_IN_TIMES."""
    parameters = (
        'dataset = "cifar10"\nepochs = 2\nbatch_size = 256\nlearning_rate = 0.004\ndevice = "auto"\n'
        'seed = 0\nresult_path = "result.json"\ndata_dir = "~/data"'
    )
    result = {
        "device": "cpu",
        "device_name": "stand-in CPU",
        "cuda_available": False,
        "cuda_version": None,
        "torch_version": "0.0-stand-in",
        "num_classes": 10,
        "batch_size": 256,
        "mixed_precision": False,
        "train_seconds": 0.1,
        "images_per_second": 10000.0,
        "losses": [2.3, 1.1],
        "test_accuracy": 0.9,
        "train_samples": 1000,
        "test_samples": 100,
    }
    cells = [
        nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import json, os, sys, time\n"
            "runs = os.path.dirname(result_path)\n"
            f"with open(os.path.join(runs, {STAND_IN_STARTS!r}), 'a') as f:\n"
            '    f.write("started\\n")\n'
            f"with open(os.path.join(runs, {STAND_IN_TIMES!r}), 'a') as f:\n"
            '    f.write(f"start {time.time()}\\n")\n'
            f"time.sleep({float(seconds)!r})\n"
            'if dataset == "cifar10":\n'
            "    import torchvision  # CIFAR-10 comes through torchvision, as in the real notebook\n"
            f"result = {result!r}\n"
            'result.update(dataset=dataset, epochs=len(result["losses"]), python=sys.executable)\n'
            'with open(result_path, "w") as f:\n'
            "    json.dump(result, f)\n"
            f"with open(os.path.join(runs, {STAND_IN_TIMES!r}), 'a') as f:\n"
            '    f.write(f"end {time.time()}\\n")'
        ),
    ]
    return _save(cells, path)


def _save(cells: list, path: Path) -> Path:
    """Write the cells as a python3 notebook at path."""
    notebook = nbformat.v4.new_notebook(
        cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path
