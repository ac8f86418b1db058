"""`progress wait`: poll a job until every worker is done, one failed, or time runs out."""

from __future__ import annotations

import argparse
import time
from typing import Any

from . import _http
from ._cli_args import http_timeout
from ._cli_exit import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT
from ._cli_output import clean, error, failure_text, note, print_json, summary
from ._http import ServiceUnavailable


def cmd_wait(args: argparse.Namespace, base_url: str) -> int:
    status: dict[str, Any] = {}
    code = _wait(args, base_url, status)
    if args.json:
        outcome = {EXIT_OK: "done", EXIT_FAILED: "failed", EXIT_TIMEOUT: "timeout"}[code]
        print_json({"jobid": args.jobid, "outcome": outcome, "exit_status": code,
                     "status": status})  # fmt: skip
    return code


def _wait(args: argparse.Namespace, base_url: str, status: dict[str, Any]) -> int:
    """Poll until the job is over; the last status document answered is left in `status`."""
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    answered = False
    errors = 0
    last_line = ""
    while True:
        try:
            # The counts cover every worker; the failed and stale ones are listed by name.
            params = {"jobid": args.jobid, "workers": "problems"}
            body, resp = _http.request_json(base_url, "status", params, timeout=http_timeout(args))
        except ServiceUnavailable as exc:
            errors += 1
            if not answered or errors >= args.max_errors:
                raise
            note(f"progress: warning: {exc}; still waiting")
        else:
            answered, errors = True, 0
            status.clear()
            status.update(body)
            verdict = _verdict(args, body)
            if verdict is not None:
                return verdict
            line = summary(body, _http.server_time(resp))
            if not args.quiet and line != last_line:
                note(line)
                last_line = line
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            error(f"timed out after {args.timeout:g}s waiting for job {clean(args.jobid)!r}")
            return EXIT_TIMEOUT
        time.sleep(args.interval if deadline is None else min(args.interval, deadline - now))


def _verdict(args: argparse.Namespace, body: dict[str, Any]) -> int | None:
    """The exit status if waiting is over, else None."""
    if body.get("job_failed"):
        error(f"job {clean(args.jobid)!r}: {failure_text(body['job_failed'])}")
        return EXIT_FAILED
    workers = body.get("workers") or []
    failed = [w for w in workers if w.get("state") == "failed"]
    if args.fail_on_stale:
        failed += [w for w in workers if w.get("state") == "stale"]
    if failed:
        names = ", ".join(_describe_worker(w) for w in failed)
        error(f"job {clean(args.jobid)!r}: {len(failed)} worker(s) failed: {names}")
        return EXIT_FAILED
    counts = body.get("counts") or {}
    done = counts.get("done", 0)
    if "complete" in body:  # the service's verdict, which counts expected workers still silent
        finished = body["complete"] is True
    else:  # a service from before `create --workers`
        finished = done and not sum(counts.get(k, 0) for k in ("running", "failed", "stale"))
    if finished and done >= args.workers:
        if not args.quiet:
            note(f"job {clean(args.jobid)!r}: all {done} worker(s) done")
        return EXIT_OK
    return None


def _describe_worker(w: dict[str, Any]) -> str:
    name = clean(w.get("workid", ""))
    desc = clean(w.get("desc") or "")
    return f"{name} ({desc})" if desc else name
