"""wrk runs: Lua scripts that generate the benchmark's requests, and the parsing of their
results (printed as one JSON line by the scripts' done())."""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

WRK = "/usr/bin/wrk"

# Every script ends with this: one machine-readable line with everything wrk measured.
_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests":%d,"duration_us":%d,"bytes":%d,"status":%d,'
    .. '"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,'
    .. '"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max))
end
"""

# Threads get an id, so that each starts at a different point of the request sequence.
_THREADS = """
local nthreads = 0
function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
end
"""


def _lua_list(values: list[str]) -> str:
    return "{" + ", ".join(json.dumps(v) for v in values) + "}"


def _pair_cycle(jobs: list[str], workers: int) -> str:
    """Lua next_pair(): the next (job, worker number, current) in a cycle through every pair,
    `current` growing by one per cycle; each thread starts at a different point."""
    return f"""
local jobs, workers = {_lua_list(jobs)}, {workers}
local pairs_ = #jobs * workers
local n = 0
function init(args) n = (tid or 0) * 7919 end
local function next_pair()
  local pair = n % pairs_
  n = n + 1
  return jobs[pair % #jobs + 1], math.floor(pair / #jobs), math.floor((n - 1) / pairs_) + 1
end
"""


def single_updates_script(jobs: list[str], workers: int) -> str:
    """GET /progress/update (the MWA shape), cycling through every (job, worker) pair with a
    `current` that grows by one per cycle."""
    return (
        _THREADS
        + _pair_cycle(jobs, workers)
        + """
function request()
  local job, w, current = next_pair()
  return wrk.format("GET", string.format(
    "/progress/update?jobid=%s&workid=w%d&current=%d&total=1000000", job, w, current))
end
"""
        + _DONE
    )


def pushgateway_script(jobs: list[str], workers: int) -> str:
    """The same 7x1000 groups pushed to a Pushgateway: POST /metrics/job/<job>/instance/w<i>."""
    return (
        _THREADS
        + _pair_cycle(jobs, workers)
        + """
local headers = {["Content-Type"] = "text/plain; version=0.0.4"}
function request()
  local job, w, current = next_pair()
  local body = string.format("progress_current %d\\nprogress_total 1000000\\n", current)
  return wrk.format("POST", string.format("/metrics/job/%s/instance/w%d", job, w), headers, body)
end
"""
        + _DONE
    )


def batch_updates_script(jobs: list[str], workers: int, per_body: int) -> str:
    """POST /progress/update with a JSON array of `per_body` updates: consecutive workers of one
    job, the jobs in turn, `current` growing by one per cycle through all workers."""
    return (
        _THREADS
        + f"""
local jobs, workers, per_body = {_lua_list(jobs)}, {workers}, {per_body}
local chunks = math.floor(workers / per_body)
local n = 0
local row = '{{"jobid":"%s","workid":"w%d","current":%d,"total":1000000,"ok":1,"desc":"step %d"}}'
function init(args) n = (tid or 0) * 3 end
function request()
  local job = jobs[n % #jobs + 1]
  local chunk = math.floor(n / #jobs) % chunks
  local current = math.floor(n / (#jobs * chunks)) + 1
  n = n + 1
  local parts = {{}}
  for i = 0, per_body - 1 do
    parts[#parts + 1] = string.format(row, job, chunk * per_body + i, current, current)
  end
  return wrk.format("POST", "/progress/update", {{["Content-Type"] = "application/json"}},
    "[" .. table.concat(parts, ",") .. "]")
end
"""
        + _DONE
    )


def static_script(headers: dict[str, str]) -> str:
    """The URL given on the command line, with fixed extra headers."""
    lines = [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n" + _DONE


@dataclass(frozen=True)
class WrkResult:
    requests: int  # completed requests
    seconds: float
    non_2xx: int  # wrk's "Non-2xx or 3xx responses" (status > 399)
    socket_errors: int  # connect + read + write + timeout
    p50_ms: float
    p99_ms: float
    max_ms: float
    bytes: int
    p95_ms: float = 0.0
    raw: dict = field(default_factory=dict, compare=False)  # the whole line, extra keys too

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.seconds


def _command(url: str, script: Path, connections: int, seconds: float, threads: int) -> list:
    return [
        WRK,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]


def _parse(output: str) -> WrkResult:
    line = next((x for x in output.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    r = json.loads(line[len("BENCH ") :])
    return WrkResult(
        requests=r["requests"],
        seconds=r["duration_us"] / 1e6,
        non_2xx=r["status"],
        socket_errors=r["connect"] + r["read"] + r["write"] + r["timeout"],
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        max_ms=r["max_us"] / 1000,
        bytes=r["bytes"],
        p95_ms=r.get("p95_us", 0) / 1000,
        raw=r,
    )


class Wrk:
    """One wrk process; `result()` waits for it (or, after `interrupt()`, for its summary)."""

    def __init__(self, url: str, script: str, connections: int, seconds: float, threads: int = 2):
        self._dir = tempfile.TemporaryDirectory(prefix="bench-wrk-")
        path = Path(self._dir.name) / "load.lua"
        path.write_text(script)
        threads = min(threads, connections)
        self.proc = subprocess.Popen(
            _command(url, path, connections, seconds, threads),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.timeout = seconds + 30

    def interrupt(self) -> None:
        """Stop early; wrk still prints its summary."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def result(self) -> WrkResult:
        try:
            output, _ = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise
        finally:
            self._dir.cleanup()
        return _parse(output)


def run_wrk(url: str, script: str, connections: int, seconds: float, threads: int = 2):
    return Wrk(url, script, connections, seconds, threads).result()
