"""Render tasks: thin wrappers over the pipeline's render step (tasks.pipeline). Only the
render worker imports this module, so only it loads matplotlib."""

from __future__ import annotations

import time

from renderer.chart import render_png
from tasks import runtime
from tasks.celery_app import app
from tasks.pipeline import RENDER, RENDER_HEARTBEAT


@app.task(name=RENDER)
def render_job(tag: str) -> None:
    runtime.pipeline().render(tag, render_png)


@app.task(name=RENDER_HEARTBEAT)
def render_heartbeat() -> None:
    """Sent by beat's sweep through the render queue, so /readyz knows renders flow."""
    runtime.store().heartbeat("render", time.time())
