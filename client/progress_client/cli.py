"""The `progress` command line: create jobs, report from shell scripts, inspect and wait on jobs."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

from . import __version__, _http, _sender, flush
from ._http import JobNotFound, ProgressError, RequestRejected, ServiceUnavailable
from .job import Job

EXIT_OK = 0
EXIT_FAILED = 1  # the service refused the request, or (wait) a worker failed
EXIT_USAGE = 2  # bad arguments, no URL, no job id (argparse exits 2 too)
EXIT_TIMEOUT = 3
EXIT_NOT_FOUND = 4
EXIT_UNAVAILABLE = 69  # sysexits.h EX_UNAVAILABLE: a retry later may succeed, unlike a usage error
# `run`: what a shell answers for a command it cannot start
EXIT_CANNOT_EXECUTE = 126
EXIT_COMMAND_NOT_FOUND = 127

DEFAULT_HTTP_TIMEOUT = 10.0
CREATE_HTTP_TIMEOUT = 30.0  # create answers once the first chart is drawn

EPILOG = f"""\
The service URL comes from --url or ${_http.ENV_URL}, e.g. http://progress.example:8080
(the part before /progress/...). Where a JOBID is expected it may be left out when
${_http.ENV_JOBID} is set.

exit status:
  0  success (wait: every worker is done)
  1  the service refused the request (wait: a worker failed)
  2  usage error: bad arguments, no URL, no job id
  3  wait: timed out
  4  no such job
  69 the service could not be reached, timed out or answered 5xx (try again later)
  run exits with the command's own status (128+N if signal N killed it, 127 if not found)

examples:
  JOBID=$(progress create --desc "calibrate 1234")
  progress update "$JOBID" node7 5 22 --desc "lots of RFI"
  progress info "$JOBID"
  progress wait "$JOBID" --timeout 3600 && echo all done
  progress run "$JOBID" node7 -- ./calibrate.sh 1234
"""


class UsageError(Exception):
    """Bad command line input that argparse cannot check by itself."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status (never raises, never prints a traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `run` takes everything after its `--` as the command, options and all; every other
    # command keeps argparse's own meaning of `--` (the end of options).
    head, command = _split_run_command(argv)
    try:
        args = parser.parse_args(head if command is not None else argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not getattr(args, "command", None):
        parser.print_usage(sys.stderr)
        _error("a command is required (see progress --help)")
        return EXIT_USAGE
    try:
        base_url = _http.base_url_from(getattr(args, "url", None))
    except ValueError as exc:
        _error(f"{exc} (use --url URL or set ${_http.ENV_URL})")
        return EXIT_USAGE
    try:
        if getattr(args, "takes_jobid", False):
            args.jobid = _jobid_or_env(args.jobid)
        if args.command == "run":
            args.argv = _command_or_usage_error(command)
        return args.func(args, base_url)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except JobNotFound as exc:
        _error(exc.description or f"job {_clean(args.jobid)!r} not found ({exc})")
        return EXIT_NOT_FOUND
    except RequestRejected as exc:
        _error(f"the service refused: {exc}")
        return EXIT_FAILED
    except ProgressError as exc:  # unreachable, 5xx, or not a progress service at that URL
        _error(str(exc))
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `progress pending JOB | head -1`
        _silence_stdout()
        return EXIT_FAILED
    except Exception as exc:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("PROGRESS_DEBUG"):
            raise
        _error(f"internal error: {type(exc).__name__}: {exc} (set PROGRESS_DEBUG=1 for details)")
        return EXIT_FAILED


def _split_run_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """(arguments of `progress`, the command to run) if this is `progress run ... -- CMD`,
    else (argv, None)."""
    words = iter(argv)
    for word in words:
        if word in ("--url", "--http-timeout"):
            next(words, None)  # skip the option's value
        elif not word.startswith("-"):
            break  # the command name
    else:
        return argv, None
    if word != "run" or "--" not in argv:
        return argv, None
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


def _command_or_usage_error(command: list[str] | None) -> list[str]:
    if not command:
        raise UsageError("give the command to run after --, e.g. progress run JOBID -- make all")
    return command


def _jobid_or_env(jobid: str | None) -> str:
    if jobid is None:
        jobid = os.environ.get(_http.ENV_JOBID) or None
    if jobid is None:
        raise UsageError(f"a job id is required: give JOBID or set ${_http.ENV_JOBID}")
    return jobid


def build_parser() -> argparse.ArgumentParser:
    # Connection options are accepted before or after the command name.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"service base URL, e.g. http://host:8080 (default: ${_http.ENV_URL})",
    )
    common.add_argument(
        "--http-timeout",
        type=_positive_float,
        default=argparse.SUPPRESS,
        metavar="S",
        help=f"seconds to wait for each HTTP answer (default {DEFAULT_HTTP_TIMEOUT:g}, "
        f"create {CREATE_HTTP_TIMEOUT:g})",
    )
    parser = argparse.ArgumentParser(
        prog="progress",
        parents=[common],
        description="Create, update, inspect and wait on jobs of a progress-bar web service.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, func: Callable[..., int], summary: str, details: str = "") -> Any:
        p = sub.add_parser(
            name,
            parents=[common],
            help=summary.replace("%", "%%"),
            description=summary + ("\n\n" + details if details else ""),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    def jobid_argument(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "jobid", metavar="JOBID", nargs="?", help=f"the job (default: ${_http.ENV_JOBID})"
        )
        p.set_defaults(takes_jobid=True)

    def secret_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--secret",
            default=os.environ.get(_http.ENV_SECRET),
            help=f"the job's secret, if it has one (default: ${_http.ENV_SECRET})",
        )

    p = command(
        "create",
        cmd_create,
        "Create a job and print its id.",
        "Prints the job id on stdout and the progress page URL on stderr. Creating an id that\n"
        "exists overwrites that job. Pass the id to your workers.",
    )
    p.add_argument("--jobid", help="job id to use (default: user:host:time:random)")
    p.add_argument("--desc", default="", help="description, shown as the chart title")
    p.add_argument(
        "--maxage", type=_positive_float, metavar="S", help="seconds the service keeps the job"
    )
    p.add_argument("--secret", help="secret that workers must send with their updates")
    p.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="workers to expect: the job is done only when N workers have finished",
    )
    p.add_argument(
        "--print-url", action="store_true", help="also print the page URL on stdout (2nd line)"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on stderr")
    p.add_argument("--json", action="store_true", help="print the service's answer as JSON")

    p = command(
        "update",
        cmd_update,
        "Report one worker's progress (for shell scripts).",
        "The chart shows 100 * CURRENT / TOTAL for the worker.",
    )
    jobid_argument(p)
    p.add_argument("workid", metavar="WORKID", help="this worker's id, unique within the job")
    p.add_argument("current", metavar="CURRENT", type=_number_arg, help="things done so far")
    p.add_argument("total", metavar="TOTAL", type=_number_arg, help="things to do in all")
    p.add_argument("--desc", help="short status text shown next to the bar")
    p.add_argument("--failed", action="store_true", help="mark the worker as failed (red bar)")
    secret_option(p)
    p.add_argument(
        "--best-effort",
        action="store_true",
        help="exit 0 even if the update could not be delivered (a warning is still printed)",
    )

    p = command("show-url", cmd_show_url, "Print the URL of a job's live progress page.")
    jobid_argument(p)
    p.add_argument(
        "--interval", type=_positive_float, metavar="S", help="page refresh interval in seconds"
    )
    p.add_argument("--render", action="store_true", help="print the PNG chart URL instead")

    p = command("ls", cmd_ls, "List recent jobs, newest first.")
    p.add_argument("--limit", type=_positive_int, default=20, metavar="N", help="default 20")
    p.add_argument("--offset", type=_non_negative_int, default=0, metavar="N", help="skip N jobs")
    p.add_argument("--json", action="store_true", help="print the service's answer as JSON")

    p = command(
        "info",
        cmd_info,
        "Show a job's workers as a table, with overall progress and ETA.",
        "States: running, done (current >= total), failed (ok=0), stale (silent too long).",
    )
    jobid_argument(p)
    p.add_argument("--json", action="store_true", help="print the service's answer as JSON")

    p = command(
        "pending",
        cmd_pending,
        "Print the workers that have not finished successfully, one id per line.",
        "That is every worker not done: running, stale, and failed ones (even at 100%). When\n"
        "the job expects more workers than have reported, a note on stderr says how many\n"
        "are missing (the service cannot name them).",
    )
    jobid_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON document (see README)")

    p = command(
        "wait",
        cmd_wait,
        "Block until every worker is done (exit 0) or one failed (exit 1).",
        "Polls the job's status. Exits 3 on --timeout, 4 if the job does not exist, 69 if\n"
        "the service cannot be reached (a few failed polls in a row are tolerated once it has\n"
        "answered). A job created with --workers N is done when N workers are; for other\n"
        "jobs, workers that have not reported yet are unknown to the service: use --workers N\n"
        "here when you know how many to expect.",
    )
    jobid_argument(p)
    p.add_argument(
        "--interval", type=_positive_float, default=5.0, metavar="S", help="poll period (5)"
    )
    p.add_argument("--timeout", type=_non_negative_float, metavar="S", help="give up after S s")
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="wait until at least N workers have reported (default 1)",
    )
    p.add_argument(
        "--fail-on-stale", action="store_true", help="treat a stale worker as failed (exit 1)"
    )
    p.add_argument(
        "--max-errors", type=_positive_int, default=5, metavar="N",
        help="give up (exit 2) after N failed polls in a row (default 5)",
    )  # fmt: skip
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    p.add_argument(
        "--json", action="store_true", help="print the outcome as one JSON document (see README)"
    )

    p = command(
        "delete",
        cmd_delete,
        "Delete a job: its workers, chart and page are gone.",
        "A job created with a secret needs the same --secret.",
    )
    jobid_argument(p)
    secret_option(p)
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on stderr")

    p = command(
        "run",
        cmd_run,
        "Run a command as one worker: running, then done, or failed with its exit status.",
        "Reports the worker running (0%) and starts COMMAND with this terminal's stdin,\n"
        "stdout and stderr. When it ends, reports done (100%), or failed with desc\n"
        '"exit N" or "killed by SIGNAME", and exits with the command\'s own status (128+N\n'
        "for signal N, 127 when the command is not found, 126 when it cannot be started).\n"
        "SIGTERM and SIGHUP are passed on to the command, and SIGINT too unless it came from\n"
        "the terminal (which sends it to the command itself); one ignored on entry (nohup)\n"
        "stays ignored, by the command too. The service being down never stops the\n"
        "command: its reports are then dropped, with a warning.\n\n"
        "WORKID defaults to the Python client's default: $PROGRESS_WORKID, else the MPI or\n"
        "SLURM rank (OMPI_COMM_WORLD_RANK, PMI_RANK, SLURM_PROCID, SLURM_ARRAY_TASK_ID),\n"
        "else host:pid.",
    )
    p.usage = "%(prog)s [JOBID [WORKID]] [options] -- COMMAND [ARGS...]"
    jobid_argument(p)
    p.add_argument("workid", metavar="WORKID", nargs="?", help="this worker's id (see below)")
    secret_option(p)
    p.add_argument("--desc", help="status text while the command runs (default: the command line)")
    p.add_argument(
        "--heartbeat",
        type=_positive_float,
        default=60.0,
        metavar="S",
        help="re-send the running state every S seconds, so a long command never looks "
        "stale (default 60)",
    )
    p.add_argument(
        "--flush-timeout",
        type=_non_negative_float,
        default=5.0,
        metavar="S",
        help="wait at most S seconds for the last report to be delivered (default 5)",
    )
    return parser


# -- commands ---------------------------------------------------------------------------------


def cmd_create(args: argparse.Namespace, base_url: str) -> int:
    # Only when given, so that a job without it is created exactly as before.
    expected = {} if args.workers is None else {"workers": args.workers}
    job = Job.create(
        base_url,
        args.jobid,
        desc=args.desc,
        maxage=args.maxage,
        secret=args.secret,
        timeout=_http_timeout(args, CREATE_HTTP_TIMEOUT),
        **expected,
    )
    if args.json:
        _print_json(job.info)
        return EXIT_OK
    print(job.jobid)
    if args.print_url:
        print(job.show_url)
    elif not args.quiet:
        _note(f"progress page: {job.show_url}")
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
    try:
        _http.request_json(base_url, "update", params, timeout=_http_timeout(args))
    except ProgressError as exc:
        if not args.best_effort:
            raise
        _note(f"progress: warning: update not delivered: {exc}")
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
        timeout=_http_timeout(args),
        job_endpoint=False,
    )
    if args.json:
        _print_json(body)
        return EXIT_OK
    jobs = body.get("jobs") or []
    if not jobs:
        _note("no jobs")
        return EXIT_OK
    rows = [
        [
            _clean(j.get("jobid", "")),
            _when(j.get("created")),
            str(j.get("workers", "")),
            _percent(j.get("percent")),
            str(j.get("failed", "")),
            str(j.get("stale", "")),
            _clean(j.get("desc", "")),
        ]
        for j in jobs
    ]
    headers = ["JOBID", "CREATED", "WORKERS", "PERCENT", "FAILED", "STALE", "DESC"]
    _print_table(headers, rows, right={2, 3, 4, 5})
    total = body.get("total")
    if isinstance(total, int) and total > args.offset + len(jobs):
        first = args.offset + 1
        _note(f"jobs {first}-{args.offset + len(jobs)} of {total} (use --offset for more)")
    return EXIT_OK


def cmd_info(args: argparse.Namespace, base_url: str) -> int:
    body, resp = _http.full_status(base_url, args.jobid, timeout=_http_timeout(args))
    if args.json:
        _print_json(body)
        return EXIT_OK
    now = _http.server_time(resp)
    print(f"job      {_clean(body.get('jobid', args.jobid))}")
    if body.get("desc"):
        print(f"desc     {_clean(body['desc'])}")
    created = body.get("created")
    if isinstance(created, (int, float)):
        print(f"created  {_when(created)} ({_duration(now - created)} ago)")
    workers = body.get("workers") or []
    print()
    if workers:
        rows = [
            [
                _clean(w.get("workid", "")),
                _percent(w.get("percent")),
                str(w.get("state", "")),
                _age(now, w.get("updated")),
                _clean(w.get("desc") or ""),
            ]
            for w in workers
        ]
        _print_table(["WORKID", "PERCENT", "STATE", "AGE", "DESC"], rows, right={1, 3})
    else:
        print("no worker has reported yet")
    print()
    print(_summary(body, now))
    return EXIT_OK


def cmd_pending(args: argparse.Namespace, base_url: str) -> int:
    body, _ = _http.full_status(base_url, args.jobid, timeout=_http_timeout(args))
    # A failed worker may well be at 100 %: only "done" is finished successfully.
    pending = [w for w in body.get("workers") or [] if w.get("state") != "done"]
    missing = _not_reported(body)
    if args.json:
        _print_json({"jobid": body.get("jobid", args.jobid), "workers": pending,
                     "not_reported": missing})  # fmt: skip
        return EXIT_OK
    for w in pending:
        print(_clean(w.get("workid", "")))
    if missing:
        _note(f"{missing} more worker(s) expected have not reported yet")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, base_url: str) -> int:
    Job(base_url, args.jobid, secret=args.secret, timeout=_http_timeout(args)).delete()
    if not args.quiet:
        _note(f"deleted job {_clean(args.jobid)!r}")
    return EXIT_OK


def cmd_wait(args: argparse.Namespace, base_url: str) -> int:
    status: dict[str, Any] = {}
    code = _wait(args, base_url, status)
    if args.json:
        outcome = {EXIT_OK: "done", EXIT_FAILED: "failed", EXIT_TIMEOUT: "timeout"}[code]
        _print_json({"jobid": args.jobid, "outcome": outcome, "exit_status": code,
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
            body, resp = _http.request_json(base_url, "status", params, timeout=_http_timeout(args))
        except ServiceUnavailable as exc:
            errors += 1
            if not answered or errors >= args.max_errors:
                raise
            _note(f"progress: warning: {exc}; still waiting")
        else:
            answered, errors = True, 0
            status.clear()
            status.update(body)
            verdict = _verdict(args, body)
            if verdict is not None:
                return verdict
            line = _summary(body, _http.server_time(resp))
            if not args.quiet and line != last_line:
                _note(line)
                last_line = line
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            _error(f"timed out after {args.timeout:g}s waiting for job {_clean(args.jobid)!r}")
            return EXIT_TIMEOUT
        time.sleep(args.interval if deadline is None else min(args.interval, deadline - now))


def _verdict(args: argparse.Namespace, body: dict[str, Any]) -> int | None:
    """The exit status if waiting is over, else None."""
    workers = body.get("workers") or []
    failed = [w for w in workers if w.get("state") == "failed"]
    if args.fail_on_stale:
        failed += [w for w in workers if w.get("state") == "stale"]
    if failed:
        names = ", ".join(_describe_worker(w) for w in failed)
        _error(f"job {_clean(args.jobid)!r}: {len(failed)} worker(s) failed: {names}")
        return EXIT_FAILED
    counts = body.get("counts") or {}
    done = counts.get("done", 0)
    if "complete" in body:  # the service's verdict, which counts expected workers still silent
        finished = body["complete"] is True
    else:  # a service from before `create --workers`
        finished = done and not sum(counts.get(k, 0) for k in ("running", "failed", "stale"))
    if finished and done >= args.workers:
        if not args.quiet:
            _note(f"job {_clean(args.jobid)!r}: all {done} worker(s) done")
        return EXIT_OK
    return None


def _not_reported(body: dict[str, Any]) -> int | None:
    """How many expected workers have not reported yet; None for a job that expects no count
    (created without --workers)."""
    if not isinstance(body.get("workers_expected"), int):
        return None
    return _as_int(body.get("workers_silent"))


# -- run --------------------------------------------------------------------------------------

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def cmd_run(args: argparse.Namespace, base_url: str) -> int:
    job = Job(base_url, args.jobid, secret=args.secret, timeout=_http_timeout(args))
    desc = args.desc if args.desc is not None else shlex.join(args.argv)
    # Signals stay forwarded until the end, so one arriving during the last report cannot
    # end `progress run` before it has said how the command ended.
    with _ForwardedSignals() as forwarding:
        # No WORKID: the client's default, from the launcher's variables (see --help).
        worker = job.worker(args.workid, total=1, desc=desc)
        try:
            child = subprocess.Popen(args.argv)
        except OSError as exc:
            status = _shell_status_for(exc)
            _error(f"cannot run {args.argv[0]!r}: {exc.strerror or exc}")
            worker.fail(f"exit {status}: {exc.strerror or type(exc).__name__}")
        else:
            forwarding.to(child)
            returncode = _wait_with_heartbeat(child, worker, args.heartbeat)
            status = 128 - returncode if returncode < 0 else returncode
            if returncode == 0:
                worker.done()
            else:
                worker.fail(_describe_returncode(returncode))
        _deliver_last_report(worker, args.flush_timeout)
    return status


def _deliver_last_report(worker: Any, timeout: float) -> None:
    """Wait at most `timeout` seconds in all for the last report, even to a service that is
    down, so that a rank of a big launch never lingers (the exit flush would wait again)."""
    worker.close(0)
    flush(timeout)
    os.environ[_sender.ENV_FLUSH_TIMEOUT] = "0"


def _wait_with_heartbeat(child: subprocess.Popen, worker: Any, every: float) -> int:
    """The command's return code; meanwhile the running state is re-sent every `every`
    seconds, so that a long silent command does not turn stale on the page."""
    while True:
        try:
            return child.wait(every)
        except subprocess.TimeoutExpired:
            worker.update()


def _shell_status_for(exc: OSError) -> int:
    """127 for a command that does not exist, 126 for one that cannot be executed, as sh."""
    if isinstance(exc, FileNotFoundError):
        return EXIT_COMMAND_NOT_FOUND
    return EXIT_CANNOT_EXECUTE


def _describe_returncode(returncode: int) -> str:
    if returncode >= 0:
        return f"exit {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


class _ForwardedSignals:
    """While active, the signals that would end `progress run` are passed on to the command
    instead, so that it is the command that ends and its end is reported. A signal that
    arrives before the command has started is passed on as soon as it starts."""

    def __init__(self) -> None:
        self.child: subprocess.Popen | None = None
        self.pending: list[int] = []
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _ForwardedSignals:
        for signum in FORWARDED_SIGNALS:
            # An ignored signal (nohup, `cmd &` in a script) stays ignored, by the command too:
            # a handler here would make exec reset it to its default, which ends the command.
            if signal.getsignal(signum) != signal.SIG_IGN:
                self.previous[signum] = signal.signal(signum, self._forward)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def to(self, child: subprocess.Popen) -> None:
        self.child = child
        for signum in self.pending:
            self._send(signum)

    def _forward(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and _terminal_in_front():
            return  # Ctrl-C: the terminal sent it to the command as well
        if self.child is None:
            self.pending.append(signum)
        else:
            self._send(signum)

    def _send(self, signum: int) -> None:
        try:
            self.child.send_signal(signum)  # type: ignore[union-attr]
        except ProcessLookupError:
            pass


def _terminal_in_front() -> bool:
    """True when this process group is the foreground of a controlling terminal, whose
    keyboard signals then reach every process of the group."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


# -- output helpers ---------------------------------------------------------------------------


def _summary(body: dict[str, Any], now: float) -> str:
    counts = body.get("counts") or {}
    parts = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("running", "done", "failed", "stale"))
    eta = body.get("eta_seconds")
    missing = _not_reported(body)
    if missing:
        parts += f", {missing} not reported"
    line = f"overall {_percent(body.get('percent')).strip()}: {parts}"
    line += f"; ETA {_duration(eta)}" if isinstance(eta, (int, float)) else "; ETA unknown"
    last = body.get("last_update")
    if isinstance(last, (int, float)):
        line += f"; last update {_duration(now - last)} ago"
    return line


def _describe_worker(w: dict[str, Any]) -> str:
    name = _clean(w.get("workid", ""))
    desc = _clean(w.get("desc") or "")
    return f"{name} ({desc})" if desc else name


def _print_table(headers: list[str], rows: list[list[str]], right: set) -> None:
    widths = [max(len(r[i]) for r in rows + [headers]) for i in range(len(headers))]
    if sys.stdout.isatty():  # keep one line per row: cut the last (free text) column
        room = shutil.get_terminal_size((100, 24)).columns - sum(w + 2 for w in widths[:-1])
        widths[-1] = max(min(widths[-1], room), len(headers[-1]))
    for row in [headers] + rows:
        cells = []
        for i, cell in enumerate(row):
            if len(cell) > widths[i]:
                cell = cell[: max(widths[i] - 1, 0)] + "…"
            cells.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        print("  ".join(cells).rstrip())


def _clean(value: Any) -> str:
    """Text from workers, made safe for a terminal: control characters shown escaped."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _percent(value: Any) -> str:
    number = _as_float(value, None)
    return "    ?" if number is None else f"{number:5.1f}%"


def _duration(seconds: Any) -> str:
    s = _as_float(seconds, None)
    if s is None:
        return "?"
    s = max(s, 0.0)
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    if s < 86400:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    return f"{int(s // 86400)}d{int(s % 86400 // 3600):02d}h"


def _age(now: float, updated: Any) -> str:
    stamp = _as_float(updated, None)
    return "-" if stamp is None else _duration(now - stamp)


def _when(stamp: Any) -> str:
    value = _as_float(stamp, None)
    if value is None:
        return "-"
    return datetime.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _as_float(value: Any, default: float | None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value) if math.isfinite(value) else default


def _print_json(body: Any) -> None:
    print(json.dumps(body, indent=2, ensure_ascii=False))


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def _error(text: str) -> None:
    print(f"progress: error: {text}", file=sys.stderr)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _http_timeout(args: argparse.Namespace, default: float = DEFAULT_HTTP_TIMEOUT) -> float:
    return getattr(args, "http_timeout", default)


# -- argument types ---------------------------------------------------------------------------


def _number_arg(text: str) -> str:
    """A finite number, passed on as typed (so '5' stays '5')."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return text.strip()


def _at_least(parse, low: float, strictly: bool):
    """An argparse type: parse, then insist on > low (strictly) or >= low."""

    def check(text: str):
        value = parse(text)
        if value < low or (strictly and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strictly else '>='} {low}: {text!r}")
        return value

    return check


def _float_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


_positive_float = _at_least(_float_arg, 0, strictly=True)
_non_negative_float = _at_least(_float_arg, 0, strictly=False)
_positive_int = _at_least(_int_arg, 0, strictly=True)
_non_negative_int = _at_least(_int_arg, 0, strictly=False)


if __name__ == "__main__":
    sys.exit(main())
