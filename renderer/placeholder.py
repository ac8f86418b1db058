"""The chart of a job no worker has reported to yet: its title and a line saying so, drawn with
Pillow alone (no matplotlib), in about a millisecond. The web process answers /progress/render
with it until the first real chart exists, so create needs no render and waits for nothing."""

from __future__ import annotations

import functools
import importlib.util
import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH_PX, HEIGHT_PX = 1000, 130
_TEXT, _MUTED, _BACKGROUND = "#222222", "#6e6e6e", "#ffffff"
_MAX_CHARS = 120


@functools.cache
def _font_dir() -> Path:
    """matplotlib's DejaVu fonts, the chart's, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    return Path(spec.submodule_search_locations[0]) / "mpl-data" / "fonts" / "ttf"


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(_font_dir() / name), size)


def _one_line(text: str) -> str:
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_CHARS else text[: _MAX_CHARS - 1] + "\u2026"


@functools.lru_cache(maxsize=256)
def placeholder_png(jobid: str, desc: str) -> bytes:
    image = Image.new("RGB", (WIDTH_PX, HEIGHT_PX), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((16, 14), _one_line(desc) or _one_line(jobid), font=_font(20, bold=True), fill=_TEXT)
    draw.text((16, 44), f"job {_one_line(jobid)}", font=_font(13), fill=_MUTED)
    draw.text(
        (WIDTH_PX / 2, 95),
        "No worker has reported yet: the chart appears with the first update.",
        font=_font(14),
        fill=_MUTED,
        anchor="mm",
    )
    out = io.BytesIO()
    image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(out, format="PNG")
    return out.getvalue()
