"""The verdict on a notebook run, over the results a run can leave behind."""

import math

import pytest

from bootstrap.gpucheck import RESULT_SCHEMA, GpuInfo, judge, parse_nvidia_smi, required_accuracy

T4 = "Tesla T4, 535.161.08, 15360 MiB"
TWO_A100 = "NVIDIA A100 80GB PCIe, 550.54.15, 81920 MiB\nNVIDIA A100 80GB PCIe, 550.54.15, 81920 MiB\n"
DRIVER_DOWN = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)
TRACEBACK = (
    "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m\n"
    "\x1b[0;31mModuleNotFoundError\x1b[0m  Traceback (most recent call last)\n"
    "Cell \x1b[0;32mIn[5], line 3\x1b[0m\n"
    "\x1b[0;31mModuleNotFoundError\x1b[0m: No module named 'torchvision'\n"
)


def gpu_result(**changes):
    """A result as the notebook writes it after 2 epochs of CIFAR-10 on a T4."""
    result = {
        "device": "cuda",
        "device_name": "Tesla T4",
        "cuda_available": True,
        "cuda_version": "12.2",
        "torch_version": "2.5.1+cu122",
        "python": "/anaconda/envs/py38_default/bin/python",
        "dataset": "cifar10",
        "num_classes": 10,
        "epochs": 2,
        "batch_size": 256,
        "mixed_precision": True,
        "train_seconds": 41.3,
        "images_per_second": 12437.2,
        "losses": [1.52, 1.08],
        "test_accuracy": 0.634,
        "train_samples": 50000,
        "test_samples": 10000,
    }
    return result | changes


def cpu_result(**changes):
    """A CPU-only run of the digits: torch could not use a GPU."""
    cpu = dict(
        device="cpu",
        device_name="AMD EPYC 7763 64-Core Processor",
        cuda_available=False,
        cuda_version=None,
        torch_version="2.13.0+cpu",
        dataset="digits",
        mixed_precision=False,
        train_seconds=1.3,
        images_per_second=16206.0,
        losses=[1.79, 0.21, 0.01],
        epochs=3,
        test_accuracy=0.97,
        train_samples=1437,
        test_samples=360,
    )
    return gpu_result(**(cpu | changes))


def test_the_gpu_result_fixture_matches_the_schema():
    assert set(gpu_result()) == set(RESULT_SCHEMA)


def test_a_cuda_run_that_learned_passes_with_a_one_line_summary():
    verdict = judge(gpu_result(), nvidia_smi=T4, error=None)
    assert verdict.passed
    assert verdict.summary == (
        "GPU check passed: Tesla T4, driver 535.161.08, CUDA 12.2, "
        "2 epochs of CIFAR-10 in 41 s (12,400 img/s), test accuracy 63%"
    )
    assert "\n" not in verdict.summary
    assert "torch.cuda.is_available(): True" in verdict.details
    assert "nvidia-smi: Tesla T4, driver 535.161.08, 15,360 MiB" in verdict.details
    assert "losses per epoch: 1.5200, 1.0800" in verdict.details
    assert all("\n" not in fact for fact in verdict.details)


def test_the_driver_in_the_summary_is_the_one_of_the_gpu_that_ran():
    smi = "Tesla T4, 535.161.08, 15360 MiB\nNVIDIA H100 NVL, 560.35.03, 95830 MiB"
    verdict = judge(gpu_result(device_name="NVIDIA H100 NVL"), nvidia_smi=smi, error=None)
    assert verdict.passed
    assert "NVIDIA H100 NVL, driver 560.35.03, CUDA 12.2" in verdict.summary


def test_a_fast_short_run_reads_well():
    result = gpu_result(epochs=1, losses=[2.1], train_seconds=3.21, images_per_second=45.67, dataset="synthetic")
    verdict = judge(result, nvidia_smi=None, error=None)
    assert verdict.passed
    assert "1 epoch of synthetic images in 3.2 s (45.7 img/s)" in verdict.summary
    assert "driver" not in verdict.summary  # nvidia-smi was not there to ask
    assert "only checked to be finite" in verdict.summary
    assert "one epoch only: the loss was checked to be finite, not to fall" in verdict.details


@pytest.mark.parametrize(
    ("nvidia_smi", "found"),
    [(None, "nvidia-smi was not found"), ("", "nvidia-smi lists no GPU"), (DRIVER_DOWN, "nvidia-smi lists no GPU")],
)
def test_a_cpu_only_run_fails_and_says_what_to_check(nvidia_smi, found):
    verdict = judge(cpu_result(), nvidia_smi=nvidia_smi, error=None)
    assert not verdict.passed
    assert verdict.summary.startswith("GPU check failed: the notebook ran on the CPU")
    assert f"torch.cuda.is_available() was False and {found}" in verdict.summary
    assert "GPU size" in verdict.summary and "`nvidia-smi`" in verdict.summary and "--allow-cpu" in verdict.summary
    assert "torch.cuda.is_available(): False" in verdict.details


def test_nvidia_smi_saying_why_it_failed_is_kept_in_the_details():
    verdict = judge(cpu_result(), nvidia_smi=DRIVER_DOWN, error=None)
    assert any("couldn't communicate with the NVIDIA driver" in fact for fact in verdict.details)


def test_a_cpu_run_that_learned_passes_under_allow_cpu_and_says_so():
    verdict = judge(cpu_result(), nvidia_smi=None, error=None, allow_cpu=True)
    assert verdict.passed
    assert verdict.summary == (
        "CPU run accepted (--allow-cpu): trained on the CPU (AMD EPYC 7763 64-Core Processor) as asked, "
        "3 epochs of digits in 1.3 s (16,200 img/s), test accuracy 97%"
    )


def test_allow_cpu_does_not_excuse_a_run_that_did_not_learn():
    verdict = judge(cpu_result(test_accuracy=0.1), nvidia_smi=None, error=None, allow_cpu=True)
    assert not verdict.passed
    assert "not clearly above chance" in verdict.summary


@pytest.mark.parametrize(
    ("result", "smi", "expected"),
    [
        pytest.param(
            cpu_result(),
            T4,
            "the driver sees Tesla T4 (driver 535.161.08) but torch cannot use it, as the kernel's torch is a "
            "CPU-only build",
            id="cpu-only-torch",
        ),
        pytest.param(
            cpu_result(cuda_version="12.4", torch_version="2.5.1+cu124"),
            "Tesla T4, 470.82.01, 15360 MiB",
            "torch is built for CUDA 12.4, which needs driver 525 or newer; update the NVIDIA driver",
            id="driver-too-old-for-torch",
        ),
        pytest.param(
            cpu_result(cuda_version="12.4", torch_version="2.5.1+cu124"),
            T4,
            "but torch cannot use it, although torch is built for CUDA 12.4; check CUDA_VISIBLE_DEVICES",
            id="driver-new-enough",
        ),
        pytest.param(
            cpu_result(cuda_available=True),
            T4,
            "although torch.cuda.is_available() was True: it was started with device='cpu'",
            id="forced-to-cpu",
        ),
    ],
)
def test_a_gpu_the_driver_sees_but_torch_did_not_use_is_explained(result, smi, expected):
    verdict = judge(result, nvidia_smi=smi, error=None)
    assert not verdict.passed
    assert expected in verdict.summary


@pytest.mark.parametrize("bad", [math.nan, math.inf, None])
def test_a_nan_or_infinite_loss_fails(bad):
    verdict = judge(gpu_result(losses=[2.3, bad, 1.0]), nvidia_smi=T4, error=None)
    assert not verdict.passed
    assert "the training loss became NaN or infinite (epoch 2)" in verdict.summary
    assert "lower learning_rate" in verdict.summary


def test_a_nan_loss_in_a_single_epoch_fails():
    verdict = judge(gpu_result(epochs=1, losses=[math.nan]), nvidia_smi=T4, error=None)
    assert not verdict.passed
    assert "NaN or infinite (epoch 1)" in verdict.summary


@pytest.mark.parametrize("losses", [[1.2, 1.3], [1.2, 0.9, 1.2], [2.302, 2.302]])
def test_a_loss_that_did_not_fall_fails(losses):
    verdict = judge(gpu_result(losses=losses, epochs=len(losses)), nvidia_smi=T4, error=None)
    assert not verdict.passed
    assert f"the training loss did not fall ({losses[0]:.4f} in epoch 1, " in verdict.summary


def test_no_losses_at_all_fails():
    verdict = judge(gpu_result(losses=[]), nvidia_smi=T4, error=None)
    assert not verdict.passed
    assert "no training loss" in verdict.summary


@pytest.mark.parametrize(
    ("num_classes", "accuracy", "passed"),
    [
        (10, 0.10, False),
        (10, 0.19, False),
        (10, 0.20, True),
        (10, math.nan, False),
        (2, 0.70, False),
        (2, 0.75, True),
        (100, 0.05, False),
        (100, 0.12, True),
    ],
)
def test_accuracy_must_be_clearly_above_chance(num_classes, accuracy, passed):
    verdict = judge(gpu_result(num_classes=num_classes, test_accuracy=accuracy), nvidia_smi=T4, error=None)
    assert verdict.passed is passed
    if not passed:
        assert "is not clearly above chance" in verdict.summary


@pytest.mark.parametrize(("num_classes", "required"), [(2, 0.75), (3, 2 / 3), (10, 0.20), (100, 0.11)])
def test_the_accuracy_margin(num_classes, required):
    assert required_accuracy(num_classes) == pytest.approx(required)


@pytest.mark.parametrize("partial", [None, gpu_result()], ids=["no-result", "stale-result"])
def test_a_notebook_error_fails_and_shows_the_error_line(partial):
    verdict = judge(partial, nvidia_smi=T4, error=TRACEBACK)
    assert not verdict.passed
    assert verdict.summary == (
        "GPU check failed: the notebook raised ModuleNotFoundError: No module named 'torchvision'; "
        "open the executed notebook to see the failing cell"
    )
    assert "notebook error: ModuleNotFoundError: No module named 'torchvision'" in verdict.details
    stale = [fact for fact in verdict.details if "from an earlier run" in fact]
    assert len(stale) == (partial is not None)
    assert ("torch.cuda.is_available(): True" in verdict.details) == (partial is not None)


def test_a_failed_download_is_reported_as_one_with_its_cause_not_as_a_failed_gpu_check():
    error = "DownloadError: HTTPError: HTTP Error 503: Service Unavailable"
    verdict = judge(None, nvidia_smi=T4, error=error)
    assert not verdict.passed
    assert verdict.summary == (
        "could not download CIFAR-10: HTTPError: HTTP Error 503: Service Unavailable; "
        "the check can run offline with --dataset synthetic"
    )
    assert f"notebook error: {error}" in verdict.details


def test_a_missing_result_file_means_the_notebook_did_not_finish():
    verdict = judge(None, nvidia_smi=T4, error=None)
    assert not verdict.passed
    assert verdict.summary.startswith("GPU check failed: the notebook did not finish: it wrote no result file")
    assert verdict.details == ("nvidia-smi: Tesla T4, driver 535.161.08, 15,360 MiB",)


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        ({key: value for key, value in gpu_result().items() if key != "test_accuracy"}, "no test_accuracy"),
        (gpu_result(epochs="2"), "epochs is '2'"),
        (gpu_result(num_classes=True), "num_classes is True"),
        (gpu_result(cuda_available="yes"), "cuda_available is 'yes'"),
    ],
)
def test_a_malformed_result_fails_clearly(result, problem):
    verdict = judge(result, nvidia_smi=T4, error=None)
    assert not verdict.passed
    assert "the result file is malformed" in verdict.summary
    assert problem in verdict.summary


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(T4, [GpuInfo("Tesla T4", "535.161.08", 15360)], id="one-gpu"),
        pytest.param(T4 + "\n", [GpuInfo("Tesla T4", "535.161.08", 15360)], id="trailing-newline"),
        pytest.param(TWO_A100, [GpuInfo("NVIDIA A100 80GB PCIe", "550.54.15", 81920)] * 2, id="two-gpus"),
        pytest.param("", [], id="empty"),
        pytest.param(None, [], id="not-found"),
        pytest.param(DRIVER_DOWN, [], id="driver-not-loaded"),
        pytest.param("No devices were found\n", [], id="no-devices"),
        pytest.param("Tesla T4, [N/A], [N/A]\nbash: nvidia-smi: command not found\n\x00\xff,,", [], id="garbage"),
        pytest.param(
            "Tesla T4, 535.161.08, 15360 MiB\nsome warning, line\n",
            [GpuInfo("Tesla T4", "535.161.08", 15360)],
            id="gpu-among-noise",
        ),
    ],
)
def test_parse_nvidia_smi(text, expected):
    assert parse_nvidia_smi(text) == expected
