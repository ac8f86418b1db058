"""The per-address update rate limit: off by default, a clear 429 past it."""

from __future__ import annotations

import dataclasses

import falcon
import falcon.testing
import pytest

from api import create_app, ratelimit
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


class Clock:
    """Stands in for the time module in api.ratelimit: monotonic() is what the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_bucket_refills_over_time_up_to_its_burst(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(ratelimit, "time", clock)
    limiter = RateLimiter(per_second=4, burst=2)

    limiter.charge("a")
    limiter.charge("a")  # the burst, at once
    with pytest.raises(falcon.HTTPTooManyRequests):
        limiter.charge("a")  # empty
    clock.now += 0.125  # (binary fractions: exact sums)
    with pytest.raises(falcon.HTTPTooManyRequests):
        limiter.charge("a")  # half a token back: not enough
    clock.now += 0.125
    limiter.charge("a")  # one token back after 1/4 s
    with pytest.raises(falcon.HTTPTooManyRequests):
        limiter.charge("a")

    clock.now += 3600
    limiter.charge("a")
    limiter.charge("a")
    with pytest.raises(falcon.HTTPTooManyRequests):
        limiter.charge("a")  # an hour idle refills no more than the burst
    limiter.charge("b")  # another address: a bucket of its own
