"""Device and compute-type resolution shared by the engines (auto = CUDA when present)."""

from __future__ import annotations


def cuda_available() -> bool:
    """Asks CTranslate2 (always installed, for Whisper) rather than torch, so the CPU path never imports torch."""
    try:
        import ctranslate2
    except ImportError:  # pragma: no cover - ctranslate2 comes with faster-whisper
        return False
    try:
        return int(ctranslate2.get_cuda_device_count()) > 0
    except RuntimeError:  # pragma: no cover - a CUDA driver that fails to initialise counts as none
        return False


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
