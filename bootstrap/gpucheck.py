"""The verdict on a notebook run: did the model really train on the GPU?

Pure: it reads what others collected (the notebook's result JSON as a dict,
the output of `nvidia-smi`, the notebook's error) and does no I/O.

A run passes when it used CUDA, its loss fell and its test accuracy is
clearly above chance. "Clearly" is `required_accuracy`: at least chance
+ 0.10 and at least twice chance, but never more than halfway from chance to
100% (so two classes need 75%, ten need 20%, a hundred need 11%).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

NVIDIA_SMI_QUERY = "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader"

NUMBER = (int, float)
RESULT_SCHEMA: dict[str, tuple[type, ...]] = {
    "device": (str,),
    "device_name": (str,),
    "cuda_available": (bool,),
    "cuda_version": (str, type(None)),
    "torch_version": (str,),
    "python": (str,),  # the kernel's: the project's environment when it has one
    "dataset": (str,),
    "num_classes": (int,),
    "epochs": (int,),
    "batch_size": (int,),
    "mixed_precision": (bool,),
    "train_seconds": NUMBER,
    "images_per_second": NUMBER,
    "losses": (list,),
    "test_accuracy": NUMBER,
    "train_samples": (int,),
    "test_samples": (int,),
}

# Oldest Linux driver (major version) that runs each CUDA major version, minor
# versions included (NVIDIA's "minor version compatibility" table).
MIN_DRIVER_FOR_CUDA = {11: 450, 12: 525, 13: 580}

# What the notebook raises when CIFAR-10 cannot be fetched, before its cause: a network problem, not the GPU's.
DOWNLOAD_ERROR = "DownloadError: "

DATASET_NAMES = {"cifar10": "CIFAR-10", "digits": "digits", "synthetic": "synthetic images"}

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

GPU_ADVICE = (
    "check that the VM size is a GPU size and the NVIDIA driver is loaded (run `nvidia-smi` on the VM), "
    "or pass --allow-cpu"
)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    driver: str
    memory_mib: int


@dataclass(frozen=True)
class Verdict:
    passed: bool
    summary: str  # one line, printed by `provision up`
    details: tuple[str, ...]  # what was found, one fact per line


def parse_nvidia_smi(text: str | None) -> list[GpuInfo]:
    """The GPUs in the output of NVIDIA_SMI_QUERY; lines that are not GPU rows are ignored."""
    gpus = []
    for line in (text or "").splitlines():
        fields = [field.strip() for field in line.rsplit(",", 2)]
        if len(fields) != 3 or not fields[0]:
            continue
        name, driver, memory = fields
        amount, _, unit = memory.partition(" ")
        if unit != "MiB" or not amount.isdigit() or not driver[:1].isdigit():
            continue
        gpus.append(GpuInfo(name=name, driver=driver, memory_mib=int(amount)))
    return gpus


def required_accuracy(num_classes: int) -> float:
    """The test accuracy that counts as clearly above chance (see the module docstring)."""
    chance = 1 / num_classes
    return chance + max(0.10, min(chance, (1 - chance) / 2))


def judge(result: dict | None, *, nvidia_smi: str | None, error: str | None, allow_cpu: bool = False) -> Verdict:
    """Decide whether a run of the notebook proves the machine trains on its GPU.

    result: the notebook's result JSON (None when no file was written);
    nvidia_smi: the output of NVIDIA_SMI_QUERY (None when the command was not found);
    error: the notebook's error text (None when it finished).
    """
    facts = ([] if result is None else _result_facts(result)) + [_nvidia_smi_fact(nvidia_smi)]
    if error:
        facts.append("notebook error: " + _last_line(error))
        if _last_line(error).startswith(DOWNLOAD_ERROR):
            cause = _last_line(error).removeprefix(DOWNLOAD_ERROR)
            summary = f"could not download CIFAR-10: {cause}; the check can run offline with --dataset synthetic"
            return Verdict(False, summary, tuple(facts))
        if result is not None:
            facts.append("a result file exists although the notebook failed: probably from an earlier run, not judged")
        return _fail(
            f"the notebook raised {_last_line(error)}; open the executed notebook to see the failing cell", facts
        )
    if result is None:
        return _fail(
            "the notebook did not finish: it wrote no result file; open the executed notebook to see where it stopped",
            facts,
        )
    malformed = _schema_problems(result)
    if malformed:
        return _fail(f"the result file is malformed ({'; '.join(malformed)}): is the notebook out of date?", facts)

    ran_on_cpu = result["device"] != "cuda"
    if ran_on_cpu and not allow_cpu:
        return _fail(_cpu_diagnosis(result, nvidia_smi), facts)
    why_not, learning_facts = _learning(result)
    facts.extend(learning_facts)
    if why_not:
        return _fail(why_not, facts)
    if ran_on_cpu:
        summary = f"CPU run accepted (--allow-cpu): trained on the CPU ({result['device_name']}) as asked, "
        return Verdict(True, summary + _run_summary(result), tuple(facts))
    return Verdict(True, f"GPU check passed: {_gpu_summary(result, nvidia_smi)}, {_run_summary(result)}", tuple(facts))


def _fail(message: str, facts: list[str]) -> Verdict:
    return Verdict(False, "GPU check failed: " + message, tuple(facts))


def _last_line(text: str) -> str:
    """The last non-blank line, without terminal colour codes (tracebacks carry them)."""
    lines = [line.strip() for line in ANSI_ESCAPE.sub("", text).splitlines() if line.strip()]
    return lines[-1] if lines else "an error"


def _nvidia_smi_fact(nvidia_smi: str | None) -> str:
    if nvidia_smi is None:
        return "nvidia-smi: not found"
    gpus = parse_nvidia_smi(nvidia_smi)
    if gpus:
        return "nvidia-smi: " + "; ".join(f"{g.name}, driver {g.driver}, {g.memory_mib:,} MiB" for g in gpus)
    if nvidia_smi.strip():
        return "nvidia-smi: no GPU listed; it said: " + _last_line(nvidia_smi)
    return "nvidia-smi: no GPU listed"


def _schema_problems(result: dict) -> list[str]:
    problems = []
    for key, types in RESULT_SCHEMA.items():
        if key not in result:
            problems.append(f"no {key}")
        elif not isinstance(result[key], types) or (bool not in types and isinstance(result[key], bool)):
            problems.append(f"{key} is {result[key]!r}")
    return problems


def _result_facts(result: dict) -> list[str]:
    get = result.get
    build = f"built for CUDA {get('cuda_version')}" if get("cuda_version") else "a CPU-only build"
    images = _number(get("train_samples"), "{:,}")
    return [
        f"the kernel's Python: {get('python')}",
        f"torch.cuda.is_available(): {get('cuda_available')}",
        f"torch {get('torch_version')}: {build}",
        f"the notebook trained on: {get('device')} ({get('device_name')})",
        f"training: {get('epochs')} epochs of {get('dataset')} ({images} images), batch size "
        f"{get('batch_size')}, mixed precision {get('mixed_precision')}, {_number(get('train_seconds'), '{:.1f}')} s, "
        f"{_number(get('images_per_second'), '{:,.0f}')} images/s",
    ]


def _cpu_diagnosis(result: dict, nvidia_smi: str | None) -> str:
    """Why a run that should have used the GPU ran on the CPU, and what to do."""
    if result.get("cuda_available"):
        return (
            "the notebook ran on the CPU although torch.cuda.is_available() was True: "
            "it was started with device='cpu'; run it with device='auto' or 'cuda'"
        )
    gpus = parse_nvidia_smi(nvidia_smi)
    if not gpus:
        seen = "nvidia-smi was not found" if nvidia_smi is None else "nvidia-smi lists no GPU"
        return f"the notebook ran on the CPU: torch.cuda.is_available() was False and {seen}; {GPU_ADVICE}"
    driver_sees = f"the driver sees {gpus[0].name} (driver {gpus[0].driver}) but torch cannot use it"
    cuda = result.get("cuda_version")
    if not cuda:
        return (
            f"the notebook ran on the CPU: {driver_sees}, as the kernel's torch is a CPU-only build; "
            "run the notebook in the DSVM's PyTorch environment or install a CUDA build of torch, or pass --allow-cpu"
        )
    needed = MIN_DRIVER_FOR_CUDA.get(_major(cuda))
    if needed is not None and _major(gpus[0].driver) is not None and _major(gpus[0].driver) < needed:
        return (
            f"the notebook ran on the CPU: {driver_sees}: torch is built for CUDA {cuda}, which needs driver "
            f"{needed} or newer; update the NVIDIA driver or install a torch built for an older CUDA, "
            "or pass --allow-cpu"
        )
    return (
        f"the notebook ran on the CPU: {driver_sees}, although torch is built for CUDA {cuda}; "
        "check CUDA_VISIBLE_DEVICES and that the kernel runs where the driver is visible, "
        "or pass --allow-cpu"
    )


def _major(version: str) -> int | None:
    head = str(version).split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _learning(result: dict) -> tuple[str | None, list[str]]:
    """(why the run did not learn, or None; the facts found on the way)."""
    losses = result["losses"]
    if not losses:
        return "the result holds no training loss: the training loop did not run", []
    facts = ["losses per epoch: " + ", ".join(_number(loss, "{:.4f}") for loss in losses)]
    bad = [epoch for epoch, loss in enumerate(losses, 1) if not _finite(loss)]
    if bad:
        return (
            f"the training loss became NaN or infinite (epoch {bad[0]}): lower learning_rate, or re-run "
            "with device='cpu' to tell a numerical problem from a GPU one",
            facts,
        )
    if len(losses) == 1:
        facts.append("one epoch only: the loss was checked to be finite, not to fall")
    elif losses[-1] >= losses[0]:
        return (
            f"the training loss did not fall ({losses[0]:.4f} in epoch 1, {losses[-1]:.4f} in epoch {len(losses)}): "
            "lower learning_rate or train more epochs",
            facts,
        )
    num_classes, accuracy = result["num_classes"], result["test_accuracy"]
    if num_classes < 2:
        return f"the result says num_classes={num_classes}: a classifier needs 2 or more", facts
    needed = required_accuracy(num_classes)
    facts.append(
        f"test accuracy {_number(accuracy, '{:.1%}')} on {result['test_samples']:,} images "
        f"(chance {1 / num_classes:.1%}, required {needed:.1%})"
    )
    if not _finite(accuracy) or accuracy < needed:
        return (
            f"test accuracy {_number(accuracy, '{:.1%}')} is not clearly above chance ({1 / num_classes:.0%}; "
            f"{needed:.0%} required): the model did not learn; train more epochs or check the data",
            facts,
        )
    return None, facts


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: object, form: str) -> str:
    return form.format(value) if _finite(value) else repr(value)


def _gpu_summary(result: dict, nvidia_smi: str | None) -> str:
    """E.g. 'Tesla T4, driver 535.161.08, CUDA 12.2' (the driver only where nvidia-smi answered)."""
    parts = [result["device_name"]]
    gpus = parse_nvidia_smi(nvidia_smi)
    if gpus:
        same = [gpu for gpu in gpus if gpu.name == result["device_name"]] or gpus
        parts.append(f"driver {same[0].driver}")
    if result["cuda_version"]:
        parts.append(f"CUDA {result['cuda_version']}")
    return ", ".join(parts)


def _run_summary(result: dict) -> str:
    """E.g. '2 epochs of CIFAR-10 in 41 s (12,400 img/s), test accuracy 63%'."""
    epochs = result["epochs"]
    dataset = DATASET_NAMES.get(result["dataset"], result["dataset"])
    summary = (
        f"{epochs} epoch{'s' if epochs != 1 else ''} of {dataset} in {_seconds(result['train_seconds'])} "
        f"({_rate(result['images_per_second'])} img/s), test accuracy {result['test_accuracy']:.0%}"
    )
    if len(result["losses"]) == 1:
        summary += " (one epoch: the loss was only checked to be finite)"
    return summary


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:,.0f} s"


def _rate(value: float) -> str:
    """Three significant figures with thousands separators: 12437.2 -> '12,400'."""
    if value < 100:
        return f"{value:.3g}"
    return f"{round(value, 2 - math.floor(math.log10(value))):,.0f}"
