"""The two reference servers, each started on a free loopback port and stopped by its PID:
the bare Falcon+waitress app (this stack's ceiling) and a Prometheus Pushgateway."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.harness import ROOT, free_port, wait_until

PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code < 500
    except requests.RequestException:
        return False


@contextlib.contextmanager
def _running(args: list[str], log: Path, probe_url: str):
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: proc.poll() is not None or _answers(probe_url), 20, what=args[0])
        if proc.poll() is not None:
            raise RuntimeError(f"{args[0]} exited: {log.read_text(errors='replace')[-2000:]}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        time.sleep(0.2)  # let the port and CPU settle before the next section


@contextlib.contextmanager
def bare_app(threads: int, workdir: Path):
    """Yields (base URL, process)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "bench.bare_app", str(port), str(threads)]
    probe = f"{base}/progress/update?jobid=j&workid=w&current=1&total=2"
    with _running(args, workdir / "bare_app.log", probe) as proc:
        yield base, proc


@contextlib.contextmanager
def pushgateway(workdir: Path):
    """Yields (base URL, process); no persistence file, default flags otherwise."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="]
    with _running(args, workdir / "pushgateway.log", f"{base}/-/ready") as proc:
        yield base, proc
