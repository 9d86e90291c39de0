"""The known people through the client, against the real sidecar and its real face model."""

from __future__ import annotations

import io

import pytest
from integration.sidecar_process import ASSETS, Sidecar
from PIL import Image

from custom_components.home_security_ai.client import HomeSecurityAIClient, NotFound


def _astronaut_png() -> bytes:
    """scikit-image's astronaut photo (a face, looking at the camera), from the sidecar's venv."""
    found = next(ASSETS.glob("python3.*/site-packages/skimage/data/astronaut.png"), None)
    # scikit-image is one of the sidecar's own requirements: missing, the set-up is broken.
    assert found is not None, "scikit-image is missing: run scripts/setup_sidecar_env"
    out = io.BytesIO()
    Image.open(found).convert("RGB").save(out, format="PNG")
    return out.getvalue()


async def test_enroll_list_and_remove_a_person(shared_sidecar: Sidecar) -> None:
    client = HomeSecurityAIClient(shared_sidecar.host, shared_sidecar.port, shared_sidecar.token)
    try:
        status = await client.get_status()
        assert status.enrichment.faces_available, status.enrichment.faces_reason
        person = await client.enroll_person("Eileen", image=_astronaut_png())
        assert (person.name, person.embeddings) == ("Eileen", 1)
        assert [p.name for p in await client.list_people()] == ["Eileen"]
        assert (await client.get_status()).enrichment.known_people == 1
        with pytest.raises(NotFound, match="no-such-face"):
            await client.enroll_person("Eileen", face_id="no-such-face")
        assert await client.remove_person("Eileen") == 1
        assert await client.remove_person("Eileen") == 0
        assert await client.list_people() == []
    finally:
        await client.close()
