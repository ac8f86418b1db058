"""What one job, and one client address, may hold: the worker cap holds inside a batch, a job's
bytes are bounded, each address has its own quota of jobs and rows (charged to the address that
created the job, whoever posts), jobs nobody updates expire before their maxage, and the operator
can delete jobs by address or id prefix. The counts are kept exact by every script that adds or
removes rows, so they are checked against what is stored."""

from __future__ import annotations

import dataclasses
import http.client
import io
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import falcon.testing
import pytest

from api import create_app
from tasks import admin
from tasks.pipeline import Pipeline
from tasks.settings import Settings
from tasks.store import EXPIRY, OWNERS, Store, _keys, job_tag
from tests.conftest import FAST, RecordingBroker, quiet_log
from tests.harness import RedisServer, Service, wait_until

ATTACKER, OTHER = "10.0.0.66", "10.0.0.7"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("quotas-redis")).start()
    yield server
    server.stop()


class App:
    """The app in this process on a flushed Redis, with the ingest step run on demand."""

    def __init__(self, redis_server: RedisServer, **settings) -> None:
        redis_server.client().flushdb()
        self.settings = dataclasses.replace(
            Settings.from_env({"REDIS_URL": redis_server.url}), create_rate_limit=0, **settings
        )
        self.store = Store(redis_server.client())
        self.pipeline = Pipeline(self.store, RecordingBroker(), self.settings)
        app = create_app(self.settings, self.store, self.pipeline, log_stream=quiet_log())
        self.client = falcon.testing.TestClient(app)

    def create(self, jobid: str, address: str = OTHER, **params):
        return self.client.simulate_get(
            "/progress/create", params={"jobid": jobid, **params}, remote_addr=address
        )

    def post(self, jobid: str, workers, address: str = OTHER, desc: str = "", **extra):
        """One JSON POST of an update per worker id (all or nothing)."""
        batch = [
            {"jobid": jobid, "workid": w, "current": 1, "total": 2, "desc": desc, **extra}
            for w in workers
        ]
        return self.client.simulate_post("/progress/update", json=batch, remote_addr=address)

    def update(self, jobid: str, workid: str, address: str = OTHER, desc: str = "", **extra):
        params = {"jobid": jobid, "workid": workid, "current": 1, "total": 2, "desc": desc}
        return self.client.simulate_get(
            "/progress/update", params={**params, **extra}, remote_addr=address
        )

    def drain(self) -> None:
        while self.pipeline.drain():
            pass

    def owners(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.store.redis.hgetall(OWNERS).items()}

    def stored_bytes(self, jobid: str) -> tuple[int, int]:
        """The job's byte count as kept, and as its stored rows add up."""
        meta, workers, _ = _keys(job_tag(jobid))
        kept = int(self.store.redis.hget(meta, "bytes") or 0)
        rows = self.store.redis.hgetall(workers)
        return kept, sum(len(w) + len(r) for w, r in rows.items())


def refused(resp, status: int, setting: str) -> None:
    assert resp.status_code == status, resp.text
    assert setting in resp.json["description"], resp.json


# -- the worker cap inside one batch ----------------------------------------------------------
def test_one_batch_cannot_pass_the_worker_cap(redis_server):
    app = App(redis_server, max_workers_per_job=10)
    assert app.create("j").status_code == 200
    refused(app.post("j", [f"w{i}" for i in range(5000)]), 409, "PROGRESS_MAX_WORKERS_PER_JOB")
    assert app.store.redis.llen("progress:inbox") == 0  # all or nothing: none of them
    assert app.post("j", [f"w{i}" for i in range(10)]).status_code == 202
    # queued, not applied yet: a known worker reports, an eleventh is one too many
    assert app.update("j", "w3").status_code == 202
    refused(app.update("j", "w10"), 409, "PROGRESS_MAX_WORKERS_PER_JOB")
    app.drain()
    refused(app.post("j", ["w3", "w10"]), 409, "PROGRESS_MAX_WORKERS_PER_JOB")
    assert app.store.redis.hlen(_keys(job_tag("j"))[1]) == 10


def test_one_batch_cannot_pass_the_rows_cap_of_all_jobs(redis_server):
    app = App(redis_server, max_worker_rows=20)
    app.create("j")
    assert app.post("j", [f"w{i}" for i in range(21)]).status_code == 503
    assert app.post("j", [f"w{i}" for i in range(20)]).status_code == 202


def test_reservations_for_queued_updates_are_released_once_whatever_happens(redis_server):
    app = App(redis_server, max_workers_per_job=3)
    app.create("j", ATTACKER)
    meta, _, _ = _keys(job_tag("j"))
    pending = f"progress:{{{job_tag('j')}}}:pending"
    for current in (1, 2, 3):  # one new worker posted three times: reserved once
        assert (
            app.update("j", "a", ATTACKER, current=current, desc="x" * current).status_code == 202
        )
    assert app.post("j", ["b", "c"], ATTACKER).status_code == 202
    refused(app.update("j", "d", ATTACKER), 409, "PROGRESS_MAX_WORKERS_PER_JOB")
    assert app.store.redis.hget(meta, "queued_new") == b"3"
    assert app.owners()[f"queued:{ATTACKER}"] == 3
    batch_id, entries = "b1", None
    entries, _ = app.store.claim_inbox(batch_id, time.time(), 100, 60_000)
    app.store.apply_batch(batch_id, entries, time.time())
    app.store.apply_batch(batch_id, entries, time.time())  # a batch sent again: nothing more
    assert app.store.redis.hmget(meta, "queued_new", "queued_bytes") == [b"0", b"0"]
    assert not app.store.redis.exists(pending)
    assert app.owners() == {f"jobs:{ATTACKER}": 1, f"rows:{ATTACKER}": 3}
    refused(app.update("j", "d", ATTACKER), 409, "PROGRESS_MAX_WORKERS_PER_JOB")
    # reserved, then re-created or deleted: the owner's reservation goes with the job
    app.create("k", ATTACKER)
    app.post("k", ["x", "y"], ATTACKER)
    app.create("k", OTHER)
    app.post("k", ["x"], OTHER)
    app.client.simulate_get("/progress/delete", params={"jobid": "k"})
    app.drain()
    assert app.owners() == {f"jobs:{ATTACKER}": 1, f"rows:{ATTACKER}": 3}


# -- bytes per job ----------------------------------------------------------------------------
def test_a_job_may_hold_only_so_many_bytes_and_a_shrinking_update_always_fits(redis_server):
    app = App(redis_server, max_job_bytes=4000)
    app.create("j")
    refused(app.post("j", "abcd", desc="x" * 1000), 409, "PROGRESS_MAX_JOB_BYTES")  # one call
    assert app.post("j", ["a", "b"], desc="x" * 1000).status_code == 202
    refused(app.post("j", ["c", "d"], desc="x" * 1000), 409, "PROGRESS_MAX_JOB_BYTES")  # queued
    app.drain()
    refused(app.post("j", ["c", "d"], desc="x" * 1000), 409, "PROGRESS_MAX_JOB_BYTES")
    refused(app.update("j", "c", desc="é" * 1000), 409, "PROGRESS_MAX_JOB_BYTES")  # UTF-8 bytes
    refused(app.update("j", "a", desc="€" * 1000), 409, "PROGRESS_MAX_JOB_BYTES")  # grows
    assert app.update("j", "a", desc="short").status_code == 202
    app.drain()
    assert app.update("j", "c", desc="é" * 1000).status_code == 202  # room again
    app.drain()
    kept, actual = app.stored_bytes("j")
    assert kept == actual and actual <= 4000


def test_the_byte_count_follows_every_change_of_the_rows(redis_server):
    app = App(redis_server)
    app.create("j")
    app.post("j", ["a", "b", "ccc"], desc="first")
    app.drain()
    app.post("j", ["a", "ddd"], desc="a longer description")
    app.client.simulate_post(  # counters alone keep the row as it is; a new worker gets one
        "/progress/update",
        json=[{"jobid": "j", "workid": w, "counters": {"n": 1}} for w in ("b", "eee")],
    )
    app.drain()
    kept, actual = app.stored_bytes("j")
    assert kept == actual > 0
    app.create("j")  # re-created: empty
    assert app.stored_bytes("j") == (0, 0)


# -- per-address quotas -----------------------------------------------------------------------
def test_one_address_holds_at_most_its_jobs_others_still_create(redis_server):
    app = App(redis_server, max_jobs_per_address=3)
    for n in range(3):
        assert app.create(f"a{n}", ATTACKER).status_code == 200
    assert app.create("a0", ATTACKER).status_code == 200  # its own again: no new job
    refused(app.create("a3", ATTACKER), 429, "PROGRESS_MAX_JOBS_PER_ADDRESS")
    assert app.create("mine", OTHER, secret="s").status_code == 200
    assert app.client.simulate_get("/progress/delete", params={"jobid": "a1"}).status_code == 200
    assert app.create("a3", ATTACKER).status_code == 200  # deleting made room
    assert app.owners() == {f"jobs:{ATTACKER}": 3, f"jobs:{OTHER}": 1}


def test_one_address_holds_at_most_its_rows_and_a_strangers_secret_job_still_adds(redis_server):
    app = App(redis_server, max_worker_rows_per_address=25, max_workers_per_job=10)
    for n in range(3):
        app.create(f"a{n}", ATTACKER)
    assert app.post("a0", [f"w{i}" for i in range(10)], ATTACKER).status_code == 202
    assert app.post("a1", [f"w{i}" for i in range(10)], ATTACKER).status_code == 202
    # the quota counts this call's rows too, and rows posted from elsewhere to its jobs
    refused(app.post("a2", [f"w{i}" for i in range(6)], OTHER), 429, "WORKER_ROWS_PER_ADDRESS")
    assert app.post("a2", [f"w{i}" for i in range(5)], OTHER).status_code == 202
    app.drain()
    refused(app.update("a2", "w5", ATTACKER), 429, "PROGRESS_MAX_WORKER_ROWS_PER_ADDRESS")
    assert app.update("a2", "w4", ATTACKER).status_code == 202  # a known worker still reports
    app.drain()
    refused(app.update("a2", "w5", ATTACKER), 429, "PROGRESS_MAX_WORKER_ROWS_PER_ADDRESS")
    app.create("theirs", OTHER, secret="s")
    assert app.update("theirs", "first", OTHER, secret="s").status_code == 202
    app.drain()
    assert app.owners() == {
        f"jobs:{ATTACKER}": 3,
        f"rows:{ATTACKER}": 25,
        f"jobs:{OTHER}": 1,
        f"rows:{OTHER}": 1,
    }


def test_owner_counts_return_to_nothing_when_jobs_go(redis_server):
    app = App(redis_server)
    app.create("a", ATTACKER)
    app.create("b", ATTACKER, maxage=1)
    app.post("a", ["1", "2"], ATTACKER)
    app.post("b", ["1", "2", "3"], OTHER)
    app.drain()
    assert app.owners() == {f"jobs:{ATTACKER}": 2, f"rows:{ATTACKER}": 5}
    assert app.create("a", OTHER).status_code == 200  # re-created by another: theirs, empty
    assert app.owners() == {f"jobs:{ATTACKER}": 1, f"rows:{ATTACKER}": 3, f"jobs:{OTHER}": 1}
    app.store.expire_jobs(time.time() + 2)  # b expires
    app.client.simulate_get("/progress/delete", params={"jobid": "a"})
    assert app.owners() == {}


# -- idle expiry ------------------------------------------------------------------------------
def test_a_job_nobody_updates_expires_before_its_maxage(redis_server):
    app = App(redis_server, idle_expiry=100)
    now = time.time()
    app.create("idle", maxage=10_000)
    app.create("busy", maxage=10_000)
    app.create("short", maxage=50)
    app.store.redis.zadd(EXPIRY, {job_tag("busy"): now + 5})  # as if created 95 s ago
    app.update("busy", "w")
    app.drain()  # an update moves the deadline on: min(created + maxage, now + idle)
    assert app.store.expire_jobs(now + 51) == 1  # short: its maxage comes first
    assert app.store.expire_jobs(now + 99) == 0
    assert app.store.expire_jobs(now + 101) == 2  # idle, and busy once idle too
    app.create("capped", maxage=10_000)
    app.store.redis.hset(_keys(job_tag("capped"))[0], "created", now - 9_990)
    app.update("capped", "w")
    app.drain()  # an update never extends a job past its maxage
    assert app.store.expire_jobs(now + 11) == 1


# -- the operator's delete --------------------------------------------------------------------
def test_admin_lists_first_then_deletes_by_address_or_prefix(redis_server, monkeypatch):
    app = App(redis_server)
    for n in range(450):  # more than one ZSCAN step
        app.create(f"spam:{n}", ATTACKER, secret="theirs")
    app.create("test:1", OTHER)
    app.create("keep", OTHER)
    app.post("spam:7", ["w"], ATTACKER, secret="theirs")
    app.drain()
    out = io.StringIO()
    assert admin.delete(app.store, ATTACKER, None, False, out) == 450
    assert "spam:7\n" in out.getvalue() and app.store.job_exists("spam:7")  # listed only
    assert admin.delete(app.store, ATTACKER, None, True, io.StringIO()) == 450
    assert admin.delete(app.store, None, "test:", True, io.StringIO()) == 1
    assert [app.store.job_exists(j) for j in ("spam:7", "test:1", "keep")] == [False] * 2 + [True]
    assert app.owners() == {f"jobs:{OTHER}": 1}
    # the command line, on the service's REDIS_URL
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    out = io.StringIO()
    assert admin.main(["delete", "--prefix", "ke", "--address", OTHER, "--yes"], out) == 0
    assert "1 jobs deleted" in out.getvalue() and not app.store.job_exists("keep")


def test_settings_refuse_quotas_below_one():
    for name, bad in (
        ("MAX_JOB_BYTES", "0"),
        ("MAX_JOBS_PER_ADDRESS", "-1"),
        ("MAX_WORKER_ROWS_PER_ADDRESS", "-1"),
    ):
        with pytest.raises(ValueError, match=f"PROGRESS_{name}"):
            Settings.from_env({f"PROGRESS_{name}": bad})


def test_the_quotas_per_address_follow_the_pools_they_share():
    """An operator who lowers the pools lowers the quotas with them (bench section 11 d: with
    the pools at 40 jobs and 20,000 rows and the quotas fixed, one address filled both)."""
    assert Settings.from_env({}).max_jobs_per_address == 1_000
    lowered = Settings.from_env({"PROGRESS_MAX_JOBS": "40", "PROGRESS_MAX_WORKER_ROWS": "20000"})
    assert (lowered.max_jobs_per_address, lowered.max_worker_rows_per_address) == (4, 2_000)
    tiny = Settings.from_env({"PROGRESS_MAX_JOBS": "5"})
    assert tiny.max_jobs_per_address == 1
    given = {"PROGRESS_MAX_JOBS": "40", "PROGRESS_MAX_JOBS_PER_ADDRESS": "30"}
    assert Settings.from_env(given).max_jobs_per_address == 30
    with pytest.raises(ValueError, match="PROGRESS_IDLE_EXPIRY"):
        Settings.from_env({"PROGRESS_IDLE_EXPIRY": "-1"})


# -- as the attacker does it: a real service, real sockets from two loopback addresses ----------
def call(service: Service, address: str, endpoint: str, params=None, batch=None):
    """One request on a new connection from `address` (a 127.x address: the web sees it as the
    peer, REMOTE_ADDR); returns (status, JSON body)."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, 10, (address, 0))
    try:
        path = f"/progress/{endpoint}?{urlencode(params or {})}"
        if batch is None:
            connection.request("GET", path)
        else:
            body = json.dumps(batch).encode()
            connection.request("POST", path, body, {"Content-Type": "application/json"})
        resp = connection.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        connection.close()


@pytest.mark.slow
def test_one_address_cannot_fill_the_service_for_another(tmp_path):
    redis_server = RedisServer(tmp_path / "redis").start()
    limits = {
        "PROGRESS_MAX_WORKERS_PER_JOB": "10",
        "PROGRESS_MAX_JOBS_PER_ADDRESS": "3",
        "PROGRESS_MAX_WORKER_ROWS_PER_ADDRESS": "25",
    }
    service = Service(redis_server.url, tmp_path / "svc", {**FAST, **limits}).start()
    attacker, client = "127.0.0.2", "127.0.0.3"
    try:
        for n in range(3):
            assert call(service, attacker, "create", {"jobid": f"a{n}"})[0] == 200
        status, body = call(service, attacker, "create", {"jobid": "a3"})
        assert status == 429 and "PROGRESS_MAX_JOBS_PER_ADDRESS" in body["description"]
        assert f"address {attacker} " in body["description"]  # the peer, as the web sees it
        flood = [{"jobid": "a0", "workid": f"w{i}", "current": 1, "total": 2} for i in range(5000)]
        status, body = call(service, attacker, "update", batch=flood)
        assert status == 409 and "PROGRESS_MAX_WORKERS_PER_JOB" in body["description"]
        assert call(service, attacker, "update", batch=flood[:10])[0] == 202
        # many calls at once, each within the cap, before ingest applies any: two fit
        batches = [
            [{"jobid": "a1", "workid": f"c{n}-{i}", "current": 1, "total": 2} for i in range(5)]
            for n in range(20)
        ]
        with ThreadPoolExecutor(8) as pool:
            statuses = list(
                pool.map(lambda b: call(service, attacker, "update", batch=b)[0], batches)
            )
        assert sorted(statuses) == [202] * 2 + [409] * 18
        wait_until(lambda: workers(service, attacker, "a0") == 10, 20, what="apply")
        wait_until(lambda: workers(service, attacker, "a1") == 10, 20, what="apply")
        status, body = call(
            service, attacker, "update", batch=[{**u, "jobid": "a2"} for u in flood[:6]]
        )
        assert status == 429 and "PROGRESS_MAX_WORKER_ROWS_PER_ADDRESS" in body["description"]
        # the other client is not held up by any of it
        assert call(service, client, "create", {"jobid": "mine", "secret": "s"})[0] == 200
        report = {"jobid": "mine", "workid": "first", "current": 1, "total": 2, "secret": "s"}
        assert call(service, client, "update", report)[0] == 202
        wait_until(lambda: workers(service, client, "mine") == 1, 20, what="apply")
        # the operator clears the attacker's jobs; the other's stays
        command = [sys.executable, "-m", "tasks.admin", "delete", "--address", attacker]
        env = {**os.environ, "REDIS_URL": redis_server.url}
        listed = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        assert listed.stdout.splitlines()[:3] == ["a0", "a1", "a2"]
        subprocess.run([*command, "--yes"], env=env, capture_output=True, check=True)
        assert [call(service, client, "status", {"jobid": j})[0] for j in ("a0", "mine")] == [
            404,
            200,
        ]
        assert call(service, attacker, "create", {"jobid": "a3"})[0] == 200
    finally:
        service.stop()
        redis_server.stop()


def workers(service: Service, address: str, jobid: str) -> int:
    return call(service, address, "status", {"jobid": jobid})[1]["workers_reported"]
