"""Each worker's lifetime: started (its first update in this incarnation), finished (when it
turned done or failed) and duration, on the service's clock, kept by apply.lua and read with the
rows; and the job's lifetimes summary (median, slowest five, running workers that have already
run longer than any finished one). In this process against a Redis of its own, the ingest step
run here, so every update's stamp is known exactly."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from domain.lifetimes import bin_width, histogram, lifetime_label, median
from domain.model import STATE_COLOURS, WorkerState
from tests.harness import RedisServer
from tests.inprocess import InProcessService


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("lifetimes-redis")).start()
    yield InProcessService(server)
    server.stop()


def workers(service, jobid: str) -> dict[str, dict]:
    resp = service.get("status", jobid=jobid, workers="all")
    assert resp.status_code == 200, resp.text
    return {w["workid"]: w for w in resp.json["workers"]}


def lifetimes(service, jobid: str) -> dict:
    return service.status(jobid)["lifetimes"]


def test_started_is_the_first_update_and_finished_the_one_that_turned_it_done(service, jobid):
    service.get("create", jobid=jobid)
    service.report(jobid, ("a", 1, 10), ("b", 1, 10))
    first = workers(service, jobid)
    assert first["a"]["started"] == first["a"]["updated"]
    assert (first["a"]["finished"], first["a"]["duration"]) == (None, None)

    service.report(jobid, ("a", 5, 10), ("b", 4, 10))  # progress moves neither
    service.report(jobid, ("a", 10, 10), ("b", 6, 10, False))
    service.report(jobid, ("a", 10, 10), ("b", 7, 10, False))  # still done: finished stays
    now = workers(service, jobid)
    assert (now["a"]["state"], now["b"]["state"]) == ("done", "failed")
    for w in ("a", "b"):
        assert now[w]["started"] == first[w]["updated"]
        assert now[w]["finished"] is not None and now[w]["finished"] < now[w]["updated"]
        assert now[w]["duration"] == pytest.approx(now[w]["finished"] - now[w]["started"], abs=1e-6)


def test_finished_is_the_stamp_of_the_update_that_turned_it(service, jobid):
    service.get("create", jobid=jobid)
    service.report(jobid, ("w", 1, 2))
    service.report(jobid, ("w", 2, 2))
    done = workers(service, jobid)["w"]
    assert done["finished"] == done["updated"]  # the update that turned it done
    assert done["duration"] == round(done["updated"] - done["started"], 6)


def test_a_worker_that_runs_again_is_unfinished_until_it_finishes_again(service, jobid):
    service.get("create", jobid=jobid)
    service.report(jobid, ("w", 2, 2), ("x", 1, 2))
    started = workers(service, jobid)["w"]["started"]
    assert lifetimes(service, jobid)["finished"] == 1
    service.report(jobid, ("w", 1, 2))  # reported back below its total: running again
    again = workers(service, jobid)["w"]
    assert (again["started"], again["finished"], again["duration"]) == (started, None, None)
    assert lifetimes(service, jobid)["finished"] == 0
    service.report(jobid, ("w", 2, 2))
    last = workers(service, jobid)["w"]
    assert (last["started"], last["finished"]) == (started, last["updated"])


def test_started_is_the_earliest_update_even_when_batches_apply_out_of_order(service, jobid):
    service.get("create", jobid=jobid)
    service.accept(jobid, ("w", 1, 2))
    early = claim(service, "early")
    service.accept(jobid, ("w", 2, 2))
    late = claim(service, "late")
    service.store.apply_batch("late", late, 0.0)  # the done update first
    service.store.apply_batch("early", early, 0.0)  # then the older one: only its start counts
    service.store.apply_batch("early", early, 0.0)  # and applying it again changes nothing
    w = workers(service, jobid)["w"]
    assert w["state"] == "done"
    assert w["started"] == stamp(early[0]) < w["finished"] == stamp(late[0])
    assert lifetimes(service, jobid)["slowest"][0]["duration"] == w["duration"]


def test_recreating_the_job_forgets_its_lifetimes(service, jobid):
    service.get("create", jobid=jobid)
    service.report(jobid, ("w", 2, 2))
    service.get("create", jobid=jobid)
    assert lifetimes(service, jobid)["finished"] == 0
    service.report(jobid, ("w", 1, 2))
    w = workers(service, jobid)["w"]
    assert (w["started"], w["finished"]) == (w["updated"], None)


def test_summary_names_the_median_the_slowest_five_and_who_overstays(service, jobid):
    service.get("create", jobid=jobid)
    names = [f"w{i}" for i in range(7)]
    service.report(jobid, *[(w, 0, 1) for w in names], ("long", 0, 1))
    for w in names:  # each finishes a little later than the one before
        service.report(jobid, (w, 1, 1, w != "w3"))
    summary = lifetimes(service, jobid)
    rows = workers(service, jobid)
    durations = sorted(rows[w]["duration"] for w in names)
    assert summary["finished"] == 7
    assert summary["median_seconds"] == pytest.approx(durations[3], abs=1e-6)
    assert [w["workid"] for w in summary["slowest"]] == ["w6", "w5", "w4", "w3", "w2"]
    assert summary["slowest"][3] == {
        "workid": "w3",  # failed ones are finished too
        "started": rows["w3"]["started"],
        "finished": rows["w3"]["finished"],
        "duration": rows["w3"]["duration"],
    }
    assert summary["longest_seconds"] == rows["w6"]["duration"]
    # "long" started with the others and runs on: it has run longer than w6, the slowest.
    assert summary["overstaying"] == 1
    [flagged] = summary["overstaying_workers"]
    assert flagged["workid"] == "long" and flagged["started"] == rows["long"]["started"]
    assert flagged["running_seconds"] > summary["longest_seconds"]


def test_only_workers_running_longer_than_the_slowest_finished_one_are_flagged(service, jobid):
    service.get("create", jobid=jobid)
    t0 = redis_now(service)
    report_at(service, jobid, t0, ("quick", 0, 1, 100), ("slow", 0, 1, 100), ("late", 0, 1, 10))
    assert lifetimes(service, jobid) == {  # nothing to compare with before one finishes
        "finished": 0,
        "median_seconds": None,
        "longest_seconds": None,
        "slowest": [],
        "overstaying": 0,
        "overstaying_workers": [],
    }
    report_at(service, jobid, t0, ("quick", 1, 1, 40))  # it ran 60 s
    summary = lifetimes(service, jobid)
    assert (summary["longest_seconds"], summary["median_seconds"]) == (60.0, 60.0)
    # "slow" has run 100 s, longer than "quick" took; "late" only 10 s.
    assert [w["workid"] for w in summary["overstaying_workers"]] == ["slow"]
    assert summary["overstaying_workers"][0]["running_seconds"] == pytest.approx(100, abs=5)
    report_at(service, jobid, t0, ("slow", 1, 1, 0))  # done after 100 s: the new slowest
    summary = lifetimes(service, jobid)
    assert summary["overstaying"] == 0 and summary["overstaying_workers"] == []
    assert (summary["longest_seconds"], summary["median_seconds"]) == (100.0, 80.0)


def test_median_of_an_even_count_is_the_mean_of_the_middle_two():
    assert median([2.0, 4.0]) == 3.0
    assert median([5.0]) == 5.0
    assert median([]) is None


def test_lifetime_labels_are_as_precise_as_a_lifetime_needs():
    labels = [lifetime_label(s) for s in (0.227, 4.5, 42, 185, 1800, 7800, 86400 * 3)]
    assert labels == ["0.23 s", "4.5 s", "42 s", "3 min 5 s", "30 min", "2 h 10 min", "3 d"]


def test_histogram_bins_read_as_durations_and_hold_every_worker():
    assert bin_width(100) == 5  # 24 bins of 5 s cover 100 s
    assert bin_width(3 * 3600) == 600
    h = histogram([61.0, 62.5, 119.0, 300.0], [False, True, False, False])
    assert sum(h.done) + sum(h.failed) == 4 and sum(h.failed) == 1
    assert h.edges[0] <= 61 and h.edges[-1] > 300
    steps = {round(b - a, 9) for a, b in zip(h.edges, h.edges[1:])}
    assert steps == {10.0}  # 24 bins of 10 s cover the 239 s from the shortest
    one = histogram([7.0, 7.0], [False, False])
    assert (len(one.done), one.done[0]) == (1, 2)


def redis_now(service) -> int:
    """Now on Redis's clock, the one that stamps updates, in microseconds."""
    seconds, micros = service.store.redis.time()
    return seconds * 1_000_000 + micros


def report_at(service, jobid: str, t0: int, *reports: tuple) -> None:
    """Apply updates (workid, current, total, seconds before t0) stamped that time, as if each
    had been accepted then."""
    service.accept(jobid, *[r[:3] for r in reports])
    entries = claim(service, "past")
    for i, (entry, (*_, ago)) in enumerate(zip(entries, reports)):
        head, row = entry.rsplit("\n", 1)
        entries[i] = f"{head}\n{t0 - int(ago * 1e6):017d}{row[17:]}"
    service.store.apply_batch("past", entries, 0.0)


def claim(service, batch_id: str) -> list[str]:
    entries, _ = service.store.claim_inbox(batch_id, 0.0, 10_000, 1000)
    return entries


def stamp(entry: str) -> float:
    return int(entry.split("\n", 3)[3][:17]) / 1e6


def test_lifetimes_view_is_a_png_of_the_finished_workers_that_costs_a_304_when_unchanged(
    service, jobid
):
    service.get("create", jobid=jobid, desc="Calibration")
    empty = service.get("render", jobid=jobid, view="lifetimes")
    assert (empty.status_code, empty.headers["content-type"]) == (200, "image/png")
    assert png_size(empty.content)[0] == 1000  # "no worker has finished yet"

    service.report(jobid, ("a", 1, 1), ("b", 0, 1, False), ("c", 0, 1))
    resp = service.get("render", jobid=jobid, view="lifetimes")
    assert (resp.status_code, resp.headers["content-type"]) == (200, "image/png")
    assert png_size(resp.content) == (1000, 400)
    assert resp.headers["etag"] != empty.headers["etag"]
    plot = colours(resp.content, box=(64, 96, 972, 318))  # below the legend
    assert rgb("done") in plot and rgb("failed") in plot  # a's bar, and b's stacked on it

    again = service.client.simulate_get(
        "/progress/render",
        params={"jobid": jobid, "view": "lifetimes"},
        headers={"If-None-Match": resp.headers["etag"]},
    )
    assert (again.status_code, again.content) == (304, b"")
    service.report(jobid, ("c", 0.5, 1))  # progress of a running worker: the same histogram
    assert (
        service.get("render", jobid=jobid, view="lifetimes").headers["etag"]
        == (resp.headers["etag"])
    )
    service.report(jobid, ("c", 1, 1))
    assert (
        service.get("render", jobid=jobid, view="lifetimes").headers["etag"]
        != (resp.headers["etag"])
    )
    # The progress chart is still the default view.
    assert service.get("render", jobid=jobid).headers["etag"] != resp.headers["etag"]


@pytest.mark.parametrize("view", ["", "histogram", "LIFETIMES", "x" * 17])
def test_a_bad_view_is_a_400_naming_it(service, jobid, view):
    service.get("create", jobid=jobid)
    resp = service.get("render", jobid=jobid, view=view)
    assert resp.status_code == 400
    assert resp.headers["content-type"].startswith("application/json")
    assert "view" in resp.json["description"] or "view" in resp.json["title"], resp.json


def test_lifetimes_of_an_unknown_job_is_a_404(service):
    resp = service.get("render", jobid="no-such-job-lifetimes", view="lifetimes")
    assert resp.status_code == 404 and resp.json["title"] == "Unknown job"


def png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.verify()
    return image.size


def rgb(state: str) -> tuple[int, int, int]:
    value = STATE_COLOURS[WorkerState(state)].lstrip("#")
    return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))


def colours(data: bytes, box: tuple[int, int, int, int]) -> set[tuple[int, int, int]]:
    image = Image.open(io.BytesIO(data)).convert("RGB").crop(box)
    return {rgb for _, rgb in image.getcolors(maxcolors=1 << 16)}
