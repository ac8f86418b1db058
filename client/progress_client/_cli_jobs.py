"""The job commands of `progress`: create, update, show-url, ls, info, pending, delete, fail."""

from __future__ import annotations

import argparse

from . import _http
from ._cli_args import CREATE_HTTP_TIMEOUT, http_timeout
from ._cli_exit import EXIT_OK
from ._cli_output import (
    age,
    clean,
    duration,
    failure_text,
    lifetimes_text,
    not_reported,
    note,
    percent,
    print_json,
    print_table,
    ran,
    summary,
    when,
)
from ._http import ProgressError
from .job import Job


def cmd_create(args: argparse.Namespace, base_url: str) -> int:
    # Only when given, so that a job without it is created exactly as before.
    expected = {} if args.workers is None else {"workers": args.workers}
    job = Job.create(
        base_url,
        args.jobid,
        desc=args.desc,
        maxage=args.maxage,
        secret=args.secret,
        timeout=http_timeout(args, CREATE_HTTP_TIMEOUT),
        **expected,
    )
    if args.json:
        print_json(job.info)
        return EXIT_OK
    print(job.jobid)
    if args.print_url:
        print(job.show_url)
    elif not args.quiet:
        note(f"progress page: {job.show_url}")
    return EXIT_OK


def cmd_update(args: argparse.Namespace, base_url: str) -> int:
    params = {
        "jobid": args.jobid,
        "workid": args.workid,
        "current": args.current,
        "total": args.total,
        "ok": "0" if args.failed else "1",
        "desc": args.desc,
        "secret": args.secret,
    }
    if args.counter:  # sent as a JSON body, the only one that carries counters
        params["counters"] = dict(args.counter)
    try:
        _http.request_json(base_url, "update", params, timeout=http_timeout(args))
    except ProgressError as exc:
        if not args.best_effort:
            raise
        note(f"progress: warning: update not delivered: {exc}")
    return EXIT_OK


def cmd_show_url(args: argparse.Namespace, base_url: str) -> int:
    page = "render" if args.render else "show"
    interval = None if args.render or args.interval is None else f"{args.interval:g}"
    print(_http.page_url(base_url, page, jobid=args.jobid, interval=interval))
    return EXIT_OK


def cmd_ls(args: argparse.Namespace, base_url: str) -> int:
    body, resp = _http.request_json(
        base_url,
        "jobs",
        {"limit": args.limit, "offset": args.offset},
        timeout=http_timeout(args),
        job_endpoint=False,
    )
    if args.json:
        print_json(body)
        return EXIT_OK
    jobs = body.get("jobs") or []
    if not jobs:
        note("no jobs")
        return EXIT_OK
    rows = [
        [
            clean(j.get("jobid", "")),
            when(j.get("created")),
            str(j.get("workers", "")),
            percent(j.get("percent")),
            str(j.get("failed", "")),
            str(j.get("stale", "")),
            clean(j.get("desc", "")),
        ]
        for j in jobs
    ]
    headers = ["JOBID", "CREATED", "WORKERS", "PERCENT", "FAILED", "STALE", "DESC"]
    print_table(headers, rows, right={2, 3, 4, 5})
    total = body.get("total")
    if isinstance(total, int) and total > args.offset + len(jobs):
        first = args.offset + 1
        note(f"jobs {first}-{args.offset + len(jobs)} of {total} (use --offset for more)")
    return EXIT_OK


def cmd_info(args: argparse.Namespace, base_url: str) -> int:
    body, resp = _http.full_status(base_url, args.jobid, timeout=http_timeout(args))
    if args.json:
        print_json(body)
        return EXIT_OK
    now = _http.server_time(resp)
    print(f"job      {clean(body.get('jobid', args.jobid))}")
    if body.get("desc"):
        print(f"desc     {clean(body['desc'])}")
    created = body.get("created")
    if isinstance(created, (int, float)):
        print(f"created  {when(created)} ({duration(now - created)} ago)")
    workers = body.get("workers") or []
    print()
    if workers:
        rows = [
            [
                clean(w.get("workid", "")),
                percent(w.get("percent")),
                str(w.get("state", "")),
                age(now, w.get("updated")),
                ran(now, w),
                clean(w.get("desc") or ""),
            ]
            for w in workers
        ]
        print_table(["WORKID", "PERCENT", "STATE", "AGE", "RAN", "DESC"], rows, right={1, 3, 4})
    else:
        print("no worker has reported yet")
    print()
    print(summary(body, now))
    print(lifetimes_text(body, now))
    if body.get("job_failed"):
        print(failure_text(body["job_failed"]))
    return EXIT_OK


def cmd_pending(args: argparse.Namespace, base_url: str) -> int:
    body, _ = _http.full_status(base_url, args.jobid, timeout=http_timeout(args))
    # A failed worker may well be at 100 %: only "done" is finished successfully.
    pending = [w for w in body.get("workers") or [] if w.get("state") != "done"]
    missing = not_reported(body)
    if args.json:
        print_json({"jobid": body.get("jobid", args.jobid), "workers": pending,
                     "not_reported": missing})  # fmt: skip
        return EXIT_OK
    for w in pending:
        print(clean(w.get("workid", "")))
    if missing:
        note(f"{missing} more worker(s) expected have not reported yet")
    return EXIT_OK


def cmd_fail(args: argparse.Namespace, base_url: str) -> int:
    job = Job(base_url, args.jobid, secret=args.secret, timeout=http_timeout(args))
    failure = job.fail(args.reason, workid=args.workid)
    if args.json:
        print_json(failure)
    elif not args.quiet:
        note(f"job {clean(args.jobid)!r}: {failure_text(failure)}")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, base_url: str) -> int:
    Job(base_url, args.jobid, secret=args.secret, timeout=http_timeout(args)).delete()
    if not args.quiet:
        note(f"deleted job {clean(args.jobid)!r}")
    return EXIT_OK
