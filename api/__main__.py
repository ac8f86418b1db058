"""`python -m api`: serve the app with waitress, in PROGRESS_WEB_PROCESSES processes sharing one
listening socket. One waitress process is bound by the GIL to one core; the kernel hands each
new connection to whichever process accepts it first. The first process supervises the others
and starts a new one if one dies."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import socket
import threading
import time

from api import create_app
from api.operations import RequestLog
from api.server import create_server
from domain import logs
from tasks.runtime import build_pipeline, connect
from tasks.settings import Settings
from tasks.store import Store

log = logging.getLogger("progress.web")


def listen(settings: Settings) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(settings.web_backlog)
    return sock


def serve(settings: Settings, sock: socket.socket) -> None:
    """Run one server process on the shared socket (builds the app after any fork)."""
    store = Store(connect(settings))
    request_log = RequestLog(store)
    pipeline = build_pipeline(store, settings)
    # Each web process knows its store before its first write: else one that first writes after
    # the store lost its data would take it for a new store (tasks/identity.py).
    threading.Thread(target=pipeline.identity.learn, name="learn-store", daemon=True).start()
    app = create_app(settings, store, pipeline, request_log=request_log)
    create_server(app, sock, server_options(settings), settings, request_log).run()


def server_options(settings: Settings) -> dict:
    """waitress's limits, from the settings (README, "Limits and memory")."""
    return {
        "threads": settings.web_threads,
        # poll(), not select(): select() cannot watch a descriptor past 1023, and a process
        # holding a thousand connections has such descriptors.
        "asyncore_use_poll": True,
        "connection_limit": settings.web_connection_limit,
        "backlog": settings.web_backlog,
        "channel_timeout": settings.web_channel_timeout,
        # Idle connections, and those slow to send their headers (api/server.py), are looked for
        # every second: a pass over the connections costs about a millisecond per thousand.
        "cleanup_interval": 1,
        # A body over the service's own limit is refused (413) before it is read, let alone
        # spooled to disk. waitress refuses a body of max_request_body_size bytes or more; one
        # of exactly PROGRESS_MAX_BODY_BYTES is allowed, as the app allows it.
        "max_request_body_size": settings.max_body_bytes + 1,
        "max_request_header_size": settings.web_max_request_header_size,
        "inbuf_overflow": settings.web_inbuf_overflow,
        "ident": "progress",
    }


def raise_descriptor_limit(settings: Settings) -> None:
    """Lift the soft RLIMIT_NOFILE to the hard one (often 1024 of 1048576), so that
    connection_limit connections, plus Redis connections and log files, can be open at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit cannot be the soft one: the kernel caps it at fs.nr_open.
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning(
                "event=rlimit_nofile_not_raised soft=%d hard=%d error=%s",
                soft,
                hard,
                logs.quote(exc),
            )
    needed = settings.web_connection_limit + settings.web_threads + 64
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "event=rlimit_nofile_low limit=%d needed=%d hint=%s",
            soft,
            needed,
            logs.quote(
                "raise the hard limit (LimitNOFILE=, ulimit -Hn) "
                "or lower PROGRESS_WEB_CONNECTION_LIMIT"
            ),
        )


def spawn(settings: Settings, sock: socket.socket) -> int:
    supervisor = os.getpid()
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        threading.Thread(target=_exit_if_orphaned, args=(supervisor,), daemon=True).start()
        try:
            serve(settings, sock)
        except BaseException:
            log.exception("event=web_process_failed")
        finally:
            os._exit(1)
    return pid


def _exit_if_orphaned(supervisor: int) -> None:
    """A server whose supervisor was killed stops too, rather than hold the port forever."""
    while os.getppid() == supervisor:
        time.sleep(1)
    os._exit(0)


def main() -> None:
    logs.setup(logging.INFO)
    settings = Settings.from_env()
    raise_descriptor_limit(settings)
    sock = listen(settings)
    if settings.web_processes <= 1:
        serve(settings, sock)
        return
    children = {spawn(settings, sock) for _ in range(settings.web_processes)}
    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while children:
        pid, status = os.wait()
        children.discard(pid)
        if stopping:
            continue
        log.warning("event=web_process_exited pid=%d status=%d action=restart", pid, status)
        time.sleep(1)  # a process that cannot start must not become a fork storm
        if not stopping:
            children.add(spawn(settings, sock))


if __name__ == "__main__":
    main()
