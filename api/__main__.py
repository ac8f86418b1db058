"""`python -m api`: serve the app with waitress, in PROGRESS_WEB_PROCESSES processes sharing one
listening socket. One waitress process is bound by the GIL to one core; the kernel hands each
new connection to whichever process accepts it first. The first process supervises the others
and starts a new one if one dies."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time

import waitress

from api import create_app
from tasks.celery_app import LOG_FORMAT
from tasks.settings import Settings

log = logging.getLogger("progress.web")


def listen(settings: Settings) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(1024)
    return sock


def serve(settings: Settings, sock: socket.socket) -> None:
    """Run one server process on the shared socket (builds the app after any fork)."""
    waitress.serve(
        create_app(settings),
        sockets=[sock],
        threads=settings.web_threads,
        connection_limit=1000,
        ident="progress",
    )


def spawn(settings: Settings, sock: socket.socket) -> int:
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            serve(settings, sock)
        except BaseException:
            log.exception("event=web_process_failed")
        finally:
            os._exit(1)
    return pid


def main() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    settings = Settings.from_env()
    sock = listen(settings)
    if settings.web_processes <= 1:
        serve(settings, sock)
        return
    children = {spawn(settings, sock) for _ in range(settings.web_processes)}

    def stop(signum, frame) -> None:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        pid, status = os.wait()
        children.discard(pid)
        log.warning("event=web_process_exited pid=%d status=%d: starting another", pid, status)
        time.sleep(1)  # a process that cannot start must not become a fork storm
        children.add(spawn(settings, sock))


if __name__ == "__main__":
    main()
