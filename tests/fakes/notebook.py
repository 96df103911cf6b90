"""A tiny parameterised notebook for tests and benches."""

from __future__ import annotations

from pathlib import Path

import nbformat


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
    notebook = nbformat.v4.new_notebook(
        cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path
