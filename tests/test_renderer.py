"""The chart renderer end to end: real matplotlib and Pillow, PNGs decoded, pixels counted."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from domain.model import JobSnapshot, WorkerRow
from renderer import chart
from renderer.chart import COLORS, render_png

NOW = 1_767_225_600.0  # 2026-01-01 00:00 UTC
ROOT = Path(__file__).resolve().parent.parent

# Columns that lie inside the plot in every layout (the plot spans x = 182..640 or 182..972).
BAR_COLUMNS = slice(250, 500)


def worker(i: int, current: float = 50, total: float = 100, ok: bool = True, **kw) -> WorkerRow:
    fields = {"desc": f"chunk {current} of {total}", "updated": NOW - 10.0} | kw
    return WorkerRow(f"node{i:05d}", current, total, ok, fields["desc"], fields["updated"])


def job(workers, desc: str = "test job", jobid: str = "j1") -> JobSnapshot:
    return JobSnapshot(jobid, desc, NOW - 3600, 86400, "inc", 1, tuple(workers))


def decode(png: bytes) -> np.ndarray:
    """The PNG as an (H, W, 3) uint8 RGB array, decoded by matplotlib."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(io.BytesIO(png))
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    if img.dtype != np.uint8:
        img = np.rint(img * 255).astype(np.uint8)
    return img[..., :3]


def near(img: np.ndarray, color: str, tol: int = 20) -> np.ndarray:
    """Mask of pixels within *tol* (per channel) of the hex *color*."""
    rgb = np.array([int(color[k : k + 2], 16) for k in (1, 3, 5)])
    return (np.abs(img.astype(int) - rgb) <= tol).all(axis=-1)


def bar_rows(img: np.ndarray, color: str, tol: int = 6, min_px: int = 100) -> np.ndarray:
    """Rows of the image crossed by a bar of *color*: at least *min_px* such pixels in
    BAR_COLUMNS (anti-aliased text never has that many on one row)."""
    return np.flatnonzero(near(img, color, tol)[:, BAR_COLUMNS].sum(axis=1) >= min_px)


def render(snapshot: JobSnapshot, **kw) -> np.ndarray:
    return decode(render_png(snapshot, now=NOW, **kw))


# --------------------------------------------------------------------------- basic output


@pytest.mark.parametrize("n", [1, 5, 60, 100, 1000])
def test_output_is_a_png_of_fixed_width(n):
    img = render(job(worker(i, 20 + i % 81) for i in range(n)))
    assert img.shape[1] == chart.WIDTH_PX
    assert 150 <= img.shape[0] <= 1200
    assert len(bar_rows(img, COLORS["running"], min_px=1)) > 0  # some bar was drawn


def test_height_grows_with_workers_then_is_capped():
    heights = [render(job(worker(i) for i in range(n))).shape[0] for n in (3, 30, 10_000, 20_000)]
    assert heights[0] < heights[1] < heights[2]
    assert heights[2] == heights[3] <= 1200


def test_rendering_is_deterministic():
    snap = job([worker(0, 10), worker(1, 90, ok=False), worker(2, 30, updated=NOW - 900)])
    assert render_png(snap, now=NOW) == render_png(snap, now=NOW)


# --------------------------------------------------------------------------- colours


def ok_job(n: int, overrides: dict[int, WorkerRow] | None = None) -> JobSnapshot:
    """*n* running workers at 30..89 %, with some rows replaced."""
    rows = [worker(i, 30 + (i * 7) % 60) for i in range(n)]
    for index, row in (overrides or {}).items():
        rows[index] = row
    return job(rows)


def test_one_failed_worker_among_10000_is_clearly_red():
    img = render(ok_job(10_000, {5000: worker(5000, 50, ok=False)}))
    red_rows = bar_rows(img, COLORS["failed"], tol=20, min_px=200)
    assert len(red_rows) >= 2, "the failed bar is not at least 2 px thick and red"
    height = img.shape[0]
    assert all(0.4 * height < y < 0.6 * height for y in red_rows), red_rows


def test_failed_worker_with_no_progress_is_still_marked_red():
    img = render(ok_job(10_000, {9999: worker(9999, 0, ok=False)}))
    red = near(img, COLORS["failed"])
    left = chart._PLOT_LEFT  # the status strip is the 12 px left of the plot, ids end before it
    rail, bar = red[:, left - 12 : left], red[:, left:]
    assert rail.sum() >= 10, "no red mark in the status strip left of the plot"
    assert bar.sum() >= 10, "no red stub of a bar in the plot"


def test_all_ok_job_has_no_red_pixels():
    for n in (10_000, 20):
        img = render(ok_job(n))
        assert near(img, COLORS["failed"], tol=40).sum() == 0


def test_stale_worker_is_drawn_in_the_stale_colour():
    stale = worker(2, 80, updated=NOW - 1000)
    img = render(ok_job(5, {2: stale}))
    assert len(bar_rows(img, COLORS["stale"])) >= 5
    # Same job, judged with a longer stale_after: nothing is stale, no stale bar.
    img = render(ok_job(5, {2: stale}), stale_after=3600)
    assert len(bar_rows(img, COLORS["stale"])) == 0


def test_stale_worker_among_10000_is_visible():
    img = render(ok_job(10_000, {100: worker(100, 80, updated=NOW - 1000)}))
    assert len(bar_rows(img, COLORS["stale"], tol=8)) >= 1


def test_done_and_running_use_their_colours():
    img = render(job([worker(0, 100), worker(1, 40)]))
    assert len(bar_rows(img, COLORS["done"])) >= 5
    assert len(bar_rows(img, COLORS["running"], min_px=40)) >= 5


# --------------------------------------------------------------------------- odd values


def test_empty_job_renders_without_bars():
    img = render(job([]))
    assert img.shape[1] == chart.WIDTH_PX
    for color in COLORS.values():
        assert len(bar_rows(img, color, min_px=50)) == 0


def test_current_above_total_fills_the_bar_and_prints_the_real_percent():
    over = render(job([worker(0, 150, 100, desc="d")]))
    full = render(job([worker(0, 100, 100, desc="d")]))
    # The bar, the id and the header (whose overall percent is clipped) are identical ...
    assert np.array_equal(over[:, :645], full[:, :645])
    assert len(bar_rows(over, COLORS["done"], min_px=240)) >= 5
    # ... but the percent printed beside the bar is not (150.0 % against 100.0 %).
    assert not np.array_equal(over, full)


@pytest.mark.parametrize(
    "current,total",
    [
        (0, 100),
        (0, 0),
        (5, 0),
        (-5, 100),
        (float("nan"), 100),
        (float("inf"), 100),
        (1e300, 1e-300),
    ],
)
def test_odd_numbers_render(current, total):
    for n in (3, 500):
        render(job([worker(0, current, total)] + [worker(i) for i in range(1, n)]))


# --------------------------------------------------------------------------- hostile text

HOSTILE = [
    "$\\frac{",
    "$$",
    "$x^$ and $\\undefinedcommand{x}$",
    r"\$\mathrm{",
    "<script>alert('x')</script>",
    "nul\x00byte\x07bell\x1b[31mansi",
    "line\nbreak\r\ttab\u2028sep",
    "x" * 5000,
    "🚀🔥 👨‍👩‍👧 done ✅",
    "漢字テスト 한국어",
    "مرحبا بالعالم \u202eevil",
    "lone \ud800 surrogate",
    "e\u0301" * 200,
    "\ue000 private \U000f0000",
    "%s %d {0} {}",
    "",
    "   ",
]


@pytest.mark.parametrize("n", [3, 90, 2000])  # per-worker text, every id, a subset of ids
@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_strings_render_without_errors_or_warnings(text, n):
    rows = [worker(0, 10, desc=text, ok=False), worker(1, 20, desc=text, updated=NOW - 900)]
    rows += [worker(i, i % 100) for i in range(2, n)]
    rows[0] = WorkerRow(text, 10, 100, False, text, NOW)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img = decode(render_png(job(rows, desc=text, jobid=text), now=NOW))
    assert img.shape[1] == chart.WIDTH_PX


def test_line_breaks_and_tabs_in_user_text_are_drawn_as_spaces():
    def picture(sep: str) -> bytes:
        rows = [WorkerRow(f"id{sep}1", 5, 10, True, f"two{sep}lines", NOW)]
        return render_png(job(rows, desc=f"job{sep}title"), now=NOW)

    assert picture("\n") == picture("\t") == picture(" ")


def test_long_text_is_cut_with_an_ellipsis():
    font = chart._font(11)
    fitted = chart._fit(chart._clean("x" * 5000), font, 200)
    assert fitted.endswith("\u2026") and 190 <= font.getlength(fitted) <= 200
    assert chart._fit("short", font, 200) == "short"


def test_clean_removes_control_and_format_characters():
    cleaned = chart._clean("a\x00b\nc\u202ed\ud800e")
    assert cleaned == "a\ufffdb cd\ufffde"
    assert cleaned.isprintable()


# --------------------------------------------------------------------------- purity


def test_threads_get_the_same_pictures_as_a_single_thread():
    snaps = [ok_job(n, {1: worker(1, 10, ok=False)}) for n in (4, 40, 400, 4000)]
    serial = [render_png(s, now=NOW) for s in snaps]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda s: render_png(s, now=NOW), snaps * 3))
    assert parallel == serial * 3


def test_renderer_never_loads_pyplot():
    code = (
        "import sys\n"
        "from renderer.chart import render_png\n"
        "from domain.model import JobSnapshot, WorkerRow\n"
        "w = WorkerRow('a', 1, 2, True, 'd', 0.0)\n"
        "render_png(JobSnapshot('j', 'd', 0.0, 60, workers=(w,)), now=1.0)\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
