"""Draw the integration's brand icons: a shield holding a camera lens, the project's own design.

Writes custom_components/home_security_ai/brand/{icon,icon@2x,dark_icon,dark_icon@2x}.png.
Run it with any Python that has Pillow (scripts/draw_brand does); the icons are committed.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

BRAND = Path(__file__).resolve().parent.parent / "custom_components" / "home_security_ai" / "brand"
# Drawn large and scaled down, which smooths the edges.
CANVAS = 2048
# (shield, shield rim, lens ring, lens, glint) for light and dark backgrounds.
LIGHT = ("#1b5fb4", "#0f3f7c", "#ffffff", "#0f2747", "#ffffff")
DARK = ("#5aa2ff", "#2f7be0", "#0f2747", "#e8f1ff", "#0f2747")


def _shield(size: int) -> list[tuple[float, float]]:
    """Outline of a shield: flat shoulders, straight sides, curved to a point at the bottom."""
    left, right, top = 0.14 * size, 0.86 * size, 0.08 * size
    waist, tip = 0.50 * size, 0.94 * size
    points = [
        (left, top + 0.06 * size),
        (size / 2, top),
        (right, top + 0.06 * size),
        (right, waist),
    ]
    steps = 40
    for i in range(1, steps):  # right side down to the tip, then up the left side
        t = i / steps
        points.append((right - (right - size / 2) * t**1.4, waist + (tip - waist) * t**0.8))
    points.append((size / 2, tip))
    for i in range(steps - 1, 0, -1):
        t = i / steps
        points.append((left + (size / 2 - left) * t**1.4, waist + (tip - waist) * t**0.8))
    points.append((left, waist))
    return points


def draw(palette: tuple[str, str, str, str, str]) -> Image.Image:
    shield, rim, ring, lens, glint = palette
    image = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    pen.polygon(_shield(CANVAS), fill=rim)
    inner = [
        (CANVAS / 2 + (x - CANVAS / 2) * 0.9, CANVAS * 0.05 + y * 0.9) for x, y in _shield(CANVAS)
    ]
    pen.polygon(inner, fill=shield)
    cx, cy = CANVAS / 2, CANVAS * 0.47

    def circle(radius: float, fill: str, dx: float = 0, dy: float = 0) -> None:
        pen.ellipse(
            (cx + dx - radius, cy + dy - radius, cx + dx + radius, cy + dy + radius), fill=fill
        )

    circle(0.25 * CANVAS, ring)
    circle(0.19 * CANVAS, lens)
    circle(0.08 * CANVAS, shield)
    circle(0.035 * CANVAS, glint, dx=-0.075 * CANVAS, dy=-0.075 * CANVAS)
    return image


def main() -> None:
    BRAND.mkdir(exist_ok=True)
    for prefix, palette in (("", LIGHT), ("dark_", DARK)):
        image = draw(palette)
        for name, size in (("icon", 256), ("icon@2x", 512)):
            image.resize((size, size), Image.Resampling.LANCZOS).save(
                BRAND / f"{prefix}{name}.png", optimize=True
            )


if __name__ == "__main__":
    main()
