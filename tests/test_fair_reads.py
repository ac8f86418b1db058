"""Big status pages against a budget of worker rows per client address
(PROGRESS_WEB_STATUS_ROWS_PER_SECOND): an address looping on them gets 429 once its budget is
spent, while other addresses still read, its own updates are still accepted, and small pages
(a summary, a few problems, a small job with a large limit) cost nothing."""

from __future__ import annotations

import pytest

from tasks.settings import Settings
from tests.harness import RedisServer
from tests.inprocess import InProcessService

WORKERS = 3000
GREEDY, OTHER = "127.0.0.2", "127.0.0.3"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("fair-reads-redis")).start()
    yield server
    server.stop()


@pytest.fixture
def service(redis_server):
    # One row a second: what the budget holds is its burst (one full page, 10,000 rows), and a
    # test's few seconds add next to nothing to it.
    return InProcessService(redis_server, PROGRESS_WEB_STATUS_ROWS_PER_SECOND="1")


def status(service, address: str, **params):
    return service.client.simulate_get("/progress/status", params=params, remote_addr=address)


def test_an_address_past_its_row_budget_gets_429_and_others_still_read(service, jobid):
    assert service.get("create", jobid=jobid).status_code == 200
    service.report(jobid, *[(f"w{i}", 1, 2) for i in range(WORKERS)])
    page = {"jobid": jobid, "workers": "all", "limit": str(WORKERS)}

    for _ in range(3):  # 3 x 3,000 rows of the 10,000 the burst holds
        resp = status(service, GREEDY, **page)
        assert resp.status_code == 200 and len(resp.json["workers"]) == WORKERS
    refused = status(service, GREEDY, **page)
    assert refused.status_code == 429, refused.text
    assert "PROGRESS_WEB_STATUS_ROWS_PER_SECOND" in refused.json["description"]
    assert int(refused.headers["Retry-After"]) >= 1

    # Another address has its own budget; the greedy one still reports, and still gets the
    # summary and the problems (there are none), which list no rows.
    assert len(status(service, OTHER, **page).json["workers"]) == WORKERS
    update = service.client.simulate_get(
        "/progress/update",
        params={"jobid": jobid, "workid": "w1", "current": "2", "total": "2"},
        remote_addr=GREEDY,
    )
    assert update.status_code == 202, update.text
    assert status(service, GREEDY, jobid=jobid, workers="none").status_code == 200
    problems = status(service, GREEDY, jobid=jobid, workers="problems", limit="10000")
    assert problems.status_code == 200 and problems.json["workers"] == []


def test_a_page_costs_the_rows_it_lists_not_its_limit(service, jobid):
    """Scripts poll small jobs with a large limit, the show page polls a few problems: those
    pages cost nothing, however often; a page of 101 rows costs them all."""
    assert service.get("create", jobid=jobid).status_code == 200
    service.report(jobid, *[(f"w{i}", 1, 2, i >= 60) for i in range(200)])  # 60 failed
    for _ in range(200):
        for which, limit in (("all", "100"), ("problems", "10000"), ("none", "10000")):
            resp = status(service, GREEDY, jobid=jobid, workers=which, limit=limit)
            assert resp.status_code == 200, resp.text
    for _ in range(99):  # 99 x 101 rows of the 10,000 the burst holds
        assert status(service, GREEDY, jobid=jobid, limit="101").status_code == 200
    assert status(service, GREEDY, jobid=jobid, limit="101").status_code == 429


def test_a_negative_row_budget_is_refused():
    with pytest.raises(ValueError, match="PROGRESS_WEB_STATUS_ROWS_PER_SECOND"):
        Settings.from_env({"PROGRESS_WEB_STATUS_ROWS_PER_SECOND": "-1"})
