"""The notebook's SmallCNN trained on its synthetic CIFAR-shaped data across every GPU of every node.

Launch with `provision run examples/ddp_train.py [--epochs N]`: DistributedDataParallel averages the gradients,
DistributedSampler gives each process its own share of the data. NCCL on GPUs, gloo on CPUs. Rank 0 prints
each epoch's mean loss and the final test accuracy.
"""

import argparse
import math
import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def make_synthetic(seed, train_size=5_000, test_size=1_000, num_classes=10):
    """As in the notebook: each class a colour stripe pattern at its own angle, under noise (same seed, same data
    on every process)."""
    generator = torch.Generator().manual_seed(seed)
    angles = torch.arange(num_classes) * math.pi / num_classes
    colours = torch.rand(num_classes, 3, 1, 1, generator=generator) * 2 - 1
    rows, cols = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")

    def draw(n):
        labels = torch.randint(num_classes, (n,), generator=generator)
        angle = angles[labels].view(n, 1, 1)
        phase = torch.rand(n, 1, 1, generator=generator) * 2 * math.pi
        stripes = torch.sin(0.8 * (cols * torch.cos(angle) + rows * torch.sin(angle)) + phase)
        noise = torch.randn(n, 3, 32, 32, generator=generator)
        return 0.6 * colours[labels] * stripes[:, None] + noise, labels

    return (*draw(train_size), *draw(test_size))


def conv_block(channels_in, channels_out):
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    def __init__(self, in_channels, num_classes, width=32):
        super().__init__()
        self.features = nn.Sequential(
            conv_block(in_channels, width),
            nn.MaxPool2d(2),
            conv_block(width, 2 * width),
            nn.MaxPool2d(2),
            conv_block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classify = nn.Linear(4 * width, num_classes)

    def forward(self, images):
        return self.classify(self.features(images).flatten(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128, help="per process")
    parser.add_argument("--train-size", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=timedelta(minutes=5))
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if backend == "nccl" else torch.device("cpu")
    x_train, y_train, x_test, y_test = make_synthetic(options.seed, train_size=options.train_size)
    mean, std = x_train.mean(dim=(0, 2, 3), keepdim=True), x_train.std(dim=(0, 2, 3), keepdim=True)
    train = TensorDataset((x_train - mean) / std, y_train)
    sampler = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=options.seed)
    loader = DataLoader(train, batch_size=options.batch_size, sampler=sampler)
    torch.manual_seed(options.seed)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    model = DistributedDataParallel(
        SmallCNN(3, 10).to(device), device_ids=[device.index] if backend == "nccl" else None
    )
    optimiser = torch.optim.AdamW(model.parameters(), lr=0.004)
    for epoch in range(options.epochs):
        sampler.set_epoch(epoch)
        model.train()
        total = torch.zeros(2, device=device)
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            loss = nn.functional.cross_entropy(model(images), labels)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += torch.stack([loss.detach() * len(labels), torch.tensor(float(len(labels)), device=device)])
        dist.all_reduce(total)
        if rank == 0:
            print(
                f"epoch {epoch + 1}: mean loss {total[0].item() / total[1].item():.3f} over {world} processes",
                flush=True,
            )
    model.eval()
    with torch.inference_mode():
        predicted = model.module(((x_test - mean) / std).to(device)).argmax(1).cpu()
    if rank == 0:
        print(f"test accuracy {(predicted == y_test).float().mean().item():.1%} (chance 10.0%)", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
