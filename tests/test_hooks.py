"""The completion hook: where it may send (ports as listed), its Standard Webhooks signature,
no redirect followed, and a receiver that never answers delaying no chart. The rules are tested
fast in this process; the rest on the live service's processes with real HTTP receivers on
127.0.0.1, on the ports FAST lists (conftest.HOOK_PORTS), each receiver on a port of its own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import select
import threading
import time
from dataclasses import dataclass, field

import pytest

from domain.hooks import job_mac, new_key, notify_refusal, sign, signing_key
from tasks import notify, runtime
from tasks.celery_app import app as celery_app
from tasks.celery_app import configure
from tasks.pipeline import NOTIFY
from tasks.settings import Settings
from tasks.store import Store, job_tag
from tests.conftest import HOOK_PORTS
from tests.harness import RedisServer, free_port, wait_until

_free_hook_ports = iter(HOOK_PORTS)
SECRET = "owner's secret"  # a hook is sent only for a job created with a secret


# -- the rules, fast --------------------------------------------------------------------------
def test_signature_is_standard_webhooks():
    # Standard Webhooks' own test vector (its libraries' test_sign_function).
    headers = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    # And one worked out here: the key is the base64 after whsec_, the signed text id.ts.body.
    key = bytes(range(32))
    body = b'{"jobid": "a", "state": "done"}'
    expected = hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    for spelling in (new_key(key), base64.b64encode(key).decode()):
        signed = sign(spelling, "msg_1", 1700000000, body)
        assert signed["webhook-signature"] == "v1," + base64.b64encode(expected).decode()
    assert sign(new_key(key), "msg_1", 1700000001, body) != signed  # the time is signed too
    assert sign(new_key(key), "msg_2", 1700000000, body) != signed  # and the id


@pytest.mark.parametrize("key", ["", "whsec_", "whsec_not base64!", "ab-cd"])
def test_a_key_that_is_not_base64_is_refused(key):
    with pytest.raises(ValueError, match="PROGRESS_NOTIFY_KEY"):
        signing_key(key)


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://ci.example.org/hook", None),
        ("http://ci.example.org:80/hook", None),
        ("https://ci.example.org/hook", None),
        ("http://ci.example.org:8080/hook", "port 8080"),  # a host alone: the default port only
        ("http://ci.example.org:443/hook", "port 443"),  # https's port, but over http
        ("https://ci.example.org:80/hook", "port 80"),
        ("http://hooks.example.org:9000/x", None),
        ("https://hooks.example.org:9000/x", None),
        ("http://hooks.example.org/x", "port 80"),  # host:port: that port only
        ("http://hooks.example.org:9001/x", "port 9001"),
        ("http://[::1]:9000/x", None),
        ("http://[::1]:9001/x", "port 9001"),
        ("http://other.example.org/x", "not among"),
        ("http://ci.example.org:0/x", "1 to 65535"),
        ("http://ci.example.org:99999/x", "1 to 65535"),
        ("http://[@ci.example.org/x", "http or https"),
        ("ftp://ci.example.org/x", "http or https"),
    ],
)
def test_hosts_and_ports_as_listed(url, refused):
    allowed = Settings(notify_hosts="ci.example.org, hooks.example.org:9000,[::1]:9000")
    reason = notify_refusal(url, allowed.notify_allowed)
    assert reason is None if refused is None else refused in reason


def test_one_signing_key_for_every_notify_worker(tmp_path, monkeypatch):
    """PROGRESS_NOTIFY_KEY if set; else the first key any worker stores in Redis, for all."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        store = Store(server.client())
        monkeypatch.setattr(runtime, "store", lambda: store)
        monkeypatch.setattr(runtime, "settings", lambda: Settings(notify_key="whsec_c2V0"))
        assert notify.service_key() == "whsec_c2V0"
        monkeypatch.setattr(runtime, "settings", lambda: Settings())
        first = notify.service_key()
        assert first.startswith("whsec_") and len(signing_key(first)) == 32
        assert notify.service_key() == first == store.notify_key(new_key(b"another key"))
    finally:
        server.stop()


# -- on the live service ----------------------------------------------------------------------
@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def document(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records every POST and answers `status` (with
    `location`), or with `hang`, never answers: it records when the client gives up instead."""

    port: int
    status: int = 204
    location: str = ""
    hang: bool = False
    received: list[Delivery] = field(default_factory=list)
    given_up: list[float] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(Delivery(headers, body, time.monotonic()))
                if receiver.hang:
                    self.close_connection = True
                    return receiver.wait_for_client_to_give_up(self.connection)
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def wait_for_client_to_give_up(self, connection) -> None:
        deadline = time.monotonic() + 60
        while not self.release.is_set() and time.monotonic() < deadline:
            if select.select([connection], [], [], 0.05)[0]:
                if not connection.recv(1):  # the client closed its end
                    self.given_up.append(time.monotonic())
                    return

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    """Receivers on ports the hook may reach (one of HOOK_PORTS each), or on `port`."""
    started: list[Receiver] = []

    def start(port: int | None = None, **answer) -> Receiver:
        if port is None:
            port = next(_free_hook_ports, None)
            assert port, "every port of conftest.HOOK_PORTS is used: list more there"
        started.append(Receiver(port, **answer).start())
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture(scope="module")
def hook_key(store) -> str:
    """The key the live service's notify workers sign with: none is set in FAST, so the one
    they share through Redis (if none is stored yet, this one becomes it)."""
    return store.notify_key(new_key(b"\x01" * 32))


def verified(delivery: Delivery, key: str) -> dict:
    """The document of a delivery whose Standard Webhooks headers check out, as a receiver
    checks them (written here from the specification, not with the service's sign())."""
    msg_id, timestamp = delivery.headers["webhook-id"], delivery.headers["webhook-timestamp"]
    assert msg_id.startswith("msg_") and abs(time.time() - int(timestamp)) < 60
    secret = base64.b64decode(key.removeprefix("whsec_"))
    content = f"{msg_id}.{timestamp}.".encode() + delivery.body
    expected = base64.b64encode(hmac.new(secret, content, hashlib.sha256).digest()).decode()
    signatures = delivery.headers["webhook-signature"].split()
    assert any(hmac.compare_digest(s, f"v1,{expected}") for s in signatures), "bad signature"
    return delivery.document


def owners_mac(secret: str, jobid: str) -> str:
    """job_mac as the job's owner computes it, from the README's recipe."""
    return hmac.new(secret.encode(), jobid.encode(), hashlib.sha256).hexdigest()


def send_hook(settings: Settings, jobid: str, url: str, state: str = "done") -> None:
    """A notify message as the pipeline sends it, for a URL that create may not have seen."""
    configure(celery_app, settings)
    celery_app.send_task(NOTIFY, args=(job_tag(jobid), state, url))


def refused_at_send(service, jobid: str) -> str | None:
    lines = service.log("notify").splitlines()
    matches = [line for line in lines if f'event=notify_refused job="{jobid}"' in line]
    return matches[0] if matches else None


def test_hook_is_posted_once_when_all_workers_are_done_and_signed(
    live_service, jobid, receivers, hook_key
):
    receiver = receivers()
    assert (
        live_service.get("create", jobid=jobid, secret=SECRET, notify=receiver.url).status_code
        == 200
    )
    live_service.get("update", jobid=jobid, secret=SECRET, workid="a", current=1, total=2)
    live_service.get("update", jobid=jobid, secret=SECRET, workid="b", current=2, total=2)
    live_service.get("update", jobid=jobid, secret=SECRET, workid="a", current=2, total=2)
    live_service.get(
        "update", jobid=jobid, secret=SECRET, workid="a", current=2, total=2, desc="again"
    )
    wait_until(lambda: receiver.received, 30, what="the completion hook")
    wait_until(lambda: live_service.get("status", jobid=jobid).json()["workers"][0]["desc"], 20)
    [delivery] = receiver.received
    assert verified(delivery, hook_key) == {
        "jobid": jobid,
        "state": "done",
        "desc": "",
        "workers": 2,
        "failed": [],
        "job_mac": owners_mac(SECRET, jobid),
    }
    assert delivery.headers["content-type"] == "application/json"
    # Another key, or the body changed by one byte, fails the check.
    with pytest.raises(AssertionError, match="bad signature"):
        verified(delivery, new_key(b"\x02" * 32))
    with pytest.raises(AssertionError, match="bad signature"):
        verified(Delivery(delivery.headers, delivery.body.replace(b"done", b"dona"), 0), hook_key)


def test_hook_fires_on_first_failure(live_service, jobid, receivers, hook_key):
    receiver = receivers()
    live_service.get("create", jobid=jobid, secret=SECRET, notify=receiver.url)
    live_service.get("update", jobid=jobid, secret=SECRET, workid="a", current=1, total=5)
    live_service.get("update", jobid=jobid, secret=SECRET, workid="b", current=1, total=5, ok=0)
    wait_until(lambda: receiver.received, 30, what="the failure hook")
    document = verified(receiver.received[0], hook_key)
    assert document["state"] == "failed" and document["failed"] == ["b"]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.org/hook", "not among"),
        ("ftp://127.0.0.1/x", "http or https"),
        ("http://127.0.0.1/hook", "port 80"),  # FAST lists 127.0.0.1 with ports only
    ],
)
def test_notify_only_to_allowed_hosts(live_service, jobid, url, words):
    resp = live_service.get("create", jobid=jobid, notify=url)
    assert resp.status_code == 400 and words in resp.json()["description"]


def test_a_port_not_listed_is_refused_at_create_and_when_sending(
    live_service, settings, jobid, receivers
):
    """A receiver on 127.0.0.1, but on a port FAST does not list: create answers 400, and a
    message placed on the queue directly (as anyone who can write to Redis could) is refused
    by the notify worker, which never connects."""
    unlisted = receivers(port=free_port())
    assert unlisted.port not in HOOK_PORTS
    resp = live_service.get("create", jobid=jobid, notify=unlisted.url)
    assert resp.status_code == 400
    assert f"port {unlisted.port}" in resp.json()["description"]

    send_hook(settings, jobid, unlisted.url)
    line = wait_until(lambda: refused_at_send(live_service, jobid), 30, what="the refusal")
    assert f"port {unlisted.port}" in line
    time.sleep(0.5)  # a worker that sent anyway would have been heard by now
    assert unlisted.received == []


def test_hook_task_refuses_hosts_not_allowed_when_it_sends(
    live_service, settings, jobid, receivers
):
    """A message with a host outside PROGRESS_NOTIFY_HOSTS never reaches it, though the
    receiver answers on both names; the allowed one, sent after it, arrives."""
    receiver = receivers()
    not_allowed = receiver.url.replace("127.0.0.1", "localhost")  # FAST lists 127.0.0.1 only
    refused_job, allowed_job = f"{jobid}:refused", f"{jobid}:allowed"
    send_hook(settings, refused_job, not_allowed)
    send_hook(settings, allowed_job, receiver.url, "failed")
    line = wait_until(lambda: refused_at_send(live_service, refused_job), 30, what="a refusal")
    assert "'localhost' is not among" in line
    wait_until(lambda: receiver.received, 30, what="the allowed hook")
    time.sleep(0.5)
    assert [d.document["jobid"] for d in receiver.received] == [allowed_job]


def test_a_redirect_is_not_followed(live_service, jobid, receivers, hook_key):
    """The first receiver answers 302 to a second, which the hook may reach too: the hook
    counts the 302 as a failure and tries the first again (same webhook-id, signed anew);
    the second hears nothing."""
    target = receivers()
    redirecting = receivers(status=302, location=target.url)
    assert (
        live_service.get("create", jobid=jobid, secret=SECRET, notify=redirecting.url).status_code
        == 200
    )
    live_service.get("update", jobid=jobid, secret=SECRET, workid="w", current=3, total=3)
    wait_until(lambda: len(redirecting.received) >= 2, 30, what="the hook to be retried")
    first, again = redirecting.received[:2]
    assert verified(first, hook_key) == verified(again, hook_key)
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    assert target.received == []
    failures = [
        line
        for line in live_service.log("notify").splitlines()
        if f'event=notify_failed job="{jobid}"' in line
    ]
    assert failures and "answered 302 (redirects are not followed)" in failures[0]


def test_a_receiver_that_never_answers_delays_no_chart(live_service, jobid, receivers):
    """While a receiver holds the hook's request without answering, another job's update
    still gets its new chart at once; the hook gives up after its timeout."""
    hanging = receivers(hang=True)
    other = f"{jobid}:other"
    assert live_service.get("create", jobid=other).status_code == 200

    def etag() -> str:
        return live_service.get("render", jobid=other).headers.get("ETag", "")

    created = etag()  # a placeholder until the first update is drawn
    live_service.get("update", jobid=other, workid="w", current=1, total=4)
    wait_until(lambda: etag() not in ("", created), 20, what="the other job's first chart")
    time.sleep(1.0)  # past the render interval (FAST: 0.5 s): nothing more is due for it
    before = etag()

    assert (
        live_service.get("create", jobid=jobid, secret=SECRET, notify=hanging.url).status_code
        == 200
    )
    live_service.get("update", jobid=jobid, secret=SECRET, workid="w", current=2, total=2)
    wait_until(lambda: hanging.received, 30, what="the hook to reach the hanging receiver")
    hung_at = hanging.received[0].at

    update = live_service.get("update", jobid=other, workid="w", current=3, total=4)
    assert update.status_code == 202
    # A renderer held by the hook would draw only after the hook's timeout.
    assert notify.TIMEOUT >= 5
    wait_until(lambda: etag() != before, 3, what="a new chart while the hook hangs")
    assert not hanging.given_up, "the hook stopped waiting before the chart was checked"
    assert time.monotonic() - hung_at < notify.TIMEOUT

    # The hook does give up, after its timeout and not much later.
    wait_until(lambda: hanging.given_up, notify.TIMEOUT + 5, what="the hook to give up")
    assert notify.TIMEOUT - 0.5 < hanging.given_up[0] - hung_at < notify.TIMEOUT + 3


def test_a_job_failed_as_a_whole_sends_failed_once_with_its_failure_and_meta(
    live_service, jobid, receivers, hook_key
):
    receiver = receivers()
    meta = '{"input": "s3://bucket/run-7/", "parts": 3}'
    live_service.get("create", jobid=jobid, secret=SECRET, notify=receiver.url, meta=meta)
    live_service.get("update", jobid=jobid, secret=SECRET, workid="a", current=1, total=2)
    failed = live_service.get(
        "fail", jobid=jobid, secret=SECRET, workid="b", desc="ValueError: bad input"
    )
    assert failed.status_code == 200, failed.text
    wait_until(lambda: receiver.received, 30, what="the failure hook")
    # The failing worker's own red bar, and every worker done later: no second hook.
    live_service.get("update", jobid=jobid, secret=SECRET, workid="b", current=1, total=2, ok=0)
    live_service.get("update", jobid=jobid, secret=SECRET, workid="a", current=2, total=2)
    live_service.get(
        "update", jobid=jobid, secret=SECRET, workid="b", current=2, total=2, desc="last"
    )
    wait_until(lambda: live_service.get("status", jobid=jobid).json()["counts"]["done"] == 2, 20)
    [delivery] = receiver.received
    document = verified(delivery, hook_key)
    assert document["state"] == "failed"
    assert document["job_failed"] == failed.json()["job_failed"]
    assert document["meta"] == {"input": "s3://bucket/run-7/", "parts": 3}


def test_job_mac_is_hmac_of_the_jobid_keyed_by_the_secret():
    assert job_mac("s3cret", "run 7") == owners_mac("s3cret", "run 7")
    assert job_mac("s3cret", "run 7") != job_mac("s3cret", "run 8") != job_mac("other", "run 8")


@pytest.mark.parametrize("secret", [None, ""])
def test_a_hook_without_a_secret_is_refused_and_nothing_is_created(
    live_service, jobid, receivers, secret
):
    receiver = receivers()
    params = {"jobid": jobid, "notify": receiver.url}
    if secret is not None:
        params["secret"] = secret
    resp = live_service.get("create", **params)
    assert resp.status_code == 400
    error = resp.json()
    assert "notify" in error["title"] + error["description"]
    assert "only for a job created with a secret" in error["description"]
    assert live_service.get("status", jobid=jobid).status_code == 404


def test_a_stranger_cannot_make_the_service_vouch_for_anothers_job(
    live_service, jobid, receivers, hook_key
):
    """The attack: a stranger creates a job of the id the receiver waits for, with a hook to
    it, and finishes it. The delivery is signed by the service, as every one is; but its
    job_mac is keyed by the stranger's secret, so the owner's check refuses it."""
    receiver = receivers()
    stranger = "the stranger's own secret"
    created = live_service.get("create", jobid=jobid, secret=stranger, notify=receiver.url)
    assert created.status_code == 200
    live_service.get("update", jobid=jobid, secret=stranger, workid="w", current=1, total=1)
    wait_until(lambda: receiver.received, 30, what="the stranger's hook")
    document = verified(receiver.received[0], hook_key)  # the service did send it
    assert document["jobid"] == jobid and document["state"] == "done"
    assert document["job_mac"] == owners_mac(stranger, jobid)
    assert not hmac.compare_digest(document["job_mac"], owners_mac(SECRET, jobid))


def test_a_hook_kept_before_job_mac_existed_is_still_sent_without_one(
    live_service, settings, jobid, receivers, hook_key
):
    """A message (or a job's field) holding a plain URL, as an earlier version kept it."""
    receiver = receivers()
    send_hook(settings, jobid, receiver.url)
    wait_until(lambda: receiver.received, 30, what="the hook")
    assert "job_mac" not in verified(receiver.received[0], hook_key)
