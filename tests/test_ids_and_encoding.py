"""Job and worker ids, and the bytes of a request: `+`, a space and `%2B` name one id, ids are
compared as text, raw UTF-8 in a URL is read as UTF-8, and whatever the HTTP server refuses by
itself gets the app's JSON error and a request-log line. The id rules run in-process; what the
server reads and refuses runs against the real web process (`python -m api`, waitress)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import uuid

import pytest
import requests

from tests.harness import RedisServer, Service, wait_until
from tests.inprocess import InProcessService

# --------------------------------------------------------------------------- ids, in-process


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("ids-redis")).start()
    yield InProcessService(server)
    server.stop()


def get(service, endpoint: str, query: str):
    """A request with the query string exactly as given (no encoding of ours)."""
    return service.client.simulate_get(f"/progress/{endpoint}", query_string=query)


def fresh(prefix: str = "ids") -> str:
    return f"{prefix}:{uuid.uuid4().hex[:10]}"


SPELLINGS = ["+", "%2B", "%20", "%2b"]  # a `+` raw (a space), encoded; a space encoded


@pytest.mark.parametrize("created_as", SPELLINGS)
def test_plus_space_and_encoded_plus_name_one_job_and_one_worker(service, created_as):
    base = fresh()
    resp = get(service, "create", f"jobid={base}{created_as}08:00&desc=T")
    assert resp.status_code == 200, resp.text
    jobid = f"{base} 08:00"
    assert resp.json["jobid"] == jobid  # stored and shown with a space
    assert resp.json["status"].endswith(f"jobid={base.replace(':', '%3A')}+08%3A00")
    for i, spelling in enumerate(SPELLINGS, 1):
        resp = get(service, "update", f"jobid={base}{spelling}08:00&workid=w{spelling}1"
                   f"&current={i}&total=10")  # fmt: skip
        assert resp.status_code == 202, (spelling, resp.text)
    service.drain()
    for spelling in SPELLINGS:
        doc = get(service, "status", f"jobid={base}{spelling}08:00").json
        assert doc["jobid"] == jobid, spelling
        assert [(w["workid"], w["current"]) for w in doc["workers"]] == [("w 1", 4)], spelling
        after = get(service, "status", f"jobid={base}+08:00&after=w{spelling}1").json
        assert after["workers"] == [], spelling  # `after` names the same worker
    assert get(service, "render", f"jobid={base}%2B08:00").status_code == 200
    assert get(service, "show", f"jobid={base}%2B08:00").status_code == 200


def test_a_json_batch_reads_ids_the_same_way(service):
    jobid = fresh()
    assert service.get("create", jobid=f"{jobid}+x").status_code == 200
    service.report(f"{jobid} x", ("node+1", 1, 2))
    service.report(f"{jobid}+x", ("node 1", 2, 2))
    doc = service.get("status", jobid=f"{jobid}+x").json
    assert [(w["workid"], w["current"]) for w in doc["workers"]] == [("node 1", 2)]


def test_delete_reads_the_id_the_same_way(service):
    jobid = fresh()
    assert get(service, "create", f"jobid={jobid}%2Bx").status_code == 200
    resp = get(service, "delete", f"jobid={jobid}+x")
    assert resp.status_code == 200 and resp.json["jobid"] == f"{jobid} x"
    assert get(service, "status", f"jobid={jobid}%2Bx").status_code == 404


def test_ids_are_compared_as_text(service):
    stem = f"{uuid.uuid4().int % 10**9}"
    assert service.get("create", jobid=f"{stem}.5").status_code == 200
    assert service.get("status", jobid=f"{stem}.50").status_code == 404  # not the same number
    service.report(f"{stem}.5", ("1", 1, 4), ("1.0", 2, 4), ("01", 3, 4))
    workers = service.get("status", jobid=f"{stem}.5").json["workers"]
    assert sorted(w["workid"] for w in workers) == ["01", "1", "1.0"]


def test_the_guides_misprinted_current_is_named(service):
    jobid = fresh()
    service.get("create", jobid=jobid)
    # The guide's URL as printed: "&current=5" shows as "¤t=5", so workid swallows the rest.
    resp = get(service, "update", f"jobid={jobid}&workid=1%C2%A4t=5&total=22")
    assert resp.status_code == 400
    assert resp.json["title"] == "Missing parameter"
    assert '"current"' in resp.json["description"] and "¤t=" in resp.json["description"]
    assert get(service, "update", f"jobid={jobid}&workid=1&total=22").json["description"] == (
        'The "current" parameter is required.'
    )


# --------------------------------------------------------------------------- the real server


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """The web process alone (what these tests exercise is in front of the app)."""
    redis_server = RedisServer(tmp_path_factory.mktemp("ids-web-redis")).start()
    env = {"PROGRESS_CREATE_RATE_LIMIT": "0", "PROGRESS_MAX_BODY_BYTES": "4096"}
    web = Service(redis_server.url, tmp_path_factory.mktemp("ids-web"), env).start("web")
    yield web
    web.stop()
    redis_server.stop()


def exchange(web, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes on a connection of its own; the status, headers and body answered."""
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as conn:
        conn.sendall(data)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


def request(target: bytes, *headers: bytes) -> bytes:
    return b"\r\n".join(
        [b"GET " + target + b" HTTP/1.1", b"Host: t", *headers, b"Connection: close", b"", b""]
    )


def headers_of_exactly(size: int, target: bytes) -> bytes:
    """A request line and headers of `size` bytes that never end: the server refuses them once
    it has read `size` bytes, having read all there is (so its close resets nothing)."""
    start = b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nX-Big: "
    return start + b"x" * (size - len(start))


curl = pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")


@curl
def test_raw_utf8_in_a_curl_url_is_read_as_utf8(web):
    jobid = fresh("café")
    out = subprocess.run(
        ["curl", "-s", f"{web.url}/progress/create?jobid={jobid}&desc=café+ü"],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    created = json.loads(out.stdout)
    assert created["jobid"] == jobid and created["desc"] == "café ü"
    assert web.get("status", jobid=jobid).json()["desc"] == "café ü"


@pytest.mark.parametrize("name", ["jobid", "desc"])
def test_bytes_that_are_not_utf8_get_a_json_400_naming_the_parameter(web, name):
    values = {"jobid": b"ids:x", "desc": b"d"}
    values[name] = b"caf\xe9"  # Latin-1, not UTF-8
    query = b"&".join(k.encode() + b"=" + v for k, v in values.items())
    status, headers, body = exchange(web, request(b"/progress/create?" + query))
    assert status == 400 and headers["content-type"] == "application/json"
    assert (
        json.loads(body)["description"]
        == f'The "{name}" parameter is invalid. it must be valid UTF-8'
    )


SECRET = b"s3cr3t-never-logged"
REFUSED = [
    # (what is sent, status, words of the description)
    pytest.param(request(b"/progress/update?secret=" + SECRET, b"Bad\x01Name: x"), 400,
                 "Invalid header", id="bad-header"),
    pytest.param(request(b"/progress/update?secret=" + SECRET, b"Content-Length: 4097"), 413,
                 "the body may be at most 4096 bytes", id="body-too-large"),
    pytest.param(headers_of_exactly(65536, b"/progress/status?secret=" + SECRET), 431,
                 "at most 65536 bytes", id="headers-too-large"),
    pytest.param(request(b"/progress/create?secret=" + SECRET, b"Transfer-Encoding: gzip"), 501,
                 "Transfer-Encoding", id="transfer-encoding"),
    pytest.param(request(b"/progress/update?secret=" + SECRET, b"Content-Length: x"), 400,
                 "Content-Length is invalid", id="bad-content-length"),
]  # fmt: skip


@pytest.mark.parametrize(("sent", "status", "words"), REFUSED)
def test_what_the_server_refuses_gets_our_json_error_and_a_log_line(web, sent, status, words):
    got, headers, body = exchange(web, sent)
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    error = json.loads(body)
    assert set(error) == {"title", "description"} and words in error["description"], error
    path = sent.split(b" ")[1].split(b"?")[0].decode()
    logged = rf'route=refused path="{path}" status={status} ms=[\d.]+ client=127\.0\.0\.1'

    def refused_lines():
        return re.findall(logged, web.log("web"))

    before = len(refused_lines())
    exchange(web, sent)  # once more, to be sure this line is this request's
    wait_until(lambda: len(refused_lines()) > before, 10, what="the refusal's log line")
    assert SECRET.decode() not in web.log("web")


def test_a_refused_update_is_counted_as_a_rejection(web):
    def too_large() -> float:
        metrics = requests.get(f"{web.url}/metrics", timeout=10).text
        found = re.search(r'progress_updates_rejected_total\{reason="too_large"\} (\S+)', metrics)
        return float(found[1]) if found else 0.0

    before = too_large()
    exchange(web, request(b"/progress/update", b"Content-Length: 5000"))
    wait_until(lambda: too_large() == before + 1, 10, what="the rejection counted")
