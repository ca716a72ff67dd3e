"""torchrun support: PyTorch's own DistributedDataParallel, set up from the environment torchrun provides.

Run as `torchrun --nproc_per_node=N train.py ...`; a plain `python train.py` is a world of one and none of
this does anything. gloo on the CPU, NCCL on CUDA (one GPU per local rank).
"""
import os
from contextlib import contextmanager

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world_size() > 1 else 0


def is_main() -> bool:
    return rank() == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> torch.device:
    """Join the process group when started by torchrun; returns this rank's device (cuda:LOCAL_RANK on CUDA)."""
    if not launched_by_torchrun() or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    cuda = device.type == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    return device


def cleanup():
    if world_size() > 1:
        dist.destroy_process_group()


def shard(n: int):
    """This rank's contiguous slice of n items (ranks in order cover 0..n once)."""
    start, stop = n * rank() // world_size(), n * (rank() + 1) // world_size()
    return slice(start, stop)


def gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's CPU tensor in rank order (the inverse of `shard`)."""
    if world_size() == 1:
        return tensor
    parts = [None] * world_size()
    dist.all_gather_object(parts, tensor.cpu())
    return torch.cat([p for p in parts if len(p)] or parts[:1])  # a rank with no items sends an empty (0, 1)


def sum_across(values, device):
    """Sum plain numbers over the ranks (per-epoch loss, correct and seen counts)."""
    if world_size() == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)  # NCCL reduces GPU tensors only
    dist.all_reduce(t)
    return t.tolist()


def broadcast_buffers(model: torch.nn.Module):
    """Give every rank rank 0's BatchNorm statistics, so that evaluation on any rank matches the checkpoint
    rank 0 writes (DDP syncs them at the start of each forward, not after the last step)."""
    if world_size() == 1:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def broadcast_object(obj):
    """Rank 0's value of `obj` on every rank (the run folder's name, which has a timestamp)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def main_first():
    """Rank 0 runs the block first (unpacking data, building a cache), the others after it, reusing its work."""
    if not is_main():
        barrier()
    try:
        yield
    finally:  # rank 0 releases the others even when it fails (they then meet the same error)
        if is_main():
            barrier()


def barrier():
    if world_size() > 1:
        dist.barrier()
