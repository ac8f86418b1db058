"""The parameter table, the app and /openapi.json agree: each numeric bound is enforced by the app
exactly where the served document states it, and the document names exactly the parameters the
resources read."""

from __future__ import annotations

import math

import pytest

import api.resources
from api.params import ENDPOINT_PARAMS, WORKERS, Param, endpoint_params

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
PATHS = {  # the paths serving each endpoint of the table
    "create": ["/progress/create"],
    "update": ["/progress/update"],
    "status": ["/progress/status"],
    "render": ["/progress/render"],
    "show": ["/progress/show"],
    "jobs": ["/progress/jobs", "/progress/"],
    "delete": ["/progress/delete"],
    "fail": ["/progress/fail"],
}
NUMBERS = [
    (endpoint, p.name) for endpoint, params in ENDPOINT_PARAMS.items() for p in params
    if p.kind == "number"
]  # fmt: skip
LOGGED = {"jobid"}  # every endpoint reads it for the request log, even one that takes no job


@pytest.fixture(scope="module")
def client(client_without_renders):
    return client_without_renders  # create's first chart is never drawn here


@pytest.fixture(scope="module")
def spec(client) -> dict:
    return client.simulate_get("/openapi.json").json


def passing(params: tuple[Param, ...], jobid: str) -> dict[str, str]:
    """The required parameters, with values that pass every rule (and current / total too)."""
    values = {}
    for p in params:
        if p.required:
            assert p.kind in ("identifier", "number"), p
            inside = p.maximum if p.exclusive_minimum else p.minimum
            values[p.name] = jobid if p.kind == "identifier" else repr(inside)
    return values


def refused_naming(resp, name: str) -> bool:
    return 400 <= resp.status_code < 500 and f'"{name}"' in resp.json["description"]


def number_schemas(spec: dict, path: str, name: str) -> list[dict]:
    """The parameter's schema as the query, the form and (for update) the JSON batch state it."""
    get, post = spec["paths"][path]["get"], spec["paths"][path]["post"]
    content = post["requestBody"]["content"]
    found = [next(q["schema"] for q in get["parameters"] if q["name"] == name)]
    found.append(content[FORM]["schema"]["properties"][name])
    if JSON in content:
        batch, single, _ = content[JSON]["schema"]["anyOf"]
        found.append(batch["items"]["anyOf"][0]["properties"][name])
        found.append(single["properties"][name])
    numbers = [s for f in found for s in f.get("anyOf", [f]) if s.get("type") == "number"]
    assert len(numbers) == len(found), found
    return numbers


@pytest.mark.parametrize(("endpoint", "name"), NUMBERS)
def test_numeric_bounds_are_enforced_where_documented(
    client, settings, spec, jobid, endpoint, name
):
    params = endpoint_params(settings)[endpoint]
    p = next(p for p in params if p.name == name)
    low_in, low_out = p.minimum, math.nextafter(p.minimum, -math.inf)
    if p.exclusive_minimum:
        low_in, low_out = math.nextafter(p.minimum, math.inf), p.minimum
    high_in, high_out = p.maximum, math.nextafter(p.maximum, math.inf)
    for path in PATHS[endpoint]:
        for inside, outside in ((low_in, low_out), (high_in, high_out)):
            query = passing(params, jobid)
            resp = client.simulate_get(path, params={**query, name: repr(outside)})
            assert refused_naming(resp, name), (path, outside, resp.status_code, resp.text)
            resp = client.simulate_get(path, params={**query, name: repr(inside)})
            assert not refused_naming(resp, name), (path, inside, resp.text)
        for schema in number_schemas(spec, path, name):
            assert (schema["minimum"], schema["maximum"]) == (p.minimum, p.maximum), schema
            assert schema.get("exclusiveMinimum", False) == p.exclusive_minimum, schema


class Recorder(dict):
    """Parameters that note which of them a resource asked for."""

    def __init__(self, values: dict[str, str], asked: set[str]) -> None:
        super().__init__(values)
        self.asked = asked

    def get(self, name, default=None):
        self.asked.add(name)
        return super().get(name, default)

    def __getitem__(self, name):
        self.asked.add(name)
        return super().__getitem__(name)

    def __contains__(self, name):
        self.asked.add(name)
        return super().__contains__(name)


@pytest.fixture
def asked(monkeypatch) -> set[str]:
    """The names the resources ask for, from a query, a form or a JSON batch."""
    names: set[str] = set()
    read_params, read_json = api.resources.read_params, api.resources.read_json_updates
    monkeypatch.setattr(
        api.resources, "read_params", lambda req, s: Recorder(read_params(req, s), names)
    )
    monkeypatch.setattr(
        api.resources,
        "read_json_updates",
        lambda req, s: (lambda u, batch: ([Recorder(x, names) for x in u], batch))(
            *read_json(req, s)
        ),
    )
    return names


@pytest.mark.parametrize("path", [path for paths in PATHS.values() for path in paths])
def test_the_document_names_exactly_what_the_resources_read(
    client, settings, spec, jobid, asked, path
):
    endpoint = next(e for e, paths in PATHS.items() if path in paths)
    client.simulate_get(path, params=passing(endpoint_params(settings)[endpoint], jobid))
    get, post = spec["paths"][path]["get"], spec["paths"][path]["post"]
    query = {q["name"] for q in get["parameters"] if q["in"] == "query"}
    assert asked == query | LOGGED
    assert set(post["requestBody"]["content"][FORM]["schema"]["properties"]) == query


def test_the_json_batch_documents_exactly_what_update_reads(client, settings, spec, jobid, asked):
    update = passing(endpoint_params(settings)["update"], jobid)
    client.simulate_post("/progress/update", json=[update])
    body = spec["paths"]["/progress/update"]["post"]["requestBody"]["content"][JSON]
    batch, single, counters_only = body["schema"]["anyOf"]
    assert asked == set(batch["items"]["anyOf"][0]["properties"])
    assert asked == set(single["properties"]) == set(counters_only["properties"])


def test_only_the_table_s_endpoints_take_parameters(spec):
    takes = {path for path, operations in spec["paths"].items() if "post" in operations}
    assert takes == {path for paths in PATHS.values() for path in paths}
    assert set(PATHS) == set(ENDPOINT_PARAMS)


def test_status_answers_each_of_the_table_s_workers_values(client, jobid):
    client.simulate_get("/progress/create", params={"jobid": jobid})
    client.simulate_post(
        "/progress/update", json=[{"jobid": jobid, "workid": "w", "current": 1, "total": 2}]
    )
    for which in WORKERS.values:
        resp = client.simulate_get("/progress/status", params={"jobid": jobid, "workers": which})
        assert resp.status_code == 200, (which, resp.text)
        assert isinstance(resp.json["workers"], list)
