"""The `progress` command line: create jobs, report from shell scripts, inspect and wait on jobs."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Sequence

from . import __version__, _http
from ._cli_args import (
    CREATE_HTTP_TIMEOUT,
    DEFAULT_HTTP_TIMEOUT,
    counter_arg,
    non_negative_float,
    non_negative_int,
    number_arg,
    positive_float,
    positive_int,
)
from ._cli_exit import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_USAGE
from ._cli_jobs import (
    cmd_create,
    cmd_delete,
    cmd_fail,
    cmd_info,
    cmd_ls,
    cmd_pending,
    cmd_show_url,
    cmd_update,
)
from ._cli_output import clean, error
from ._cli_run import cmd_run
from ._cli_wait import cmd_wait
from ._http import JobNotFound, ProgressError, RequestRejected

EPILOG = f"""\
The service URL comes from --url or ${_http.ENV_URL}, e.g. http://progress.example:8080
(the part before /progress/...). Where a JOBID is expected it may be left out when
${_http.ENV_JOBID} is set.

exit status:
  0  success (wait: every worker is done)
  1  the service refused the request (wait: a worker or the job failed; run: the job
     failed as a whole, so the command was not run)
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
  progress fail "$JOBID" --reason "input 17 is corrupt"
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
        error("a command is required (see progress --help)")
        return EXIT_USAGE
    try:
        base_url = _http.base_url_from(getattr(args, "url", None))
    except ValueError as exc:
        error(f"{exc} (use --url URL or set ${_http.ENV_URL})")
        return EXIT_USAGE
    try:
        if getattr(args, "takes_jobid", False):
            args.jobid = _jobid_or_env(args.jobid)
        if args.command == "run":
            args.argv = _command_or_usage_error(command)
        return args.func(args, base_url)
    except UsageError as exc:
        error(str(exc))
        return EXIT_USAGE
    except JobNotFound as exc:
        error(exc.description or f"job {clean(args.jobid)!r} not found ({exc})")
        return EXIT_NOT_FOUND
    except RequestRejected as exc:
        error(f"the service refused: {exc}")
        return EXIT_FAILED
    except ProgressError as exc:  # unreachable, 5xx, or not a progress service at that URL
        error(str(exc))
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `progress pending JOB | head -1`
        _silence_stdout()
        return EXIT_FAILED
    except Exception as exc:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("PROGRESS_DEBUG"):
            raise
        error(f"internal error: {type(exc).__name__}: {exc} (set PROGRESS_DEBUG=1 for details)")
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
        type=positive_float,
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
        "--maxage", type=positive_float, metavar="S", help="seconds the service keeps the job"
    )
    p.add_argument("--secret", help="secret that workers must send with their updates")
    p.add_argument(
        "--workers",
        type=positive_int,
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
    p.add_argument("current", metavar="CURRENT", type=number_arg, help="things done so far")
    p.add_argument("total", metavar="TOTAL", type=number_arg, help="things to do in all")
    p.add_argument("--desc", help="short status text shown next to the bar")
    p.add_argument("--failed", action="store_true", help="mark the worker as failed (red bar)")
    p.add_argument(
        "--counter",
        action="append",
        type=counter_arg,
        metavar="NAME=VALUE[:COLOUR]",
        help="set a counter shown beside the worker, e.g. --counter 'files=3:red' (a number "
        "or text; COLOUR a CSS colour name or #rrggbb); repeat for more. The worker's other "
        "counters stay as they are",
    )
    secret_option(p)
    p.add_argument(
        "--best-effort",
        action="store_true",
        help="exit 0 even if the update could not be delivered (a warning is still printed)",
    )

    p = command("show-url", cmd_show_url, "Print the URL of a job's live progress page.")
    jobid_argument(p)
    p.add_argument(
        "--interval", type=positive_float, metavar="S", help="page refresh interval in seconds"
    )
    p.add_argument("--render", action="store_true", help="print the PNG chart URL instead")

    p = command("ls", cmd_ls, "List recent jobs, newest first.")
    p.add_argument("--limit", type=positive_int, default=20, metavar="N", help="default 20")
    p.add_argument("--offset", type=non_negative_int, default=0, metavar="N", help="skip N jobs")
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
        "Block until every worker is done (exit 0), or one failed or the job did (exit 1).",
        "Polls the job's status. Exits 3 on --timeout, 4 if the job does not exist, 69 if\n"
        "the service cannot be reached (a few failed polls in a row are tolerated once it has\n"
        "answered). A job created with --workers N is done when N workers are; for other\n"
        "jobs, workers that have not reported yet are unknown to the service: use --workers N\n"
        "here when you know how many to expect.",
    )
    jobid_argument(p)
    p.add_argument(
        "--interval", type=positive_float, default=5.0, metavar="S", help="poll period (5)"
    )
    p.add_argument("--timeout", type=non_negative_float, metavar="S", help="give up after S s")
    p.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="wait until at least N workers have reported (default 1)",
    )
    p.add_argument(
        "--fail-on-stale", action="store_true", help="treat a stale worker as failed (exit 1)"
    )
    p.add_argument(
        "--max-errors", type=positive_int, default=5, metavar="N",
        help=f"give up (exit {EXIT_UNAVAILABLE}) after N failed polls in a row (default 5)",
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
        "fail",
        cmd_fail,
        "Fail the whole job: every worker that asks skips its part.",
        "The page and chart say so in red, `progress wait` exits 1, `progress run` refuses to\n"
        'start its command, the completion hook says "failed", and Python workers started\n'
        "with fail_job_on or check_job=True raise JobFailed instead of running. The first\n"
        "failure stands: failing a failed job again changes nothing.",
    )
    jobid_argument(p)
    p.add_argument("--reason", default="", help="why (shown on the page and to the workers)")
    p.add_argument("--workid", help="the worker failing it, if a worker does (default: none)")
    secret_option(p)
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on stderr")
    p.add_argument("--json", action="store_true", help="print the failure that stands as JSON")

    p = command(
        "run",
        cmd_run,
        "Run a command as one worker: running, then done, or failed with its exit status.",
        "A job failed as a whole (progress fail) is not run: exit 1. Otherwise reports\n"
        "the worker running (0%) and starts COMMAND with this terminal's stdin,\n"
        "stdout and stderr. When it ends, reports done (100%), or failed with desc\n"
        '"exit N" or "killed by SIGNAME", and exits with the command\'s own status (128+N\n'
        "for signal N, 127 when the command is not found, 126 when it cannot be started).\n"
        "SIGTERM and SIGHUP are passed on to the command, and SIGINT too unless it came from\n"
        "the terminal (which sends it to the command itself); one ignored on entry (nohup)\n"
        "stays ignored, by the command too. The service being down never stops the\n"
        "command: its reports are then dropped, with a warning.\n\n"
        "WORKID defaults to the Python client's default: $PROGRESS_WORKID, else the MPI or\n"
        "SLURM rank (SLURM_ARRAY_TASK_ID, OMPI_COMM_WORLD_RANK, PMI_RANK, SLURM_PROCID in an\n"
        "srun step), else host:pid.\n\n"
        "The command gets $PROGRESS_URL, $PROGRESS_JOBID, $PROGRESS_SECRET (if given),\n"
        "$PROGRESS_WORKID and $PROGRESS_UPDATE_URL, this worker's update URL: POST JSON such as\n"
        '{"counters": {"files": [3, "red"]}} to it to show counters beside the worker.',
    )
    p.usage = "%(prog)s [JOBID [WORKID]] [options] -- COMMAND [ARGS...]"
    jobid_argument(p)
    p.add_argument("workid", metavar="WORKID", nargs="?", help="this worker's id (see below)")
    secret_option(p)
    p.add_argument("--desc", help="status text while the command runs (default: the command line)")
    p.add_argument(
        "--heartbeat",
        type=positive_float,
        default=60.0,
        metavar="S",
        help="re-send the running state every S seconds, so a long command never looks "
        "stale (default 60)",
    )
    p.add_argument(
        "--flush-timeout",
        type=non_negative_float,
        default=5.0,
        metavar="S",
        help="wait at most S seconds for the last report to be delivered (default 5)",
    )
    return parser


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
