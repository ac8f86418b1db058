"""The pure functions of the domain model: natural order of worker ids, a worker's state and a
job's summary (counts, percent, ETA). No Redis, no processes: milliseconds."""

from __future__ import annotations

import math
import random

import pytest

from domain.model import JobSnapshot, WorkerRow, WorkerState, natural_key, summarize, worker_state

CREATED = 1_000_000.0
STALE_AFTER = 300.0


def row(workid="w", current=1.0, total=2.0, ok=True, updated=CREATED + 60, desc=""):
    return WorkerRow(workid, current, total, ok, desc, updated)


def snapshot(*workers: WorkerRow, created: float = CREATED) -> JobSnapshot:
    return JobSnapshot("j", "d", created, 86400, "inc", 1, tuple(workers))


# --------------------------------------------------------------------------- natural_key


def naturally(ids):
    return sorted(ids, key=natural_key)


def test_numbers_in_ids_sort_by_value():
    assert naturally(["node10", "node2", "node1"]) == ["node1", "node2", "node10"]
    assert naturally(["10", "9", "100", "0"]) == ["0", "9", "10", "100"]
    assert naturally(["a10b2", "a2b10", "a2b2", "a10b1"]) == ["a2b2", "a2b10", "a10b1", "a10b2"]


def test_mixed_ids_sort_and_compare_without_a_type_error():
    ids = ["x", "10", "node2", "2node", "", "node", "node02", "n-1", "9"]
    ordered = naturally(ids)
    assert sorted(ordered) == sorted(ids)  # nothing lost or added
    assert ordered.index("2node") < ordered.index("9") < ordered.index("10")
    assert ordered.index("node") < ordered.index("node2")
    assert natural_key("node2") != natural_key("node02")  # distinct ids, distinct keys
    assert naturally(ids) == naturally(list(reversed(ids)))


@pytest.mark.parametrize(
    "odd",
    [
        "\u00b2",  # SUPERSCRIPT TWO: isdigit() but not isdecimal(), int() refuses it
        "node2\u00b2",
        "\u2460",  # CIRCLED DIGIT ONE
        "x\u00bd",  # VULGAR FRACTION ONE HALF
        "\u0663",  # ARABIC-INDIC DIGIT THREE: a decimal digit int() reads
        "node\u0661\u0660",  # node, Arabic-Indic ten
        "\uff13",  # FULLWIDTH DIGIT THREE
        "\U0001d7d9",  # MATHEMATICAL DOUBLE-STRUCK DIGIT ONE
    ],
)
def test_digit_like_characters_do_not_crash_and_sort_deterministically(odd):
    # With ids that tie with it on value alone ('3', '03' and '\u0663' are all three).
    ids = [odd, "node2", "node02", "node10", "1", "10", "3", "03", "x", odd + "1", "3" + odd]
    key = natural_key(odd)
    assert key == natural_key(odd)
    ordered = naturally(ids)
    assert sorted(ordered) == sorted(ids)
    for seed in range(20):  # whatever the order they come in
        shuffled = ids[:]
        random.Random(seed).shuffle(shuffled)
        assert naturally(shuffled) == ordered


def test_arabic_indic_digits_sort_by_value_like_ascii_ones():
    assert naturally(["node\u0661\u0660", "node\u0662"]) == ["node\u0662", "node\u0661\u0660"]


# --------------------------------------------------------------------------- worker_state


def test_worker_state_follows_the_report():
    now = CREATED + 60
    assert worker_state(row(current=1, total=2), now, STALE_AFTER) is WorkerState.RUNNING
    assert worker_state(row(current=2, total=2), now, STALE_AFTER) is WorkerState.DONE
    assert worker_state(row(current=3, total=2), now, STALE_AFTER) is WorkerState.DONE
    assert worker_state(row(ok=False), now, STALE_AFTER) is WorkerState.FAILED


def test_a_running_worker_turns_stale_after_stale_after_and_not_before():
    w = row(current=1, total=2, updated=CREATED)
    assert worker_state(w, CREATED + STALE_AFTER, STALE_AFTER) is WorkerState.RUNNING
    assert worker_state(w, CREATED + STALE_AFTER + 0.001, STALE_AFTER) is WorkerState.STALE
    # Done and failed workers never turn stale: they have nothing more to say.
    later = CREATED + 10 * STALE_AFTER
    assert worker_state(row(current=2, updated=CREATED), later, STALE_AFTER) is WorkerState.DONE
    assert worker_state(row(ok=False, updated=CREATED), later, STALE_AFTER) is WorkerState.FAILED


# --------------------------------------------------------------------------- summarize


def test_counts_by_state():
    now = CREATED + 1000
    workers = [
        row("r1", 1, 4, updated=now - 1),
        row("r2", 2, 4, updated=now - 1),
        row("d1", 4, 4, updated=CREATED),
        row("f1", 1, 4, ok=False, updated=CREATED),
        row("f2", 4, 4, ok=False, updated=now),
        row("s1", 1, 4, updated=now - STALE_AFTER - 1),
    ]
    summary = summarize(snapshot(*workers), now, STALE_AFTER)
    assert (summary.running, summary.done, summary.failed, summary.stale) == (2, 1, 2, 1)
    assert summary.last_update == now


def test_an_empty_job():
    summary = summarize(snapshot(), CREATED + 60, STALE_AFTER)
    assert (summary.running, summary.done, summary.failed, summary.stale) == (0, 0, 0, 0)
    assert summary.percent == 0.0
    assert summary.last_update is None
    assert summary.eta_seconds is None


def test_percent_is_the_mean_of_each_worker_clipped_to_0_100():
    now = CREATED + 60
    workers = [row("a", 150, 100), row("b", -50, 100), row("c", 50, 100)]
    assert summarize(snapshot(*workers), now, STALE_AFTER).percent == pytest.approx(50.0)
    assert summarize(snapshot(row("a", 1e300, 1e-300)), now, STALE_AFTER).percent == 100.0
    assert summarize(snapshot(row("a", -1e300, 1)), now, STALE_AFTER).percent == 0.0
    assert summarize(snapshot(row("a", 1, 4)), now, STALE_AFTER).percent == 25.0


def test_eta_of_a_linear_worker():
    # 10 of 100 done in the 20 s since the job was created, reported 5 s ago: 180 s to go at
    # that rate, of which 5 have passed.
    w = row(current=10, total=100, updated=CREATED + 20)
    summary = summarize(snapshot(w), CREATED + 25, STALE_AFTER)
    assert summary.eta_seconds == pytest.approx(175.0)


def test_eta_is_that_of_the_slowest_running_worker():
    fast = row("fast", 50, 100, updated=CREATED + 10)  # 10 s more
    slow = row("slow", 10, 100, updated=CREATED + 10)  # 90 s more
    done = row("done", 100, 100, updated=CREATED + 10)
    summary = summarize(snapshot(fast, slow, done), CREATED + 10, STALE_AFTER)
    assert summary.eta_seconds == pytest.approx(90.0)


def test_eta_is_never_negative():
    w = row(current=50, total=100, updated=CREATED + 10)  # due at CREATED + 20
    summary = summarize(snapshot(w), CREATED + 200, STALE_AFTER)
    assert summary.eta_seconds == 0.0


def test_no_eta_with_under_5_seconds_of_history():
    w = row(current=50, total=100, updated=CREATED + 4.9)
    assert summarize(snapshot(w), CREATED + 5, STALE_AFTER).eta_seconds is None
    w = row(current=50, total=100, updated=CREATED + 5)
    assert summarize(snapshot(w), CREATED + 5, STALE_AFTER).eta_seconds == pytest.approx(5.0)


def test_no_eta_while_a_running_worker_is_at_0():
    moving = row("a", 50, 100, updated=CREATED + 10)
    idle = row("b", 0, 100, updated=CREATED + 10)
    assert summarize(snapshot(moving, idle), CREATED + 10, STALE_AFTER).eta_seconds is None
    assert summarize(snapshot(moving), CREATED + 10, STALE_AFTER).eta_seconds is not None


def test_no_eta_without_a_running_worker():
    now = CREATED + 1000
    cases = [
        [row("d", 100, 100, updated=CREATED + 10)],
        [row("f", 50, 100, ok=False, updated=CREATED + 10)],
        [row("s", 50, 100, updated=now - STALE_AFTER - 1)],  # stale: not running
        [],
    ]
    for workers in cases:
        assert summarize(snapshot(*workers), now, STALE_AFTER).eta_seconds is None, workers


@pytest.mark.parametrize(
    "current,total",
    [(5e-324, 1e15), (1e-300, 1e300), (5e-324, 1.7e308), (1e-320, 1e308)],
)
def test_eta_is_never_infinity(current, total):
    w = row(current=current, total=total, updated=CREATED + 60)
    eta = summarize(snapshot(w), CREATED + 60, STALE_AFTER).eta_seconds
    assert eta is None or math.isfinite(eta), eta
