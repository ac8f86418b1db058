"""The per-address update rate limit: off by default, a clear 429 past it."""

from __future__ import annotations

import dataclasses
import time

import falcon.testing

from api import create_app
from api.ratelimit import RateLimiter
from tests.conftest import quiet_log


def test_limit_is_off_by_default(client, jobid):
    client.simulate_get("/progress/create", params={"jobid": jobid})
    for i in range(50):
        resp = client.simulate_get(
            "/progress/update", params={"jobid": jobid, "workid": f"w{i}", "current": 1, "total": 2}
        )
        assert resp.status_code == 202


def test_past_the_limit_updates_get_429_with_retry_after(settings, store, jobid):
    limited = falcon.testing.TestClient(
        create_app(
            dataclasses.replace(settings, update_rate_limit=5.0), store, log_stream=quiet_log()
        )
    )
    limited.simulate_get("/progress/create", params={"jobid": jobid})
    params = {"jobid": jobid, "workid": "w", "current": 1, "total": 2}
    codes = [limited.simulate_get("/progress/update", params=params).status_code for _ in range(20)]
    assert codes[:5] == [202] * 5
    assert codes.count(429) >= 10
    resp = limited.simulate_get("/progress/update", params=params)
    assert resp.status_code == 429
    assert "PROGRESS_UPDATE_RATE_LIMIT" in resp.json["description"]
    assert int(resp.headers["Retry-After"]) >= 1
    other = limited.simulate_get("/progress/update", params=params, remote_addr="10.9.9.9")
    assert other.status_code == 202  # another address has its own budget


def test_bucket_refills_over_time():
    limiter = RateLimiter(per_second=1000, burst=1)
    limiter.charge("a")
    time.sleep(0.01)
    limiter.charge("a")  # refilled: no exception
