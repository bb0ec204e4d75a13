"""Data-parallel training across processes: torchrun's environment, DistributedDataParallel, a few collectives.
docs/TRAINING.md.

``torchrun --standalone --nproc-per-node N -m minildm train PRESET`` starts N copies of the program and gives each
the environment variables ``RANK`` (0 … N−1 over all machines), ``LOCAL_RANK`` (its GPU on this machine) and
``WORLD_SIZE`` (N), with ``MASTER_ADDR``/``MASTER_PORT`` for the rendezvous (torchrun's documentation,
https://pytorch.org/docs/stable/elastic/run.html). :func:`init` reads them and joins the process group, as the
PyTorch DDP tutorial does (https://pytorch.org/tutorials/intermediate/ddp_tutorial.html and
https://pytorch.org/tutorials/beginner/ddp_series_multigpu.html): backend NCCL for GPUs, one GPU per process
(``torch.cuda.set_device(LOCAL_RANK)``), Gloo on CPU. Each process then wraps its model in
:class:`~torch.nn.parallel.DistributedDataParallel` (:func:`wrap`), which averages the gradients over the
processes during ``backward``, so every copy takes the same optimizer step.

Outside torchrun (no ``WORLD_SIZE``, or 1) nothing here does anything: :func:`world` is 1, :func:`is_main` is True,
:func:`barrier` returns at once and :func:`wrap` returns the model itself. How the training loops share out a
batch, and what a resume with another N keeps, is in :mod:`minildm.train` and docs/TRAINING.md.
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn

from .config import get_device


def world() -> int:
    """How many processes train together (1 without torchrun)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    """This process's index, 0 … world() − 1 (0 without torchrun)."""
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """True on rank 0, the one process that writes checkpoints, sample grids and progress bars."""
    return rank() == 0


def init() -> torch.device:
    """Join torchrun's process group if this process was started by torchrun; returns the device to train on.

    Reads ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; on CUDA selects GPU ``LOCAL_RANK`` and the NCCL backend,
    otherwise Gloo. A second call, or a call outside torchrun, only returns the device.
    """
    device = get_device()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per process
            device = torch.device("cuda", torch.cuda.current_device())
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")  # RANK, WORLD_SIZE, MASTER_* from env
    elif device.type == "cuda" and dist.is_initialized():
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def cleanup() -> None:
    """Leave the process group (the end of a torchrun program); nothing to do without one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait here until every process has arrived (e.g. until rank 0 has written a checkpoint)."""
    if dist.is_initialized():
        dist.barrier()


@contextmanager
def main_first():
    """Run the block on rank 0 first, then on the others: for work whose result the others read back (a download,
    a cache of latents, a model trained once). Also when rank 0 fails in the block, so that no process waits for ever."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def wrap(model: nn.Module) -> nn.Module:
    """``DistributedDataParallel(model)`` when several processes train, else ``model`` itself.

    The wrapper's forward is the model's; its ``backward`` all-reduces (averages) the gradients across processes,
    bucket by bucket while the backward still runs. It holds the model as ``.module``: keep the model itself for
    ``state_dict``, the EMA and sampling.
    """
    if world() == 1:
        return model
    device = next(model.parameters()).device
    if device.type == "cpu":  # channels_last activations (recipes.build_unet on CPU) give some weights NHWC grads:
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")  # only slower
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def rows(batch_size: int) -> slice:
    """This process's share of a global batch of ``batch_size``: rows [rank·b, (rank + 1)·b) with b = B / world().
    ``slice(None)`` (all of it) in a single process. A ValueError unless the batch splits evenly."""
    n = world()
    if n == 1:
        return slice(None)
    if batch_size % n:
        raise ValueError(f"batch_size {batch_size} does not split evenly over {n} processes; batch_size is the global "
                         f"batch (each process takes batch_size / {n} rows): use a multiple of {n}, e.g. "
                         f"{batch_size // n * n or n}, or another number of processes")
    b = batch_size // n
    return slice(rank() * b, (rank() + 1) * b)


def mean(values) -> tuple[float, ...]:
    """The average over processes of each number in ``values`` (the values themselves in one process). A NaN or an
    infinity on any process makes the average non-finite on every process, so all of them stop together."""
    values = tuple(float(v) for v in values)
    if world() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)  # sum
    return tuple((t / world()).tolist())


def anyone(flag: bool) -> bool:
    """True on every process if ``flag`` is True on any (a Ctrl-C, a time budget spent): a decision all share."""
    if world() == 1:
        return bool(flag)
    t = torch.tensor([float(bool(flag))], device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather(obj) -> list:
    """``[obj of rank 0, obj of rank 1, …]`` on every process (``[obj]`` in one process)."""
    if world() == 1:
        return [obj]
    out = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def _collective_device() -> torch.device:
    """NCCL reduces tensors on the GPU, Gloo on the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
