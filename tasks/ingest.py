"""Ingest tasks: thin wrappers over the pipeline's drain and apply steps (tasks.pipeline)."""

from __future__ import annotations

from tasks import runtime
from tasks.celery_app import app
from tasks.pipeline import APPLY_BATCH, DRAIN


@app.task(name=DRAIN)
def drain() -> int:
    return runtime.pipeline().drain()


@app.task(name=APPLY_BATCH)
def apply_batch(batch_id: str) -> int:
    return runtime.pipeline().apply_lost_batch(batch_id)
