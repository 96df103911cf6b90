"""Images per second: the notebook's training loop next to the classic tutorial loop.

The notebook's figure comes from executing the notebook itself (papermill,
dataset="synthetic": CIFAR-shaped 3x32x32 images made on the device; the
notebook makes 5,000 training images) and reading `images_per_second` from
its result JSON, so it is the notebook's real loop: data kept on the device,
batches of hundreds, mixed precision and channels_last on a GPU. It times all
its epochs, the first (cuDNN autotuning, warm-up) included.

The classic loop is the one of PyTorch's "Training a classifier" tutorial:
a LeNet-style net, batch size 4, a DataLoader over a TensorDataset on the CPU,
a `.to(device)` copy of every batch and `loss.item()` every step, over random
CIFAR-shaped images (the same number and epochs unless --tutorial-images says
otherwise). It is given a short untimed warm-up, no per-image transforms and
no worker processes: a generous stand-in for the tutorial.

The two loops train different networks (the notebook's CNN does far more
arithmetic per image than LeNet), so on a CPU the ratio says little; on a GPU
it is the point of the notebook.

    python bench/notebook_throughput.py                  # the GPU if there is one, else the CPU
    python bench/notebook_throughput.py --device cpu --epochs 2
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import papermill
import torch
import torch.nn.functional as F
from torch import nn

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "first_pytorch_classifier.ipynb"
TUTORIAL_BATCH = 4
WARM_UP_BATCHES = 50


class LeNet(nn.Module):
    """The tutorial's network: two 5x5 convolutions and three linear layers."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def run_notebook(device: str, epochs: int, batch_size: int, workdir: Path) -> dict:
    """Execute the notebook on synthetic data; return its result JSON."""
    result_path = workdir / "result.json"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(workdir / "executed.ipynb"),
        parameters={
            "dataset": "synthetic",
            "epochs": epochs,
            "batch_size": batch_size,
            "device": device,
            "result_path": str(result_path),
        },
        kernel_name="python3",
        cwd=str(workdir),
        progress_bar=False,
    )
    return json.loads(result_path.read_text())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tutorial_images_per_second(device: torch.device, images: int, epochs: int) -> float:
    """The classic loop over random CIFAR-shaped images held on the CPU."""
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(images, 3, 32, 32), torch.randint(0, 10, (images,)))
    loader = torch.utils.data.DataLoader(data, batch_size=TUTORIAL_BATCH, shuffle=True)
    net = LeNet().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)

    def step(inputs, labels):
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        loss = criterion(net(inputs), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    for _, (inputs, labels) in zip(range(WARM_UP_BATCHES), loader, strict=False):
        step(inputs, labels)
    synchronize(device)
    started = time.perf_counter()
    running_loss = 0.0
    for _ in range(epochs):
        for inputs, labels in loader:
            running_loss += step(inputs, labels)
    synchronize(device)
    return epochs * images / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--epochs", type=int, help="epochs of each loop (default: 2 on the CPU, 10 on a GPU)")
    parser.add_argument("--batch-size", type=int, default=256, help="the notebook's batch size (default 256)")
    parser.add_argument(
        "--tutorial-images", type=int, help="images per epoch of the tutorial loop (default: as many as the notebook's)"
    )
    args = parser.parse_args()

    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    epochs = args.epochs or (10 if device.type == "cuda" else 2)

    with tempfile.TemporaryDirectory(prefix="notebook-bench-") as workdir:
        notebook = run_notebook(args.device, epochs, args.batch_size, Path(workdir))
    if notebook["device"] != device.type:
        raise SystemExit(f"the notebook ran on {notebook['device']}, the tutorial loop would run on {device.type}")
    tutorial_images = args.tutorial_images or notebook["train_samples"]
    tutorial = tutorial_images_per_second(device, tutorial_images, epochs)

    rows = [
        ("notebook (papermill, synthetic)", notebook["train_samples"], args.batch_size, notebook["images_per_second"]),
        ("classic tutorial (LeNet, DataLoader)", tutorial_images, TUTORIAL_BATCH, tutorial),
    ]
    print(
        f"device: {device.type} ({notebook['device_name']}), torch {torch.__version__}, {epochs} epochs of "
        f"3x32x32 images, mixed precision in the notebook: {notebook['mixed_precision']}"
    )
    print(f"{'loop':<38} {'images/epoch':>12} {'batch':>6} {'images/s':>10}")
    for name, images, batch, rate in rows:
        print(f"{name:<38} {images:>12,} {batch:>6} {rate:>10,.0f}")
    ratio = notebook["images_per_second"] / tutorial
    print(
        f"The notebook's loop trains {ratio:.2f}x as many images per second as the classic tutorial loop on "
        f"{notebook['device_name']} ({notebook['images_per_second']:,.0f} vs {tutorial:,.0f})."
    )


if __name__ == "__main__":
    main()
