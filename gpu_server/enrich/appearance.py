"""Appearance embeddings of person crops from a CLIP-class image model, for re-identification.

Used only when such a model lies in the models folder as a `transformers` checkpoint
(`<models>/appearance/`, e.g. a CLIP ViT-B/32 saved with `save_pretrained`); nothing is
downloaded. Without one, re-identification uses faces and clothing colours (reid.py). The
embeddings are L2-normalised, so two crops compare by their dot product (cosine similarity).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gpu_server import extras
from gpu_server.core.images import BgrImage
from gpu_server.models.registry import MIB

APPEARANCE_MODEL_KEY: Final = "appearance-clip"
APPEARANCE_TASK: Final = "reid"
APPEARANCE_FOLDER: Final = "appearance"
# Cosine similarity from which two crops' embeddings are taken for the same person.
APPEARANCE_MATCH: Final = 0.85
_OVERHEAD: Final = 64 * MIB

Embedding = npt.NDArray[np.float32]


def appearance_folder(models_dir: Path) -> Path | None:
    """The checkpoint folder when one is there, else None."""
    folder = models_dir / APPEARANCE_FOLDER
    return folder if (folder / "config.json").is_file() else None


def appearance_unavailable(models_dir: Path) -> str | None:
    """Why no appearance model can run (none in the models folder, no transformers), or None."""
    if appearance_folder(models_dir) is None:
        return f"no appearance model in {models_dir / APPEARANCE_FOLDER}"
    return extras.why_missing("reid")


def appearance_memory(models_dir: Path) -> int:
    """What the model takes once loaded: its weights on disk plus the runtime's share."""
    folder = appearance_folder(models_dir)
    weights = sum(
        path.stat().st_size for path in (folder.iterdir() if folder is not None else ())
        if path.suffix in {".safetensors", ".bin"}
    )
    return weights + _OVERHEAD


class AppearanceModel:
    """A CLIP-class vision tower with its projection; blocking, one call at a time."""

    def __init__(self, folder: Path) -> None:
        # Deferred: transformers is optional and slow to import.
        import torch  # noqa: PLC0415
        from transformers import (  # noqa: PLC0415
            CLIPImageProcessor,
            CLIPVisionModelWithProjection,
        )

        self._torch: Any = torch
        self._model: Any = CLIPVisionModelWithProjection.from_pretrained(
            folder, local_files_only=True
        ).eval()
        size = int(self._model.config.image_size)
        self._processor: Any = (
            CLIPImageProcessor.from_pretrained(folder, local_files_only=True)
            if (folder / "preprocessor_config.json").is_file()
            else CLIPImageProcessor(
                size={"shortest_edge": size}, crop_size={"height": size, "width": size}
            )
        )
        self._lock = threading.Lock()

    def embed(self, crops: list[BgrImage]) -> list[Embedding]:
        """One normalised embedding per crop."""
        if not crops:
            return []
        images = [np.ascontiguousarray(crop[:, :, ::-1]) for crop in crops]  # to RGB
        with self._lock, self._torch.inference_mode():
            inputs = self._processor(images=images, return_tensors="pt")
            features = self._model(pixel_values=inputs["pixel_values"]).image_embeds
            features = features / features.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        return [np.asarray(row, dtype=np.float32) for row in features.cpu().numpy()]
