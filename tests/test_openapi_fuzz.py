"""Schemathesis against /openapi.json as the in-process app serves it: thousands of generated
requests, valid and invalid, to every operation. None may get a 5xx or hang; every answer must
match the description (status code, content type, headers, body schema); valid requests must not
be refused with a 400 and invalid ones must be refused; and no request may touch a job it does
not name: a canary job with an unguessable id stays byte-identical throughout.

Each operation gets schemathesis' coverage cases (every limit's boundary values, missing and
repeated parameters, other methods) and then Hypothesis-generated cases, valid and invalid.
(schemathesis' own pytest loader, `schemathesis.pytest.from_fixture`, fails under pytest 9: it
reads `Node._nodeid`, which pytest 9 removed. So this file drives the cases itself.)"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.openapi import openapi_spec
from tasks.settings import Settings
from tasks.store import RENDER_DUE, job_tag
from tests.test_hostile_input import job_keys, quiet_job

REQUEST_TIMEOUT = 10.0  # s without an answer counts as a hang; answers take milliseconds
FUZZ_EXAMPLES = 100  # Hypothesis cases per operation, on top of its coverage cases
MIN_REQUESTS = 100  # an operation that got fewer was not really fuzzed


# Rules of a counter that OpenAPI 3.0 cannot state: its name's length and characters (there is no
# propertyNames), the colour of a [value, colour] pair (no prefixItems), and the names a worker
# already holds (api.counters; tests/test_counters.py checks each).
COUNTER_RULES = (
    "a name must be",
    "its name must",
    "a list must be",
    "is not a CSS colour",
    "would have more than",
)


def valid_data_accepted(ctx, response, case):
    """positive_data_acceptance, but for the rules a schema cannot state: current / total must
    be a finite percentage, as it spans two fields (the description of total says so); and a
    form's meta must be the text of a JSON object (OpenAPI 3.0 cannot say it of a string); and
    create's notify needs a secret beside it (parameters are independent in OpenAPI 3.0: the
    description of notify says so)."""
    if response.status_code == 400 and "too large to be a percentage" in response.text:
        return None
    if response.status_code == 400 and any(rule in response.text for rule in COUNTER_RULES):
        return None
    if response.status_code == 400 and '\\"meta\\" parameter is invalid' in response.text:
        return None
    if response.status_code == 400 and "only for a job created with a secret" in response.text:
        return None
    return positive_data_acceptance(ctx, response, case)


def invalid_data_refused(ctx, response, case):
    """negative_data_rejection, but for a form field whose value was generated as an object:
    the test client leaves such a field out of the body it sends, so the server never sees the
    invalid value (found with create's optional workers=, whose request then is valid)."""
    form = case.body if case.media_type == "application/x-www-form-urlencoded" else None
    if isinstance(form, dict) and any(isinstance(v, dict) for v in form.values()):
        return None
    return negative_data_rejection(ctx, response, case)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    valid_data_accepted,
    invalid_data_refused,
]
CONFIG = {
    "generation": {"allow-x00": True},
    "phases": {"coverage": {"generate-duplicate-query-parameters": True}},
    "checks": {
        # schemathesis' refusals, and 413: invalid data may also be too large.
        "negative_data_rejection": {
            "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
        },
    },
}
# /readyz (/healthz) answers 503 by design here: no ingest or render worker runs in this process.
NOT_FUZZED = {"GET /readyz", "GET /healthz"}
TAKES_NO_INPUT = {"GET /metrics", "GET /livez"}
# Operations on an existing job: valid requests to them often name one (create would re-create).
AIMED = {
    f"{method} /progress/{name}"
    for method in ("GET", "POST")
    for name in ("update", "status", "render", "show", "fail")
}
# Delete removes the job it names: its valid requests each name a job made for them.
DELETES = {f"{method} /progress/delete" for method in ("GET", "POST", "DELETE")}
SCHEMA_ITSELF = "GET /openapi.json"  # schemathesis leaves out the operation serving the schema
OPERATIONS = sorted(
    f"{method.upper()} {path}"
    for path, methods in openapi_spec(Settings()).get("paths", {}).items()
    for method in methods
    if f"{method.upper()} {path}" not in NOT_FUZZED | {SCHEMA_ITSELF}
)


@pytest.fixture(scope="module")
def app(client_without_renders):
    return client_without_renders.app


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_wsgi(
        "/openapi.json", app, config=schemathesis.Config.from_dict(CONFIG)
    )


@pytest.fixture(scope="module")
def canary(store):
    """A job with workers, whose id no generated request can name; returns its id and keys."""
    jobid = f"canary:{secrets.token_hex(16)}"
    quiet_job(store, jobid, desc="canary", workers=5)
    return jobid, job_keys(store, jobid)


@pytest.fixture(scope="module")
def targets(client, store) -> list[tuple[str, str | None]]:
    """Jobs that exist, for valid requests to name (an invented id names no job, so it only
    ever gets a 404): (jobid, the ETag to send in If-None-Match, if any)."""
    run = secrets.token_hex(4)
    empty, busy, charted = (f"fuzz:{run}:{name}" for name in ("empty", "busy", "charted"))
    quiet_job(store, empty)
    quiet_job(store, busy, desc="busy", workers=7)
    quiet_job(store, charted, desc="charted", workers=3)
    draw_chart(store, charted)

    def etag():  # read when aiming: a live render worker sharing this Redis may redraw it
        chart = store.chart(charted, with_png=False)
        return chart.etag if chart else None

    guarded = f"fuzz:{run}:guarded"  # created with a secret the fuzzer does not know: 403s
    params = {"jobid": guarded, "secret": secrets.token_hex(8)}
    assert client.simulate_get("/progress/create", params=params).status_code == 200
    store.redis.zrem(RENDER_DUE, job_tag(guarded))
    # Hypothesis favours the first: the chart with its ETag, so that render answers 304 too.
    return [(charted, etag), (busy, None), (charted, None), (guarded, None), (empty, None)]


def a_job_to_delete(store) -> str:
    jobid = f"fuzz:delete:{secrets.token_hex(8)}"
    quiet_job(store, jobid, workers=2)
    return jobid


def draw_chart(store, jobid: str) -> str:
    """Draw and store the job's chart as a render worker would; returns its ETag."""
    from renderer.chart import render_png

    now = time.time()
    start = store.begin_render(job_tag(jobid), now)
    png = render_png(start.snapshot, now=now)
    etag = f"{start.snapshot.incarnation}-{start.snapshot.version}-fuzz"
    store.finish_render(job_tag(jobid), start.snapshot, 0, etag, png, None)
    return etag


def aim(case, target: tuple | None):
    """Point a valid request at a job that exists (and maybe at the chart it has)."""
    if target is None:
        return case
    jobid, etag = target
    etag = etag() if callable(etag) else etag
    for params in (case.query, case.body, *(case.body if isinstance(case.body, list) else [])):
        if isinstance(params, dict) and "jobid" in params:
            params["jobid"] = jobid
    if etag and case.operation.path == "/progress/render":
        case.headers = {**(case.headers or {}), "If-None-Match": etag}
    return case


@pytest.fixture(scope="module")
def sent() -> Counter:
    return Counter()


@pytest.fixture(scope="module", autouse=True)
def report_volume(sent):
    yield
    print(f"\nschemathesis sent {sum(sent.values())} requests: {dict(sorted(sent.items()))}")


def test_the_served_description_is_the_whole_api(api_schema):
    served = {op.ok().label for op in api_schema.get_all_operations()}
    assert served == set(OPERATIONS) | NOT_FUZZED
    api_schema.validate()


@pytest.mark.parametrize("label", OPERATIONS)
def test_generated_requests(api_schema, canary, targets, store, sent, label):
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label
    canary_id, canary_keys = canary

    answers: Counter[int] = Counter()

    def exchange(case) -> None:
        response = _call(case)
        sent[label] += 1
        answers[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)
        assert job_keys(store, canary_id) == canary_keys, f"changed the canary: {case}"

    generation = api_schema.config.generation_for(operation=operation, phase="coverage")
    for case in api_schema.iter_coverage_cases(
        operation, generation_modes=list(GenerationMode), generation_config=generation
    ):
        exchange(case)

    valid = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    if label in AIMED:
        valid = st.tuples(valid, st.sampled_from([*targets, None])).map(lambda c: aim(*c))
    if label in DELETES:
        valid = valid.map(lambda case: aim(case, (a_job_to_delete(store), None)))
    invalid = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,  # the same requests on every run: no flaky CI
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(valid, invalid))
    def fuzz(case) -> None:
        exchange(case)

    fuzz()
    if label == "POST /progress/update":
        surrogates = _with_lone_surrogates(store, canary, valid, sent, label)
        assert surrogates >= 10, surrogates
    print(f"\n{label}: {sent[label]} requests, answered {dict(sorted(answers.items()))}")
    assert sent[label] >= (1 if label in TAKES_NO_INPUT else MIN_REQUESTS), sent[label]
    # Success was checked too, not just refusals: and for render, both its 200 and its 304.
    assert sum(n for code, n in answers.items() if code < 400), answers
    if label.endswith("/progress/render"):
        assert answers[200] and answers[304], answers
    assert job_keys(store, canary_id) == canary_keys


def _with_lone_surrogates(store, canary, valid, sent, label) -> int:
    """Valid JSON batches with half a UTF-16 surrogate pair (a \\ud800 escape) put into one of
    their strings: valid JSON that no text can hold. Each must get a 400, never a 500, and
    change nothing. Returns how many were sent."""
    canary_id, canary_keys = canary
    count = 0

    @settings(
        max_examples=FUZZ_EXAMPLES // 2,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=valid, where=st.integers(0, 1000), lone=st.sampled_from(["\ud800", "\udfff"]))
    def fuzz(case, where, lone) -> None:
        nonlocal count
        strings = [
            (item, name)
            for item in (case.body if isinstance(case.body, list) else [])
            if isinstance(item, dict)
            for name, value in item.items()
            if isinstance(value, str)
        ]
        if not strings:
            return
        item, name = strings[where % len(strings)]
        item[name] = item[name] + lone
        response = _call(case)
        sent[label] += 1
        count += 1
        assert response.status_code == 400, (response.status_code, response.text, case.body)
        assert "Unicode" in response.json()["description"]
        assert job_keys(store, canary_id) == canary_keys

    fuzz()
    return count


_hung: list[str] = []  # a request that never answered


def _call(case):
    """One request, made in a daemon thread so that one that never returns fails the test (and
    every request after it at once, rather than each after another timeout) and cannot keep
    the test process from exiting."""
    if _hung:
        raise AssertionError(f"an earlier request never answered: {_hung[0]}")
    outcome: dict = {}

    def call() -> None:
        try:
            outcome["response"] = case.call()
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=call, name="fuzz-request", daemon=True)
    thread.start()
    thread.join(REQUEST_TIMEOUT)
    if thread.is_alive():
        _hung.append(case.as_curl_command())
        raise AssertionError(f"no answer in {REQUEST_TIMEOUT} s to {_hung[0]}")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["response"]
