"""Copy the latest browser-test screenshots into docs/screenshots/ for the README.

Run the browser tests first (``python -m pytest -q -m e2e``), then
``python -m tests.e2e.update_docs``. Pictures are scaled to 1000 px wide and cut to a
readable height.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "artifacts" / "e2e" / "test_whole_flow_in_the_embedded_mode"
DOCS = ROOT / "docs" / "screenshots"

# docs name -> (artifact, which end of the page to keep, height kept in page pixels)
PICTURES = {
    "quiz.png": ("1-quiz.png", "top", 1640),
    "scenes.png": ("2-scenes.png", "top", 1300),
    "gallery.png": ("3-gallery-generating.png", "top", 1700),
    "video.png": ("6-video.png", "bottom", 1350),  # the Videos section ends the gallery
}
WIDTH = 1000


def main() -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    for name, (artifact, end, height) in PICTURES.items():
        im = Image.open(SRC / artifact).convert("RGB")
        top = 0 if end == "top" else max(0, im.height - height)
        im = im.crop((0, top, im.width, min(im.height, top + height)))
        im = im.resize((WIDTH, round(im.height * WIDTH / im.width)), Image.Resampling.LANCZOS)
        im.save(DOCS / name, optimize=True)
        print(f"{DOCS.relative_to(ROOT) / name}: {im.width}x{im.height}")


if __name__ == "__main__":
    main()
