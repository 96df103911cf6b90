"""All-reduce across every process of every node: checks the sum and reports the bus bandwidth.

Launch with `provision run examples/allreduce_check.py`. Rank r contributes r + 1 in every element, so each element
of the result must be world * (world + 1) / 2. Bus bandwidth as nccl-tests define it: algbw = bytes / time,
busbw = algbw x 2(n-1)/n. NCCL on GPUs, gloo on CPUs.
"""

import os
import sys
import time
from datetime import timedelta

import torch
import torch.distributed as dist

ELEMENTS = int(os.environ.get("ALLREDUCE_ELEMENTS", 8 * 2**20))  # 32 MiB of float32
ITERATIONS = 5

backend = "nccl" if torch.cuda.is_available() else "gloo"
dist.init_process_group(backend, timeout=timedelta(seconds=120))  # not the default 30 minutes: a check
rank, world = dist.get_rank(), dist.get_world_size()
device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if backend == "nccl" else torch.device("cpu")
if device.type == "cuda":
    torch.cuda.set_device(device)
buffer = torch.empty(ELEMENTS, device=device)


def reduce_once() -> None:
    buffer.fill_(rank + 1)
    dist.all_reduce(buffer)


reduce_once()  # warm-up: connections and buffers
dist.barrier()
elapsed = 0.0
for _ in range(ITERATIONS):
    buffer.fill_(rank + 1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    dist.all_reduce(buffer)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed += time.perf_counter() - started
expected = world * (world + 1) / 2
right = torch.tensor([int(bool(torch.all(buffer == expected)))], device=device)
dist.all_reduce(right, op=dist.ReduceOp.MIN)  # every rank's result must be right
seconds = torch.tensor([elapsed / ITERATIONS], device=device, dtype=torch.float64)
dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
size = ELEMENTS * buffer.element_size()
algbw = size / seconds.item()
busbw = algbw * 2 * (world - 1) / world
if rank == 0:
    verdict = "passed" if right.item() else "FAILED"
    print(
        f"all-reduce {verdict}: {world} processes ({backend}), sum {buffer[0].item():g} (expected {expected:g}), "
        f"{size / 2**20:.0f} MiB in {seconds.item() * 1000:.1f} ms, bus bandwidth {busbw / 1e9:.2f} GB/s",
        flush=True,
    )
dist.destroy_process_group()
sys.exit(0 if right.item() else 1)
