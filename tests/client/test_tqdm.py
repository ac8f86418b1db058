"""`from progress_client import tqdm`: in a real terminal it draws exactly what tqdm draws, and
the service receives the progress."""

from __future__ import annotations

import errno
import fcntl
import io
import os
import struct
import subprocess
import sys
import termios
import textwrap
import time

import progress_client
import pytest
from progress_client import Job, tqdm  # tqdm is in the dev extra: if missing, fail, not skip

from .conftest import eventually

BARS = textwrap.dedent(
    """
    import sys
    if sys.argv[1] == "plain":
        from tqdm import tqdm, trange
        ours = {}, {}
    else:
        from progress_client import tqdm, trange
        ours = {"workid": "second"}, {"workid": "third"}
    # Every redraw on every step, and no rate or elapsed time: the same bytes on every run.
    same = dict(mininterval=0, miniters=1, ncols=70, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt}")
    for _ in tqdm(range(20), desc="files", **same):
        pass
    for _ in trange(5, desc="inner", leave=False, **same, **ours[0]):
        pass
    with tqdm(total=4, desc="manual", **same, **ours[1]) as bar:
        bar.update(3)
        bar.set_description("almost")
    """
)


def run_in_terminal(args: list, env: dict) -> bytes:
    """Run a program with a pseudo-terminal as stdin, stdout and stderr; return what it drew."""
    leader, follower = os.openpty()
    # A new pty is 0 x 0, where tqdm draws nothing; give it a terminal's usual 24 x 80.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(args, stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError as exc:  # EIO: the program ended and closed the terminal
            if exc.errno != errno.EIO:
                raise
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert proc.wait(60) == 0, output.decode(errors="replace")
    return output


def test_draws_exactly_what_tqdm_draws_and_reports(live_url):
    job = Job.create(live_url, desc="tqdm drop-in")
    env = {**os.environ, **job.env(), "PROGRESS_WORKID": "bar"}
    plain = run_in_terminal([sys.executable, "-c", BARS, "plain"], env)
    ours = run_in_terminal([sys.executable, "-c", BARS, "ours"], env)
    assert "files: 100%" in plain.decode() and "20/20" in plain.decode()
    assert ours == plain

    def reported():
        rows = {r["workid"]: r for r in job.status()["workers"]}
        return len(rows) == 3 and rows["third"]["desc"] == "almost" and rows

    rows = eventually(reported, 30, "three bars")
    shown = {w: (r["state"], r["current"], r["total"], r["desc"]) for w, r in rows.items()}
    assert shown == {
        "bar": ("done", 20, 20, "files"),
        "second": ("done", 5, 5, "inner"),
        "third": ("running", 3, 4, "almost"),  # closed at 3 of 4: not done
    }


def test_an_exception_in_a_with_block_fails_the_worker(live_url):
    job = Job.create(live_url, desc="tqdm failure")
    with pytest.raises(ValueError):
        with tqdm(total=10, job=job, workid="boom") as bar:
            bar.update(3)
            raise ValueError("bad record")
    assert progress_client.flush(30)
    rows = eventually(lambda: job.status()["workers"], 30, "the bar's worker")
    assert (rows[0]["state"], rows[0]["desc"], rows[0]["percent"]) == ("failed", "ValueError", 30)


def test_closing_bars_does_not_wait_for_a_service_that_never_answers(silent_url):
    """tqdm's own Slack and Telegram bars never wait on close: nor do ours. A close that waited
    for delivery (up to 2 s per bar) would stall nested bars or bars in a loop; the last states
    go out in the background, or with the flush at exit."""
    job = Job(silent_url, "tqdm hangs")
    started = time.monotonic()
    with tqdm(range(3), job=job, workid="outer", disable=False, file=io.StringIO()) as outer:
        for _ in outer:
            for _ in tqdm(range(2), job=job, workid="inner", file=io.StringIO(), leave=False):
                pass
    closing_took = time.monotonic() - started
    assert closing_took < 1.0, f"closing 4 bars took {closing_took:.1f}s"
    assert progress_client.queued() >= 1  # the states wait for the service, not the caller


def test_the_package_imports_without_tqdm_and_names_the_extra():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["tqdm"] = None  # as if tqdm were not installed
        import progress_client
        from progress_client import Job
        try:
            from progress_client import tqdm
        except ImportError as exc:
            print(exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pip install 'progress-client[tqdm]'" in done.stdout
