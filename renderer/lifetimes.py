"""The lifetimes chart of a job: a histogram of how long its finished workers took (done ones
dark green, failed ones red, stacked), the median marked, the slowest five named. A pure
function, ``lifetimes_png(jobid, desc, finished) -> bytes``, drawn with Pillow alone like the
placeholder (a few dozen rectangles and labels: milliseconds, and no matplotlib in the web
process that draws it on request)."""

from __future__ import annotations

import heapq
import io
from collections.abc import Sequence

from PIL import Image, ImageDraw

from domain.lifetimes import SLOWEST, histogram, lifetime_label, median
from domain.model import STATE_COLOURS, WorkerState
from renderer.placeholder import _font, _one_line

WIDTH_PX, HEIGHT_PX = 1000, 400
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 972, 96, 318  # the plot, px
_TEXT, _MUTED, _GRID, _BACKGROUND, _MEDIAN = "#222222", "#6e6e6e", "#e6e6e6", "#ffffff", "#1f4e9e"
_DONE, _FAILED = STATE_COLOURS[WorkerState.DONE], STATE_COLOURS[WorkerState.FAILED]
_X_LABELS = 8  # at most this many duration labels under the plot


def lifetimes_png(jobid: str, desc: str, finished: Sequence[tuple[str, float, bool]]) -> bytes:
    """`finished`: each finished worker's (workid, duration in seconds, failed)."""
    image = Image.new("RGB", (WIDTH_PX, HEIGHT_PX), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    title = f"Worker lifetimes: {_one_line(desc) or _one_line(jobid)}"
    draw.text((16, 12), title, font=_font(18, bold=True), fill=_TEXT)
    if not finished:
        draw.text((16, 40), f"job {_one_line(jobid)}", font=_font(13), fill=_MUTED)
        draw.text(
            (WIDTH_PX / 2, HEIGHT_PX / 2),
            "No worker has finished yet: the histogram appears when one is done or failed.",
            font=_font(14),
            fill=_MUTED,
            anchor="mm",
        )
        return _png(image)
    durations = sorted(d for _, d, _ in finished)
    mid = median(durations[(len(durations) - 1) // 2 : len(durations) // 2 + 1])
    failed = sum(1 for *_, is_failed in finished if is_failed)
    subtitle = (
        f"{len(finished):,} finished worker{'s' * (len(finished) != 1)}"
        + (f" ({failed:,} failed)" if failed else "")
        + f" \u00b7 median {lifetime_label(mid)} \u00b7 longest {lifetime_label(durations[-1])}"
    )
    draw.text((16, 40), subtitle, font=_font(13), fill=_MUTED)
    _legend(draw, failed > 0)
    h = histogram([d for _, d, _ in finished], [f for *_, f in finished])
    _bars(draw, h)
    _median_line(draw, h.edges, mid)
    slowest = heapq.nlargest(SLOWEST, finished, key=lambda w: w[1])
    names = ", ".join(f"{_one_line(w)[:40]} ({lifetime_label(d)})" for w, d, _ in slowest)
    draw.text((16, HEIGHT_PX - 28), f"Slowest: {names}", font=_font(13), fill=_TEXT)
    return _png(image)


def _legend(draw: ImageDraw.ImageDraw, with_failed: bool) -> None:
    x = 16
    for colour, label in [(_DONE, "done"), (_FAILED, "failed")][: 2 if with_failed else 1]:
        draw.rectangle((x, 66, x + 11, 77), fill=colour)
        draw.text((x + 16, 64), label, font=_font(12), fill=_TEXT)
        x += 80
    draw.line((x + 4, 71, x + 20, 71), fill=_MEDIAN, width=2)
    draw.text((x + 26, 64), "median", font=_font(12), fill=_TEXT)


def _x(edges: tuple[float, ...], value: float) -> float:
    span = edges[-1] - edges[0]
    return _LEFT + (_RIGHT - _LEFT) * (value - edges[0]) / span


def _bars(draw: ImageDraw.ImageDraw, h) -> None:
    top = max(d + f for d, f in zip(h.done, h.failed))
    step = max(1, -(-top // 5))  # at most about five count lines
    ceiling = step * -(-top // step)
    y = lambda count: _BOTTOM - (_BOTTOM - _TOP) * count / ceiling  # noqa: E731
    small = _font(11)
    for count in range(0, ceiling + 1, step):
        draw.line((_LEFT, y(count), _RIGHT, y(count)), fill=_GRID)
        draw.text((_LEFT - 8, y(count)), f"{count:,}", font=small, fill=_MUTED, anchor="rm")
    for i, (done, fail) in enumerate(zip(h.done, h.failed)):
        x0, x1 = _x(h.edges, h.edges[i]) + 1, _x(h.edges, h.edges[i + 1]) - 1
        if done:
            draw.rectangle((x0, y(done), x1, _BOTTOM), fill=_DONE)
        if fail:
            draw.rectangle((x0, y(done + fail), x1, y(done)), fill=_FAILED)
    draw.line((_LEFT, _BOTTOM, _RIGHT, _BOTTOM), fill=_MUTED)
    every = max(1, -(-(len(h.edges) - 1) // _X_LABELS))
    for i in range(0, len(h.edges), every):
        x = _x(h.edges, h.edges[i])
        draw.line((x, _BOTTOM, x, _BOTTOM + 4), fill=_MUTED)
        draw.text(
            (x, _BOTTOM + 7), lifetime_label(h.edges[i]), font=small, fill=_MUTED, anchor="ma"
        )
    draw.text(((_LEFT + _RIGHT) / 2, _BOTTOM + 26), "how long each worker ran", font=small,
              fill=_MUTED, anchor="ma")  # fmt: skip


def _median_line(draw: ImageDraw.ImageDraw, edges: tuple[float, ...], mid: float) -> None:
    x = _x(edges, mid)
    for y in range(_TOP - 6, _BOTTOM, 8):  # dashed
        draw.line((x, y, x, min(_BOTTOM, y + 4)), fill=_MEDIAN, width=2)
    label = f"median {lifetime_label(mid)}"
    anchor = "rs" if x > _RIGHT - 120 else "ls"
    draw.text((x + (-5 if anchor == "rs" else 5), _TOP - 2), label, font=_font(12),
              fill=_MEDIAN, anchor=anchor)  # fmt: skip


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.quantize(colors=64, method=Image.Quantize.FASTOCTREE).save(out, format="PNG")
    return out.getvalue()
