"""Device and compute-type resolution shared by the engines (auto = CUDA when present)."""

from __future__ import annotations


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency, but keep STT usable without it
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise RuntimeError("device 'cuda' was configured but no CUDA device is available")
    return device


def resolve_compute_type(compute_type: str, device: str, *, cpu_default: str, cuda_default: str) -> str:
    if compute_type != "auto":
        return compute_type
    return cuda_default if device == "cuda" else cpu_default
