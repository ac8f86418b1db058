"""Log lines: every process of the Procfile writes logfmt lines that start with an RFC 3339 UTC
timestamp, and no value (a job id, a path) can break a line or forge a field."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
from datetime import datetime, timedelta

import pytest
import requests

from domain import logs
from tests.conftest import FAST
from tests.harness import ROOT, RedisServer, Service, wait_until

# One pair: a key, then a bare value or a double-quoted one with backslash escapes.
PAIR = re.compile(r'([^\s="]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?:\s+|$)')
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)")
# Written by Celery's signal handler straight to the descriptor, where logging would risk a
# deadlock: a notice, not a log line (README, "Monitoring").
CELERY_NOTICES = re.compile(r"worker: (Warm|Cold) shutdown \(MainProcess\)")
INJECTED = 'job\nts=1999-01-01T00:00:00Z level=error msg="forged" "quote\u2028x'


def parse(line: str) -> dict[str, str]:
    """A logfmt line as a dict; fails unless the whole line is pairs."""
    fields, position = {}, 0
    while position < len(line):
        match = PAIR.match(line, position)
        assert match, f"not logfmt at column {position}: {line!r}"
        key, value = match.groups()
        fields[key] = json.loads(value) if value.startswith('"') else value
        position = match.end()
    return fields


def check_log_line(line: str) -> dict[str, str]:
    fields = parse(line)
    assert RFC3339_UTC.fullmatch(fields.get("ts", "")), f"ts is not RFC 3339 UTC: {line!r}"
    stamp = datetime.fromisoformat(fields["ts"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == timedelta(0)
    assert fields.get("level") in {"debug", "info", "warning", "error", "critical"}, line
    assert "msg" in fields and "logger" in fields, line
    return fields


def test_a_value_with_newlines_and_quotes_stays_in_its_field():
    stream = io.StringIO()
    logger = logging.getLogger("test.logs.injection")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.LogfmtFormatter())
    logger.addHandler(handler)
    try:
        logger.warning("event=notify_refused job=%s", logs.quote(INJECTED))
        logger.warning("free text about %s", INJECTED)
        logger.warning("event=unquoted job=%s", INJECTED)  # a caller that forgot to quote
        try:
            raise ValueError("boom\nline two")
        except ValueError:
            logger.exception("event=failed")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    parsed = [check_log_line(line) for line in lines]
    assert parsed[0]["msg"] == "notify_refused" and parsed[0]["job"] == INJECTED
    assert parsed[1]["msg"] == f"free text about {INJECTED}"
    assert parsed[2]["msg"] == f"event=unquoted job={INJECTED}"  # one quoted value, no fields
    assert "ValueError: boom\nline two" in parsed[3]["exc"]
    assert all(p["level"] == "warning" for p in parsed[:3]) and parsed[3]["level"] == "error"


@pytest.mark.slow
def test_every_process_writes_only_logfmt_lines(tmp_path):
    # bin/in-venv runs `make install` first when the checkout changed; its output is make's,
    # not the service's: have it done before the processes start.
    subprocess.run(
        ["flock", ".venv.lock", "make", "--no-print-directory", "--silent", "install"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    redis_server = RedisServer(tmp_path / "redis").start()
    service = Service(redis_server.url, tmp_path / "svc", FAST)
    names = ("web", "ingest", "render", "notify", "beat")
    try:
        service.start(*names)
        service.get("create", jobid="logs-job")
        service.get("update", jobid="logs-job", workid="w", current=1, total=2)
        service.get("update", jobid=INJECTED, workid="w", current=1, total=2)  # refused
        requests.get(f"{service.url}/no%0Asuch%22path", timeout=5)
        wait_until(
            lambda: (
                "task=tasks.ingest.drain" in service.log("ingest")
                and "task=tasks.render." in service.log("render")
                and "resend-lost-work" in service.log("beat")
                and "notify@" in service.log("notify")
                and service.log("web").count("event=request") >= 5
            ),
            60,
            what="a line from every process",
        )
    finally:
        service.stop()
        redis_server.stop()

    parsed = {}
    for name in names:
        lines = [line for line in service.log(name).splitlines() if line.strip()]
        assert lines, f"{name} logged nothing"
        parsed[name] = [
            check_log_line(line) for line in lines if not CELERY_NOTICES.fullmatch(line)
        ]
    requests_logged = [p for p in parsed["web"] if p.get("event") == "request"]
    assert any(p.get("jobid") == INJECTED and p["status"] == "400" for p in requests_logged)
    assert any(p["path"] == '/no\nsuch"path' and p["route"] == "unmatched" for p in requests_logged)
    assert not any(p["msg"] == "forged" for lines in parsed.values() for p in lines)
    # billiard's info chatter (each pool child's start) is left out; its errors are kept.
    pool_info = [p for lines in parsed.values() for p in lines if p["logger"] == "multiprocessing"]
    assert all(p["level"] != "info" for p in pool_info), pool_info
