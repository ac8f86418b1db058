"""The lower bounds in pyproject.toml are real: the service works with every dependency at the
oldest release its bound allows, and the chart needs matplotlib no older than the one named.

A fresh clone gets a virtualenv with each dependency pinned to its floor (`name==floor`), and
the tests that exercise each dependency run there: Falcon, Jinja2, redis-py and the renderer in
process, Celery, kombu and waitress as the service's real processes. Beside it, the chart is
drawn with the floor matplotlib, and must fail with the release just before it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.harness import ROOT, fresh_clone

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

# Tests run in the floor virtualenv, chosen to touch every dependency in pyproject.toml.
FLOOR_TESTS = [
    "tests/test_renderer.py",  # matplotlib, numpy, Pillow
    "tests/test_api_validation.py",  # Falcon
    "tests/test_pages.py",  # Jinja2
    "tests/test_store.py",  # redis-py, hiredis
    "tests/test_pipeline.py",  # Celery, kombu, waitress, the embedded Redis: real processes
    "tests/test_metrics.py",  # prometheus-client
]
# The chart's hatched bars pass `hatchcolor`, which matplotlib accepts from 3.11.0 on.
MATPLOTLIB_FLOOR, MATPLOTLIB_BEFORE = "3.11.0", "3.10.9"


def floor_pins() -> list[str]:
    """`name==floor` for every dependency of the service, from its `>=` bound."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = []
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+(?:\[[a-z,]+\])?)>=([0-9.]+)", requirement)
        assert match, f"{requirement!r}: every dependency needs a lower bound (name>=version)"
        pins.append(f"{match[1]}=={match[2]}")
    return pins


def canonical(pin: str) -> str:
    """`Prometheus_Client[x]==1.0` as `prometheus-client==1.0`, to compare with pip's names."""
    name, version = re.sub(r"\[.*\]", "", pin).split("==")
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"


def make_venv(path: Path, *requirements: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    python = path / "bin" / "python"
    # This environment's pip, newer than the one venv bundles, installs into the new one.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", *requirements],
        check=True,
    )
    return python


def test_every_dependency_has_a_floor_that_can_be_installed():
    names = {re.split(r"[\[>=]", pin)[0].lower() for pin in floor_pins()}
    # What the service's code imports must be declared, not left to arrive with something else.
    assert {"matplotlib", "numpy", "pillow", "kombu", "celery", "falcon"} <= names


def test_service_works_with_every_dependency_at_its_floor(tmp_path):
    clone = fresh_clone(tmp_path / "clone", install=False)
    dev = ["pytest", "pytest-timeout", "hypothesis", "requests"]
    python = make_venv(tmp_path / "floor-venv", *floor_pins(), *dev)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
        + ["--no-deps", "-e", str(clone), "-e", str(clone / "client")],
        check=True,
    )
    # The Procfile lines run .venv/bin/...; point the clone's .venv at the floor virtualenv and
    # mark it installed, so bin/in-venv uses it instead of installing the newest releases.
    (clone / ".venv").symlink_to(tmp_path / "floor-venv")
    (tmp_path / "floor-venv" / ".installed").touch()
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "list", "--format=freeze"],
        capture_output=True,
        text=True,
    ).stdout
    installed = dict(canonical(line).split("==") for line in freeze.split())
    assert installed == {**installed, **dict(canonical(pin).split("==") for pin in floor_pins())}
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *FLOOR_TESTS],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


# A chart with a stale worker (silent for 1,000 s, unfinished): its bar is hatched, the part
# that needs matplotlib 3.11.
DRAW_STALE_WORKER = """
from domain.model import JobSnapshot, WorkerRow
from renderer.chart import render_png
rows = (WorkerRow("w1", 5, 10, True, "", 1000.0), WorkerRow("w2", 3, 10, True, "", 0.0))
png = render_png(JobSnapshot("job", "", 0.0, 3600, workers=rows), now=1000.0)
assert png.startswith(b"\\x89PNG")
"""


@pytest.mark.parametrize("release, draws", [(MATPLOTLIB_FLOOR, True), (MATPLOTLIB_BEFORE, False)])
def test_matplotlib_floor_is_the_first_release_that_draws_the_chart(tmp_path, release, draws):
    assert dict(pin.split("==") for pin in floor_pins())["matplotlib"] == MATPLOTLIB_FLOOR
    python = make_venv(tmp_path / "mpl", f"matplotlib=={release}")
    result = subprocess.run(
        [str(python), "-c", DRAW_STALE_WORKER],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    if draws:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0 and "hatchcolor" in result.stderr, result.stderr
