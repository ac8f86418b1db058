"""`progress run`: run a command as one worker, pass it the signals meant to end it, and
report how it ended."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
from typing import Any

from . import _sender, flush
from ._cli_args import http_timeout
from ._cli_exit import EXIT_CANNOT_EXECUTE, EXIT_COMMAND_NOT_FOUND, EXIT_FAILED
from ._cli_output import error, failure_text
from ._http import ProgressError
from .job import Job

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def cmd_run(args: argparse.Namespace, base_url: str) -> int:
    job = Job(base_url, args.jobid, secret=args.secret, timeout=http_timeout(args))
    failure = _job_failure(job)
    if failure:
        error(f"not running {args.argv[0]!r}: {failure_text(failure)}")
        return EXIT_FAILED
    desc = args.desc if args.desc is not None else shlex.join(args.argv)
    # Signals stay forwarded until the end, so one arriving during the last report cannot
    # end `progress run` before it has said how the command ended.
    with _ForwardedSignals() as forwarding:
        # No WORKID: the client's default, from the launcher's variables (see --help).
        worker = job.worker(args.workid, total=1, desc=desc)
        try:
            # The command learns its job and worker, and its update URL ($PROGRESS_UPDATE_URL:
            # a script may POST its own counters there, as ARP's do to $BATCH_UPDATE_URL).
            child = subprocess.Popen(args.argv, env={**os.environ, **job.env(worker.workid)})
        except OSError as exc:
            status = _shell_status_for(exc)
            error(f"cannot run {args.argv[0]!r}: {exc.strerror or exc}")
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


def _job_failure(job: Job) -> dict[str, Any] | None:
    """The job's failure as a whole, if it failed: then the command must not run. A service
    that cannot tell (down, no such job) never stops the command."""
    try:
        return job.failed()
    except ProgressError:
        return None


def _deliver_last_report(worker: Any, timeout: float) -> None:
    """Wait at most `timeout` seconds in all for the last report, even to a service that is
    down, so that a rank of a big launch never lingers: when the report is still undelivered,
    the exit flush is turned off, or it would wait again. (Delivered, the process keeps its
    exit flush for whatever a program calling main() reports later.)"""
    worker.close(0)
    if not flush(timeout):
        _sender.set_exit_flush_timeout(0)


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
