"""The job completion hook: POST a small JSON document, once, to the URL given at create, when
every worker that has reported is at 100 % or one has failed. Off unless the operator lists the
hosts it may reach (PROGRESS_NOTIFY_HOSTS), since it makes the server send requests."""

from __future__ import annotations

import json
import logging
import urllib.request

from domain.hooks import notify_refusal
from tasks import runtime
from tasks.celery_app import app
from tasks.pipeline import NOTIFY
from tasks.store import jobid_of

TIMEOUT = 3.0  # it runs on the render queue: keep a slow receiver from holding a renderer long
log = logging.getLogger("progress.notify")


@app.task(
    name=NOTIFY,
    autoretry_for=(OSError,),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=6,
)
def notify_finished(tag: str, state: str, url: str) -> None:
    # Checked again here, not only at create: anyone who can write to the queue could place a
    # message with another URL, and the allowed hosts may have changed since.
    reason = notify_refusal(url, runtime.settings().notify_allowed)
    if reason:
        log.warning("event=notify_refused reason=%s", json.dumps(reason))
        return
    jobid = jobid_of(tag)
    snapshot = runtime.store().snapshot(jobid)
    document = {
        "jobid": jobid,
        "state": state,
        "desc": snapshot.desc if snapshot else "",
        "workers": len(snapshot.workers) if snapshot else 0,
        "failed": [w.workid for w in snapshot.workers if not w.ok] if snapshot else [],
    }
    request = urllib.request.Request(
        url,
        data=json.dumps(document).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "progress-service"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - allow-listed
        if response.status >= 300:
            raise OSError(f"notify receiver answered {response.status}")
