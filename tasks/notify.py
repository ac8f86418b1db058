"""The job completion hook: POST a small JSON document, once, to the URL given at create, when
every worker that has reported is at 100 % or one has failed. Off unless the operator lists the
hosts it may reach (PROGRESS_NOTIFY_HOSTS), since it makes the server send requests. For a job
created with workers=N, "done" waits for N finished workers (tasks/lua/apply.lua decides).

It runs on a queue and worker of its own (the Procfile's `notify`, a pool of threads), so a
receiver that is slow or never answers holds a notify thread for TIMEOUT at most, never a
renderer. Each delivery is signed as Standard Webhooks sign theirs (domain.hooks.sign) with
the service's key: PROGRESS_NOTIFY_KEY, which the operator sets and gives to the receivers so
they can verify the webhook-signature header; when it is empty, one is generated and kept in
Redis (Store.notify_key, progress:notify:key) so that every notify worker signs with the same
key. That proves only that the service sent it: only a job created with a secret may have a
hook, and its document carries job_mac (domain.hooks.job_mac), which only the secret's holder
can compute, so the receiver knows the job is its owner's.
Redirects are not followed: a 3xx answer is a failure, retried like any other."""

from __future__ import annotations

import http.client
import json
import logging
import secrets
import socket
import threading
import time
from urllib.parse import urlsplit

from domain.hooks import hook_of, new_key, notify_refusal, sign
from domain.model import natural_key
from tasks import runtime
from tasks.celery_app import app
from tasks.pipeline import NOTIFY, NOTIFY_HEARTBEAT
from tasks.settings import Settings
from tasks.store import Store, jobid_of

# The whole request (connect, send, the answer's status line and headers) must take no longer.
MAX_FAILED = 1000  # failed workers named in the document
TIMEOUT = 5.0
log = logging.getLogger("progress.notify")


class NotifyFailed(OSError):
    """The receiver could not be reached or did not answer 2xx in time: retried."""


@app.task(
    name=NOTIFY,
    bind=True,
    autoretry_for=(OSError,),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=6,
)
def notify_finished(self, tag: str, state: str, hook: str) -> None:
    """`hook` is what the job keeps of its hook (domain.hooks.stored_hook)."""
    jobid = jobid_of(tag)
    url, mac = hook_of(hook)
    # Checked again here, not only at create: anyone who can write to the queue could place a
    # message with another URL, and the allowed hosts may have changed since.
    reason = notify_refusal(url, runtime.settings().notify_allowed)
    if reason:
        log.warning("event=notify_refused job=%s reason=%s", json.dumps(jobid), json.dumps(reason))
        return
    document = completion_document(runtime.store(), jobid, state, runtime.settings())
    if mac is not None:
        document["job_mac"] = mac
    body = json.dumps(document).encode()
    # The task's id is kept by every retry and redelivery: receivers can drop a repeat by it.
    headers = sign(service_key(), f"msg_{self.request.id}", int(time.time()), body)
    try:
        status = post(url, body, headers, TIMEOUT)
    except NotifyFailed as exc:
        log.warning(
            "event=notify_failed job=%s attempt=%d reason=%s",
            json.dumps(jobid),
            self.request.retries + 1,
            json.dumps(str(exc)),
        )
        raise
    log.info("event=notify_sent job=%s status=%d", json.dumps(jobid), status)


def completion_document(store: Store, jobid: str, state: str, settings: Settings) -> dict:
    """What the hook POSTs: the job, how it ended, its failed workers (the latest MAX_FAILED)
    and, when the job has them, its expected workers, its failure as a whole and its meta."""
    now = time.time()
    info = store.job_info(jobid, now, settings.stale_after)
    failed = store.problems(jobid, now, settings.stale_after, MAX_FAILED)[0]
    document = {
        "jobid": jobid,
        "state": state,
        "desc": info.desc if info else "",
        "workers": info.workers if info else 0,
        "failed": sorted((w.workid for w in failed), key=natural_key),  # the latest MAX_FAILED
    }
    if info and info.expected is not None:  # only then: other jobs' documents stay as they were
        document["workers_expected"] = info.expected
    if info and info.job_failed is not None:  # failed as a whole (/progress/fail), likewise
        document["job_failed"] = info.job_failed.as_dict()
    if info and info.meta is not None:  # create's meta, for the reduce step
        document["meta"] = info.meta
    return document


@app.task(name=NOTIFY_HEARTBEAT)
def notify_heartbeat() -> None:
    """Sent by beat's sweep through the notify queue, so /readyz knows hooks would be sent."""
    runtime.store().heartbeat("notify", time.time())


def service_key() -> str:
    """PROGRESS_NOTIFY_KEY, or the key the notify workers share through Redis."""
    return runtime.settings().notify_key or runtime.store().notify_key(
        new_key(secrets.token_bytes(32))
    )


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST `body` to `url` and return the 2xx status; NotifyFailed for anything else (no
    redirect is followed, no proxy used). The whole exchange is cut off after `timeout`, so a
    receiver trickling its answer a byte at a time cannot hold the thread longer either."""
    parts = urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname, parts.port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        **headers,
        "Content-Type": "application/json",
        "User-Agent": "progress-service",
        "Connection": "close",
    }
    cutoff = threading.Timer(timeout, _cut, (connection,))
    cutoff.daemon = True
    cutoff.start()
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        raise NotifyFailed(f"{type(exc).__name__}: {exc}") from None
    finally:
        cutoff.cancel()
        connection.close()
    if 300 <= status < 400:
        raise NotifyFailed(f"receiver answered {status} (redirects are not followed)")
    if not 200 <= status < 300:
        raise NotifyFailed(f"receiver answered {status}")
    return status


def _cut(connection: http.client.HTTPConnection) -> None:
    """Unblock a request past its deadline: shutting the socket down wakes the thread in recv."""
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
