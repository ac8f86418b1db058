"""Render one job's progress as a PNG bar chart: ``render_png(snapshot, now=...) -> bytes``.

The chart is a 1000 px wide palette PNG (100 dpi) with one horizontal bar per worker on a
0-100 % axis, workers top to bottom in snapshot order:

* green: running, dark green: done, red: failed (``ok`` False), grey (hatched while rows are
  tall enough): stale, i.e. ``row.is_stale(now, stale_after)``; the legend lists only the
  colours present; the subtitle gives the job id, the number of workers (and, for a job
  created with ``workers=N``, how many of the N have not reported yet, or how many reported
  past N), the overall percent (mean of each worker's percent clipped to 0..100, a silent
  expected worker counting 0 %) and the count of each status;
* beside each bar (small jobs): the real percent, even when ``current`` exceeds ``total``
  (the bar stops at 100 %), and the worker's description; "?" when ``total`` is 0 or the
  numbers are not finite (no bar);
* an empty job is a short chart saying that it waits for the first worker update.

Large jobs (for the README): the image grows by 22 px per worker until the plot is 1000 px
tall (45 workers), then stays at 1,130 px however many workers there are, each worker keeping
its own, possibly sub-pixel, slice of the plot. Each worker's percent and description are
printed beside its bar up to 76 workers and every worker id up to 100; beyond that, ids are
printed for every 2nd, 5th, 10th, 20th, ... worker, as many as fit, failed workers' ids
first, in red. A failed worker is drawn on top of the others at least 3 px thick and 6 px long
and marked in red in a status strip left of the plot (stale workers: 2 px, grey), so one
failure stays visible among 10,000 workers; when many fail, the thickening is limited so that
failed bars cover at most a quarter of the plot.

How it stays fast (about 40-80 ms per chart on a 2-core VM, 10 to 10,000 workers):

* The bars are a handful of compound ``PathPatch`` artists (one path per status, plus the
  grey tracks and the status strip), never an artist per worker, added without autoscaling
  (the limits are fixed). Only Figure and the Agg canvas, no tight_layout: the layout is in pixels.
* matplotlib draws no text at all. Its text engine costs 1-2 ms per string here (font shaping
  and hinting per call), which would dominate the render; all text (title, subtitle, legend,
  ids, percents, descriptions, axis labels, footer) is drawn with Pillow, which matplotlib
  already depends on, using matplotlib's bundled DejaVu Sans, into opaque strips that are
  copied into the Agg buffer after ``canvas.draw()``. So user text never reaches mathtext
  (``$...$``), usetex or matplotlib's missing-glyph warnings; it is still cleaned (control
  characters become U+FFFD, format characters such as bidi overrides are dropped, line breaks
  become spaces) and cut to its box with an ellipsis. Missing glyphs are drawn as boxes.
* The PNG is written with Pillow as an 8-bit palette image through a fixed palette that holds
  every colour the chart uses exactly (plus blends): 3-6x smaller than matplotlib's RGBA
  ``savefig`` output and faster to compress.

``render_png`` is pure and thread-safe: each call builds its own Figure, canvas and fonts; the
only module state is the palette, computed at import and never modified. The output is
deterministic for a given snapshot, ``now``, ``stale_after`` and library versions (it depends
on matplotlib's rcParams only for defaults such as antialiasing).
"""

from __future__ import annotations

import io
import math
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path as _FsPath

import numpy as np
from matplotlib import get_data_path
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path
from matplotlib.transforms import blended_transform_factory
from PIL import Image, ImageDraw, ImageFont

from domain.formatting import duration_label, percent_label, utc_time_label
from domain.model import (
    STATE_CODES,
    STATE_COLOURS,
    JobFailure,
    JobSnapshot,
    WorkerColumns,
    WorkerState,
    mean_percent,
    silent_workers,
)

__all__ = ["render_png", "COLORS", "WIDTH_PX", "DPI"]

# --------------------------------------------------------------------------- look and layout

WIDTH_PX = 1000
DPI = 100

#: Fill colours by status; tests look for these exact colours in the PNG.
COLORS = {state.value: colour for state, colour in STATE_COLOURS.items()}
_WHITE = "#ffffff"
_TRACK = "#ebebeb"
_HATCH = "#d9d9d9"
_TEXT = "#222222"
_MUTED = "#6e6e6e"
_FAILED_TEXT = "#b71c1c"
_AXIS = "#8a8a8a"
_EMPTY_BG = "#f7f7f7"

_HEADER_PX = 84  # title, subtitle, legend
_FOOTER_PX = 46  # x tick labels and a note line
_ROW_PX = 22  # row pitch for small jobs
_PLOT_MIN_PX = 66
_PLOT_MAX_PX = 1000
_BAR_MAX_PX = 15
_TEXT_ROWS_MIN_PITCH = 13.0  # per-worker id + percent + desc at or above this row pitch
_ALL_LABELS_MIN_PITCH = 10.0  # every worker's id is printed down to this row pitch
_LABEL_SPACING_PX = 13.0  # below it, a subset of ids at least this far apart
_FAILED_MIN_PX = 3.0
_MIN_LEN_PX = 6.0  # failed and stale bars are at least this long
_STALE_MIN_PX = 2.0
_FAILED_MAX_SHARE = 0.25  # thickened failed bars cover at most this share of the plot height
_STALE_MAX_SHARE = 0.15
_PLOT_LEFT = 182
_RAIL = (-10, -4)  # status strip, px relative to the plot's left edge
_LABEL_RIGHT = _PLOT_LEFT - 14  # worker ids end here
_PLOT_RIGHT_TEXT = 640  # plot right edge when per-worker text is shown
_PLOT_RIGHT_PLAIN = 972
_TEXT_COL_LEFT = 652
_PCT_W = 50
_TICK_PX = 5  # x tick marks below the plot; the footer strip starts below them
_STRIP_PAD = 7  # row text strips overhang the plot by this much, top and bottom
_MAX_CHARS = 300

_FONT_DIR = _FsPath(get_data_path(), "fonts", "ttf")
_FONT_REGULAR = str(_FONT_DIR / "DejaVuSans.ttf")
_FONT_BOLD = str(_FONT_DIR / "DejaVuSans-Bold.ttf")

_RUNNING, _DONE, _FAILED, _STALE = (
    STATE_CODES[s]
    for s in (WorkerState.RUNNING, WorkerState.DONE, WorkerState.FAILED, WorkerState.STALE)
)
_STATUS_NAMES = tuple(state.value for state in WorkerState)  # by code


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    # ~0.05 ms; a fresh face per call keeps FreeType state private to the calling thread.
    return ImageFont.truetype(
        _FONT_BOLD if bold else _FONT_REGULAR, size, layout_engine=ImageFont.Layout.BASIC
    )


# --------------------------------------------------------------------------- user text


def _clean(value: object) -> str:
    """Make arbitrary user text safe and single-line for drawing."""
    s = value if isinstance(value, str) else str(value)
    cut = len(s) > _MAX_CHARS
    s = s[:_MAX_CHARS]
    if not (s.isascii() and s.isprintable()):
        out = []
        for ch in s:
            cat = unicodedata.category(ch)
            if cat[0] == "C":
                if cat == "Cf":
                    continue  # zero-width joiners, bidi overrides, ...
                out.append(" " if ch in "\t\n\r\x0b\x0c\x85" else "\ufffd")
            elif cat in ("Zl", "Zp"):
                out.append(" ")
            else:
                out.append(ch)
        s = "".join(out)
    s = " ".join(s.split())
    return s + "\u2026" if cut else s


def _fit(text: str, font: ImageFont.FreeTypeFont, max_px: float) -> str:
    """Cut *text* so that it is at most *max_px* wide, marking any cut with an ellipsis."""
    if max_px <= 0:
        return ""
    if 2 * len(text) * font.size <= max_px or font.getlength(text) <= max_px:
        return text  # (no DejaVu Sans glyph is wider than twice the font's pixel size)
    lo, hi = 0, len(text)
    while lo < hi:  # longest prefix p with width(p + "…") <= max_px
        mid = (lo + hi + 1) // 2
        if font.getlength(text[:mid].rstrip() + "\u2026") <= max_px:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "\u2026" if lo else ""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class _Rows:
    pct: np.ndarray  # real percent, nan when undefined
    status: np.ndarray  # _RUNNING/_DONE/_FAILED/_STALE
    counts: tuple[int, int, int, int]
    overall: float


def _rows(bars: WorkerColumns, now: float, stale_after: float, expected: int | None) -> _Rows:
    n = len(bars)
    status = bars.states(now, stale_after)  # STATE_CODES: the order of _STATUS_NAMES
    pct = np.where(np.isfinite(bars.percent), bars.percent, np.nan).astype(float)
    counts = tuple(int(c) for c in np.bincount(status, minlength=4))
    clipped_sum = float(np.nan_to_num(np.clip(pct, 0.0, 100.0), nan=0.0).sum())
    overall = mean_percent(clipped_sum, expected, n)
    return _Rows(pct, status, counts, overall)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True, slots=True)
class _Layout:
    n: int
    height: int
    plot_top: int  # px from the image top
    plot_h: int
    plot_left: int
    plot_right: int
    pitch: float  # px per worker row
    bar_px: float
    row_text: bool
    row_font: int

    @property
    def hatched(self) -> bool:
        """Stale bars are hatched only where rows are tall enough to show it."""
        return self.pitch >= 6

    @property
    def plot_w(self) -> int:
        return self.plot_right - self.plot_left


def _layout(n: int) -> _Layout:
    plot_h = int(round(min(max(n * _ROW_PX, _PLOT_MIN_PX), _PLOT_MAX_PX)))
    pitch = plot_h / n if n else float(plot_h)
    gap = min(pitch * 0.3, 7.0) if pitch >= 4 else 0.0
    bar_px = min(pitch - gap, _BAR_MAX_PX)
    row_text = n > 0 and pitch >= _TEXT_ROWS_MIN_PITCH
    return _Layout(
        n=n,
        height=_HEADER_PX + plot_h + _FOOTER_PX,
        plot_top=_HEADER_PX,
        plot_h=plot_h,
        plot_left=_PLOT_LEFT,
        plot_right=_PLOT_RIGHT_TEXT if row_text else _PLOT_RIGHT_PLAIN,
        pitch=pitch,
        bar_px=bar_px,
        row_text=row_text,
        row_font=11 if pitch >= 16 else 10,
    )


def _nice_step(min_step: float) -> int:
    if min_step <= 1:
        return 1
    mag = 10 ** math.floor(math.log10(min_step))
    for m in (1, 2, 5, 10):
        if m * mag >= min_step:
            return int(m * mag)
    return int(10 * mag)


def _label_rows(status: np.ndarray, lay: _Layout) -> tuple[list[int], int]:
    """Rows to label with their worker id: all of them, or failed ones plus a regular subset."""
    n = lay.n
    if lay.row_text or lay.pitch >= _ALL_LABELS_MIN_PITCH:
        return list(range(n)), 1
    budget = int(lay.plot_h // _LABEL_SPACING_PX)
    step = _nice_step(_LABEL_SPACING_PX * 1.5 / lay.pitch)
    failed = np.flatnonzero(status == _FAILED)
    if len(failed) > budget // 2:  # too many to label them all: an even subset of them
        failed = failed[np.linspace(0, len(failed) - 1, budget // 2).round().astype(int)]
    taken: list[float] = []  # sorted centre positions in px
    chosen: list[int] = []

    def take(i: int) -> None:
        y = (i + 0.5) * lay.pitch
        k = bisect_left(taken, y)
        if k < len(taken) and taken[k] - y < _LABEL_SPACING_PX:
            return
        if k > 0 and y - taken[k - 1] < _LABEL_SPACING_PX:
            return
        taken.insert(k, y)
        chosen.append(i)

    for i in failed.tolist():
        take(i)
    for i in range(0, n, step):
        take(i)
    return sorted(chosen), step


# --------------------------------------------------------------------------- drawing: bars


def _rect_path(x0: np.ndarray, x1: np.ndarray, yc: np.ndarray, half: np.ndarray | float) -> Path:
    """One compound path holding a rectangle per row."""
    k = len(yc)
    y0 = yc - half
    y1 = yc + half
    verts = np.empty((k, 5, 2))
    verts[:, 0, 0] = x0
    verts[:, 0, 1] = y0
    verts[:, 1, 0] = x1
    verts[:, 1, 1] = y0
    verts[:, 2, 0] = x1
    verts[:, 2, 1] = y1
    verts[:, 3, 0] = x0
    verts[:, 3, 1] = y1
    verts[:, 4] = verts[:, 0]
    codes = np.tile(
        np.array(
            [Path.MOVETO, Path.LINETO, Path.LINETO, Path.LINETO, Path.CLOSEPOLY], Path.code_type
        ),
        k,
    )
    return Path(verts.reshape(-1, 2), codes)


def _draw_bars(ax, rows: _Rows, lay: _Layout) -> None:
    """All bars as one compound path per status (plus tracks and status-strip marks)."""
    n = lay.n
    y = np.arange(n, dtype=float)
    half = lay.bar_px / lay.pitch / 2.0  # half a bar's thickness, in rows
    length = np.nan_to_num(np.clip(rows.pct, 0.0, 100.0), nan=0.0)
    if lay.pitch >= 4:
        track = _rect_path(np.zeros(n), np.full(n, 100.0), y, half)
        ax.add_artist(PathPatch(track, facecolor=_TRACK, edgecolor="none", zorder=1))
    else:  # rows touch: one grey background is the same picture
        ax.set_facecolor(_TRACK)

    min_len = _MIN_LEN_PX / lay.plot_w * 100.0
    rail_transform = blended_transform_factory(ax.transAxes, ax.transData)
    rail_x0, rail_x1 = (v / lay.plot_w for v in _RAIL)
    for st, zorder in ((_DONE, 2), (_RUNNING, 2), (_STALE, 3), (_FAILED, 4)):
        idx = np.flatnonzero(rows.status == st)
        x1 = length[idx]
        color = COLORS[_STATUS_NAMES[st]]
        style: dict = {"facecolor": color, "edgecolor": "none", "zorder": zorder}
        if st in (_RUNNING, _DONE):
            idx, x1 = idx[x1 > 0], x1[x1 > 0]
            if len(idx):
                ax.add_artist(PathPatch(_rect_path(np.zeros(len(idx)), x1, y[idx], half), **style))
            continue
        if not len(idx):
            continue
        # Thicken (and lengthen) failed and stale bars so that a single one stays visible among
        # thousands, but let the thickening cover at most a share of the plot, so that many of
        # them do not paint over everything else. Their status-strip marks are always thick.
        min_px, share = (
            (_FAILED_MIN_PX, _FAILED_MAX_SHARE)
            if st == _FAILED
            else (_STALE_MIN_PX, _STALE_MAX_SHARE)
        )
        bar_half = max(half, min(min_px, share * lay.plot_h / len(idx)) / lay.pitch / 2.0)
        mark_half = max(half, min_px / lay.pitch / 2.0)
        hatch = {}
        if st == _STALE and lay.hatched:
            hatch = {"hatch": "////", "hatchcolor": _HATCH, "hatch_linewidth": 1.0}
        bars = _rect_path(np.zeros(len(idx)), np.maximum(x1, min_len), y[idx], bar_half)
        ax.add_artist(PathPatch(bars, **style, **hatch))
        k = len(idx)
        marks = _rect_path(np.full(k, rail_x0), np.full(k, rail_x1), y[idx], mark_half)
        ax.add_artist(PathPatch(marks, **style, transform=rail_transform, clip_on=False))


# --------------------------------------------------------------------------- drawing: text


def _strip(width: int, height: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    im = Image.new("RGB", (max(width, 1), max(height, 1)), "white")
    return im, ImageDraw.Draw(im)


def _message(text: str, width: int, height: int, bg: str) -> Image.Image:
    im = Image.new("RGB", (width, height), bg)
    f = _font(13)
    ImageDraw.Draw(im).text((width / 2, height / 2), text, font=f, fill=_MUTED, anchor="mm")
    return im


def _header(snapshot: JobSnapshot, rows: _Rows, lay: _Layout, stale_after: float) -> Image.Image:
    n = lay.n
    im, d = _strip(WIDTH_PX, _HEADER_PX)
    title = _clean(snapshot.desc) or _clean(snapshot.jobid) or "(untitled job)"
    f_title = _font(17, bold=True)
    d.text((12, 8), _fit(title, f_title, WIDTH_PX - 24), font=f_title, fill=_TEXT)

    f_sub = _font(12)
    running, done, failed, stale = rows.counts
    parts = [
        f"job {_fit(_clean(snapshot.jobid), f_sub, 260)}",
        _workers_text(n, snapshot.expected),
        f"{rows.overall:.1f} % overall" if n else "no progress yet",
        f"{running:,} running",
        f"{done:,} done",
        f"{failed:,} failed",
        f"{stale:,} stale",
    ]
    d.text((12, 35), _fit("  \u00b7  ".join(parts), f_sub, WIDTH_PX - 24), font=f_sub, fill=_MUTED)

    f_leg = _font(11)
    x = 12
    y = 58
    for st in (_RUNNING, _DONE, _STALE, _FAILED):
        if not rows.counts[st]:
            continue
        name = _STATUS_NAMES[st]
        label = f"stale (no update for {duration_label(stale_after)})" if st == _STALE else name
        d.rectangle((x, y + 1, x + 13, y + 12), fill=COLORS[name])
        if st == _STALE and lay.hatched:
            for off in (-6, 1, 8):
                d.line((x + off, y + 12, x + off + 11, y + 1), fill=_HATCH, width=1)
            d.rectangle((x - 8, y + 1, x - 1, y + 12), fill=_WHITE)
            d.rectangle((x + 14, y + 1, x + 22, y + 12), fill=_WHITE)
        d.text((x + 19, y + 7), label, font=f_leg, fill=_TEXT, anchor="lm")
        x += 19 + int(f_leg.getlength(label)) + 22
    return im


_BANNER_TOP, _BANNER_PX = 51, 25  # over the header's legend row, above the row strips


def _job_failed_banner(failure: JobFailure) -> Image.Image:
    """The job failed as a whole (/progress/fail): said in red across the header, in place of
    the legend, so that it is the first thing read after the title."""
    im = Image.new("RGB", (WIDTH_PX, _BANNER_PX), _FAILED_TEXT)
    d = ImageDraw.Draw(im)
    who = f"by worker {_clean(failure.workid)}" if failure.workid else "by the launcher"
    parts = ["JOB FAILED", who] + ([_clean(failure.reason)] if failure.reason else [])
    f = _font(13, bold=True)
    text = _fit("  \u00b7  ".join(parts), f, WIDTH_PX - 24)
    d.text((12, _BANNER_PX / 2), text, font=f, fill=_WHITE, anchor="lm")
    return im


def _workers_text(n: int, expected: int | None) -> str:
    """How many workers reported, against how many the job expects (create's workers=)."""
    if expected is None or n == expected:
        return f"{n:,} worker{'s' if n != 1 else ''}"
    if n > expected:
        return f"{n:,} workers reported, {expected:,} expected"
    silent = silent_workers(expected, n)
    return f"{silent:,} of {expected:,} workers {'has' if silent == 1 else 'have'} not reported yet"


def _footer(lay: _Layout, note: str, last_update: float | None) -> Image.Image:
    """Everything below the plot except its tick marks (the strip starts _TICK_PX lower)."""
    im, d = _strip(WIDTH_PX, _FOOTER_PX - _TICK_PX)
    f = _font(11)
    for v in (0, 25, 50, 75, 100):
        x = lay.plot_left + lay.plot_w * v / 100
        d.text((x, 2), f"{v} %", font=f, fill=_MUTED, anchor="ma")
    f_note = _font(10)
    stamp = "" if last_update is None else f"last update {utc_time_label(last_update)}"
    stamp_w = f_note.getlength(stamp)
    d.text((WIDTH_PX - 12, 23), stamp, font=f_note, fill=_MUTED, anchor="ra")
    d.text((12, 23), _fit(note, f_note, WIDTH_PX - 40 - stamp_w), font=f_note, fill=_MUTED)
    return im


def _labels(snapshot: JobSnapshot, rows: _Rows, lay: _Layout, which: list[int]) -> Image.Image:
    im, d = _strip(_LABEL_RIGHT, lay.plot_h + 2 * _STRIP_PAD)
    f = _font(lay.row_font)
    fb = _font(lay.row_font, bold=True)
    right = _LABEL_RIGHT - 1
    workids = snapshot.bars().workids
    for i in which:
        failed = rows.status[i] == _FAILED
        font = fb if failed else f
        text = _fit(_clean(workids[i]), font, right - 8)
        y = _STRIP_PAD + (i + 0.5) * lay.pitch
        d.text((right, y), text, font=font, fill=_FAILED_TEXT if failed else _TEXT, anchor="rm")
    return im


def _row_texts(snapshot: JobSnapshot, rows: _Rows, lay: _Layout, now: float) -> Image.Image:
    width = WIDTH_PX - _TEXT_COL_LEFT - 8
    im, d = _strip(width, lay.plot_h + 2 * _STRIP_PAD)
    f = _font(lay.row_font)
    desc_x = _PCT_W + 8
    for i, w in enumerate(snapshot.workers):
        st = rows.status[i]
        y = _STRIP_PAD + (i + 0.5) * lay.pitch
        color = _FAILED_TEXT if st == _FAILED else _MUTED if st == _STALE else _TEXT
        d.text((_PCT_W, y), percent_label(float(rows.pct[i])), font=f, fill=color, anchor="rm")
        desc = _clean(w.desc)
        if st == _FAILED:
            desc = f"failed: {desc}" if desc else "failed"
        elif st == _STALE:
            silent = f"silent since {utc_time_label(w.updated, now)}"
            desc = f"{silent}: {desc}" if desc else silent
        room = width - desc_x - 2
        if w.counters:  # up to 60 % of the room for them, the rest for the description
            shown = min(_counters_width(w.counters, f), 0.6 * room) if desc else room
            _draw_counters(d, (width - 2 - shown, width - 2), y, w.counters, f, color)
            room -= shown + (_COUNTERS_GAP if desc else 0)
        if desc:
            d.text((desc_x, y), _fit(desc, f, room), font=f, fill=color, anchor="lm")
    return im


# A worker's counters (update's counters) at the end of its text row: "name value" each, the
# value in its own colour (exact: the chart is then encoded in full colour, see render_png).
_COUNTERS_GAP = 12  # px between the description and the counters, and between two counters


def _counter_parts(counters, default: str) -> list[tuple[str, str]]:
    parts = []
    for c in counters:
        parts += [(_clean(c.name) + " ", _MUTED), (_clean(c.value_text), c.hex or default)]
    return parts


def _counters_width(counters, f: ImageFont.FreeTypeFont) -> float:
    words = sum(f.getlength(text) for text, _ in _counter_parts(counters, _TEXT))
    return words + _COUNTERS_GAP * (len(counters) - 1)


def _draw_counters(
    d: ImageDraw.ImageDraw, span: tuple[float, float], y: float, counters, f, default
):
    """Draw between span's two x, cutting the first part that does not fit, and the rest."""
    x, right = span
    for n, (text, colour) in enumerate(_counter_parts(counters, default)):
        if n and n % 2 == 0:
            x += _COUNTERS_GAP
        text = _fit(text, f, right - x)
        if not text:
            return
        d.text((x, y), text, font=f, fill=colour, anchor="lm")
        x += f.getlength(text)


def _has_colours(snapshot: JobSnapshot, lay: _Layout) -> bool:
    """Whether the chart prints counters in colours of their own (outside the palette)."""
    return lay.row_text and any(c.colour for w in snapshot.workers for c in w.counters)


# --------------------------------------------------------------------------- palette PNG


def _rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[k : k + 2], 16) for k in (1, 3, 5))  # type: ignore[return-value]


def _build_palette() -> tuple[bytes, np.ndarray]:
    """A fixed 256-colour palette for this chart's colours, and a lookup table from 5-bit RGB
    cells to palette indices in which every colour the chart is drawn with maps to itself.

    Everything the renderer draws is one of a dozen colours or an anti-aliased blend of two of
    them, so the palette holds those colours exactly, ramps between the pairs that can touch,
    and a grey scale; other blends (dense large jobs) go to the nearest entry.
    """
    bars = [COLORS[k] for k in ("running", "done", "failed", "stale")]
    keys = [_WHITE, _TRACK, _HATCH, _TEXT, _MUTED, _FAILED_TEXT, _AXIS, _EMPTY_BG, *bars]
    pairs = [(_WHITE, c, 7) for c in (_TEXT, _MUTED, _FAILED_TEXT, _AXIS, _HATCH, *bars)]
    pairs += [(_WHITE, _TRACK, 3)]
    pairs += [(_EMPTY_BG, _MUTED, 5), (_EMPTY_BG, _AXIS, 3)]
    pairs += [(_TRACK, c, 5) for c in bars]
    pairs += [(a, b, 5) for i, a in enumerate(bars) for b in bars[i + 1 :]]
    pairs += [(COLORS["stale"], _HATCH, 3)]
    entries = [_rgb(c) for c in keys]
    for a, b, steps in pairs:
        ca, cb = np.array(_rgb(a), float), np.array(_rgb(b), float)
        for t in np.arange(1, steps + 1) / (steps + 1):
            entries.append(tuple(int(v) for v in np.rint(ca + (cb - ca) * t)))
    entries += [(g, g, g) for g in range(0, 256, 8)]
    entries = list(dict.fromkeys(entries))
    assert len(entries) <= 256, len(entries)
    pal = np.array(entries, dtype=np.float32)

    centres = np.arange(32, dtype=np.float32) * 8 + 3.5
    r, g, b = np.meshgrid(centres, centres, centres, indexing="ij")
    cells = np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1)  # index r*1024 + g*32 + b
    lut = np.empty(len(cells), dtype=np.uint8)
    norms = (pal**2).sum(axis=1)
    for k in range(0, len(cells), 4096):
        d = norms[None, :] - 2.0 * cells[k : k + 4096] @ pal.T
        lut[k : k + 4096] = d.argmin(axis=1)
    for index, (kr, kg, kb) in enumerate(entries[: len(keys)]):
        lut[(kr >> 3) * 1024 + (kg >> 3) * 32 + (kb >> 3)] = index
    palette = bytes(np.array(entries, dtype=np.uint8).ravel())
    return palette, lut


_PALETTE, _LUT = _build_palette()  # computed once at import (~20 ms), never modified


def _encode_png(rgb: np.ndarray) -> bytes:
    """Encode an (H, W, >=3) uint8 image as a palette PNG through the fixed palette."""
    r = rgb[..., 0] >> 3
    g = rgb[..., 1] >> 3
    b = rgb[..., 2] >> 3
    cell = r.astype(np.uint16) << 10
    cell |= g.astype(np.uint16) << 5
    cell |= b
    indices = np.ascontiguousarray(_LUT[cell])
    image = Image.frombuffer("L", (rgb.shape[1], rgb.shape[0]), indices, "raw", "L", 0, 1)
    image.putpalette(_PALETTE)
    buf = io.BytesIO()
    image.save(buf, format="png", dpi=(DPI, DPI))
    return buf.getvalue()


def _encode_full_colour(rgba: np.ndarray) -> bytes:
    """Encode as an RGB PNG: a small job's chart whose counters have colours of their own."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba[..., :3])).save(buf, format="png", dpi=(DPI, DPI))
    return buf.getvalue()


# --------------------------------------------------------------------------- entry point


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k:,}{suffix}"


def _note(rows: _Rows, lay: _Layout, step: int) -> str:
    if not lay.n or lay.row_text:
        return ""
    limit = int(_PLOT_MAX_PX // _TEXT_ROWS_MIN_PITCH)
    note = f"percent and description are shown per worker for jobs of up to {limit} workers"
    if step > 1:
        failed = ", failed ones first" if rows.counts[_FAILED] else ""
        note = f"worker ids shown for every {_ordinal(step)} worker{failed}; {note}"
    return note


def render_png(snapshot: JobSnapshot, *, now: float, stale_after: float = 300.0) -> bytes:
    """Draw *snapshot* as a PNG bar chart and return the file's bytes.

    Pure: reads nothing but its arguments (and matplotlib's bundled fonts), safe to call from
    several threads or processes at once. *now* is the Unix time staleness is judged against;
    a worker is stale when ``row.is_stale(now, stale_after)``.
    """
    bars = snapshot.bars()
    n = len(bars)
    rows = _rows(bars, now, stale_after, snapshot.expected)
    lay = _layout(n)
    H = lay.height
    which, step = _label_rows(rows.status, lay) if n else ([], 1)
    last = float(bars.updated.max()) if n else None

    # The chart proper: an Axes spanning the plot rectangle, laid out in pixels.
    fig = Figure(figsize=(WIDTH_PX / DPI, H / DPI), dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes(
        (
            lay.plot_left / WIDTH_PX,
            (H - lay.plot_top - lay.plot_h) / H,
            lay.plot_w / WIDTH_PX,
            lay.plot_h / H,
        )
    )
    ax.set_xlim(0, 100)
    ax.set_ylim(max(n, 1) - 0.5, -0.5)
    ax.set_xticks([0, 25, 50, 75, 100], labels=[])
    ax.set_yticks([])
    ax.tick_params(axis="x", length=_TICK_PX - 1, width=0.8, color=_AXIS)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color(_AXIS)
    ax.spines["bottom"].set_linewidth(0.8)
    ax.set_facecolor("white" if n else _EMPTY_BG)
    ax.vlines([25, 50, 75], -0.5, max(n, 1) - 0.5, colors="white", linewidth=1.0, zorder=5)
    if n:
        _draw_bars(ax, rows, lay)
    canvas.draw()

    # The text, drawn by Pillow into opaque strips pasted into the rendered chart.
    pixels = np.asarray(canvas.buffer_rgba())  # (H, W, 4), a view of the Agg buffer

    def paste(strip: Image.Image, left: int, top: int) -> None:
        a = np.asarray(strip)
        pixels[top : top + a.shape[0], left : left + a.shape[1], :3] = a

    paste(_header(snapshot, rows, lay, stale_after), 0, 0)
    if snapshot.job_failed is not None:
        paste(_job_failed_banner(snapshot.job_failed), 0, _BANNER_TOP)
    paste(_footer(lay, _note(rows, lay, step), last), 0, H - _FOOTER_PX + _TICK_PX)
    strip_top = lay.plot_top - _STRIP_PAD
    if n:
        paste(_labels(snapshot, rows, lay, which), 0, strip_top)
        if lay.row_text:
            paste(_row_texts(snapshot, rows, lay, now), _TEXT_COL_LEFT, strip_top)
    else:
        msg = _message("Waiting for the first worker update\u2026", lay.plot_w - 2, 40, _EMPTY_BG)
        paste(msg, lay.plot_left + 1, lay.plot_top + (lay.plot_h - 40) // 2)
    if _has_colours(snapshot, lay):
        return _encode_full_colour(pixels)
    return _encode_png(pixels)
