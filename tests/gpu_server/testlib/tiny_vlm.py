"""A tiny random vision-language model, so tests run llama.cpp's real multimodal code quickly.

Two files, as a real llava-style model ships: the language model (the tiny llama GGUF of
`tiny_gguf`, embedding width 64) and a projector ("mmproj") GGUF holding a small CLIP vision tower
and a llava MLP projector whose output width is that same 64. llama.cpp's multimodal library
(mtmd) loads the projector beside the text model, decodes the image (JPEG, PNG, GIF, BMP; not
WebP), resizes and pads it to the tower's 32x32 input, encodes it into `IMAGE_TOKENS` embeddings
and feeds them to the language model where the prompt had the image. The weights are random: the
answers mean nothing, but every step runs as it does for a real model.

llama-cpp-python's server serves the pair with one of its llava-style chat handlers
(`vlm_server_config`, `serve_tiny_vlm`). That needs llama-cpp-python built with its multimodal
library; `mtmd_missing` says why it cannot be used. Needs the `gguf` package, which only tests
and benchmarks install.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import gguf
import httpx
import numpy as np
from PIL import Image

from testlib.tiny_gguf import write_tiny_gguf

# The text model's embedding width (see tiny_gguf): the projector must produce exactly this.
TEXT_EMBED: Final = 64

IMAGE_SIZE: Final = 32  # every image is resized (and padded to a square) to this
PATCH_SIZE: Final = 8
# One embedding per patch: each image takes this many positions in the context, whatever its size.
IMAGE_TOKENS: Final = (IMAGE_SIZE // PATCH_SIZE) ** 2

_VISION_EMBED: Final = 32
_VISION_HEADS: Final = 4
# Must differ from the vision width: llama.cpp swaps up/down of old llava files whose "down"
# weight reads in the vision width, and cannot tell them apart when both widths are equal.
_VISION_FEED_FORWARD: Final = 64
# llava takes the output of the next-to-last layer, so of two layers one runs.
_VISION_LAYERS: Final = 2
_PROJECTOR_HIDDEN: Final = 64
# CLIP's normalisation, as the llava projectors carry it.
_IMAGE_MEAN: Final = (0.48145466, 0.4578275, 0.40821073)
_IMAGE_STD: Final = (0.26862954, 0.26130258, 0.27577711)

# llama-cpp-python's chat handlers that serve this pair (its llava handler underneath, both).
# "llava-1-5" writes "<system>USER: <images><texts>ASSISTANT: "; "qwen2.5-vl" lays the prompt out
# in ChatML, the tiny model's own template and the one a Qwen2.5-VL GGUF is served with, images
# where the message has them. Both clear the KV cache on every request, so no prompt prefix is
# reused between requests. "mtmd" would take the text model's own template, which must then
# render list contents: the tiny model's ChatML template cannot.
CHAT_FORMATS: Final = ("llava-1-5", "qwen2.5-vl")
DEFAULT_CHAT_FORMAT: Final = "llava-1-5"
# llama.cpp rounds the context up to a multiple of 256 while llama-cpp-python sizes its token
# buffers by the number asked for: with any other n_ctx a long prompt fails with a numpy
# "could not broadcast" error. Each image takes IMAGE_TOKENS of the context; a prompt that does
# not fit fails with "Prompt exceeds n_ctx", and since these handlers do not shorten max_tokens
# to the room left, an answer that runs past the end fails with "llama_decode returned 1"
# (both HTTP 500). So n_ctx >= prompt + images + max_tokens.
N_CTX_STEP: Final = 256
DEFAULT_N_CTX: Final = 512
MODEL_ALIAS: Final = "tiny-vlm"


def write_tiny_vlm(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write the text model and its projector into `folder`; returns (text model, projector).

    About 0.5 MB and 0.1 MB, written in a few milliseconds. The same seed writes the same files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    text = write_tiny_gguf(folder / "tiny-vlm.gguf", seed=seed)
    projector = write_tiny_projector(folder / "tiny-vlm-mmproj.gguf", seed=seed)
    return text, projector


def write_tiny_projector(path: Path, seed: int = 0) -> Path:
    """Write a CLIP vision tower with a llava MLP projector (output width `TEXT_EMBED`), F32."""
    rng = np.random.default_rng(seed + 1)

    def weights(*shape: int) -> np.ndarray:
        # Shapes are numpy's (outputs first), the reverse of ggml's dimension order.
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        values: np.ndarray = rng.standard_normal(shape) / np.sqrt(fan_in)
        return values.astype(np.float32)

    def zeros(size: int) -> np.ndarray:
        return np.zeros(size, dtype=np.float32)

    def ones(size: int) -> np.ndarray:
        return np.ones(size, dtype=np.float32)

    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("general.name", "tiny-random-llava-projector")
    writer.add_uint32("general.file_type", int(gguf.LlamaFileType.ALL_F32))
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_text_encoder", False)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.embedding_length", _VISION_EMBED)
    writer.add_uint32("clip.vision.feed_forward_length", _VISION_FEED_FORWARD)
    writer.add_uint32("clip.vision.projection_dim", TEXT_EMBED)
    writer.add_uint32("clip.vision.block_count", _VISION_LAYERS)
    writer.add_uint32("clip.vision.attention.head_count", _VISION_HEADS)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_array("clip.vision.image_mean", list(_IMAGE_MEAN))
    writer.add_array("clip.vision.image_std", list(_IMAGE_STD))

    positions = IMAGE_TOKENS + 1  # the patches and the class embedding
    writer.add_tensor("v.patch_embd.weight", weights(_VISION_EMBED, 3, PATCH_SIZE, PATCH_SIZE))
    writer.add_tensor("v.class_embd", weights(_VISION_EMBED))
    writer.add_tensor("v.position_embd.weight", weights(positions, _VISION_EMBED))
    writer.add_tensor("v.pre_ln.weight", ones(_VISION_EMBED))
    writer.add_tensor("v.pre_ln.bias", zeros(_VISION_EMBED))
    for layer in range(_VISION_LAYERS):
        prefix = f"v.blk.{layer}"
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(f"{prefix}.{name}.weight", weights(_VISION_EMBED, _VISION_EMBED))
            writer.add_tensor(f"{prefix}.{name}.bias", zeros(_VISION_EMBED))
        for name in ("ln1", "ln2"):
            writer.add_tensor(f"{prefix}.{name}.weight", ones(_VISION_EMBED))
            writer.add_tensor(f"{prefix}.{name}.bias", zeros(_VISION_EMBED))
        writer.add_tensor(f"{prefix}.ffn_up.weight", weights(_VISION_FEED_FORWARD, _VISION_EMBED))
        writer.add_tensor(f"{prefix}.ffn_up.bias", zeros(_VISION_FEED_FORWARD))
        writer.add_tensor(f"{prefix}.ffn_down.weight", weights(_VISION_EMBED, _VISION_FEED_FORWARD))
        writer.add_tensor(f"{prefix}.ffn_down.bias", zeros(_VISION_EMBED))
    # llava's projector: linear, GELU, linear ("mm.0" and "mm.2"; "mm.1" is the activation).
    writer.add_tensor("mm.0.weight", weights(_PROJECTOR_HIDDEN, _VISION_EMBED))
    writer.add_tensor("mm.0.bias", zeros(_PROJECTOR_HIDDEN))
    writer.add_tensor("mm.2.weight", weights(TEXT_EMBED, _PROJECTOR_HIDDEN))
    writer.add_tensor("mm.2.bias", zeros(TEXT_EMBED))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def mtmd_missing() -> str | None:
    """Why llama.cpp's multimodal library cannot be used here, or None when it can.

    Only a library that is not there counts: one that is there but does not load (a broken
    build, a version mismatch) raises, so a test fails instead of skipping.
    """
    try:
        importlib.import_module("llama_cpp.mtmd_cpp")
    except (ImportError, FileNotFoundError) as exc:
        return (
            "llama-cpp-python was built without llama.cpp's multimodal library (mtmd): "
            f"{type(exc).__name__}: {exc}"
        )
    return None


def vlm_server_config(
    text_path: Path,
    mmproj_path: Path,
    *,
    chat_format: str = DEFAULT_CHAT_FORMAT,
    n_ctx: int = DEFAULT_N_CTX,
) -> dict[str, Any]:
    """The fields of a `models` entry in llama-cpp-python's server `--config_file` that serve a
    vision-language model: the text model, the projector and a chat handler that takes images.
    """
    if n_ctx % N_CTX_STEP or n_ctx < N_CTX_STEP:
        raise ValueError(f"n_ctx must be a multiple of {N_CTX_STEP}, got {n_ctx}")
    return {
        "model": str(text_path),
        "chat_format": chat_format,
        "clip_model_path": str(mmproj_path),
        "n_ctx": n_ctx,
    }


def encode_image(width: int = 640, height: int = 480, image_format: str = "JPEG") -> bytes:
    """A camera-sized test image: a gradient, so it is not a single colour."""
    row = np.linspace(0, 255, width, dtype=np.uint8)
    pixels = np.stack([np.tile(row, (height, 1))] * 3, axis=-1)
    pixels[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, image_format)
    return buffer.getvalue()


def image_data_url(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def user_message(text: str, *image_urls: str) -> dict[str, Any]:
    """An OpenAI chat message: the text, then each image as an `image_url` part."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    content += [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
    return {"role": "user", "content": content}


@dataclass(frozen=True)
class RunningVlmServer:
    base_url: str  # ends with /v1
    model: str
    log_path: Path
    pid: int

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_tiny_vlm(
    text_path: Path,
    mmproj_path: Path,
    work_dir: Path,
    *,
    chat_format: str = DEFAULT_CHAT_FORMAT,
    n_ctx: int = DEFAULT_N_CTX,
    threads: int = 2,
    start_timeout_s: float = 60.0,
) -> Iterator[RunningVlmServer]:
    """llama-cpp-python's OpenAI-compatible server on loopback, serving the pair; stopped after.

    The server logs verbosely into `work_dir/server.log`: llama.cpp writes there how it encodes
    each image ("encoding image slice...", "image slice encoded in N ms").
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    port = _free_loopback_port()
    model = {
        **vlm_server_config(text_path, mmproj_path, chat_format=chat_format, n_ctx=n_ctx),
        "model_alias": MODEL_ALIAS,
        "n_threads": threads,
        "n_threads_batch": threads,
        "seed": 7,
        "verbose": True,
    }
    config = work_dir / "server.json"
    config.write_text(json.dumps({"host": "127.0.0.1", "port": port, "models": [model]}))
    log_path = work_dir / "server.log"
    base_url = f"http://127.0.0.1:{port}/v1"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--config_file", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = RunningVlmServer(base_url, MODEL_ALIAS, log_path, process.pid)
    try:
        _wait_until_serving(process, server, start_timeout_s)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(
    process: subprocess.Popen[bytes], server: RunningVlmServer, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as http:
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the model server exited with code {process.returncode}:\n" + server.log_tail()
                )
            with contextlib.suppress(httpx.HTTPError):
                if http.get(f"{server.base_url}/models").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the model server did not answer within {timeout_s:g} s:\n" + server.log_tail()
                )
            time.sleep(0.05)
