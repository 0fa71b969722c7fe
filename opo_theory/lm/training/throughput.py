"""Step clocks synchronised with the accelerator, model FLOPs of an RL step, and MFU."""

from __future__ import annotations

import time

import torch

# Dense bf16 tensor-core peaks from the vendors' datasheets (TFLOP/s, no sparsity), matched by device name.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}


def clock(device: str) -> float:
    """Wall time in seconds after the device's queued work has finished (CUDA kernels run asynchronously)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    return time.perf_counter()


def peak_flops(device: str, override_tflops: float = 0.0) -> float | None:
    """Peak FLOP/s for MFU: ``override_tflops`` when > 0, else the CUDA device's dense bf16 peak;
    None on the CPU or an unlisted GPU (MFU is then not logged)."""
    if override_tflops > 0:
        return override_tflops * 1e12
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(device)
    return next((tf * 1e12 for key, tf in PEAK_BF16_TFLOPS.items() if key in name), None)


def rl_step_flops(n_params: int, tokens: int, updates: int) -> float:
    """Model FLOPs of one RL step (PaLM-style, attention not counted): 2N per token for the rollout's
    forward plus 6N per token for each of ``updates`` forward+backward passes over the same tokens."""
    return (2 + 6 * updates) * n_params * tokens
