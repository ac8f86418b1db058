"""`python -m api`: serve the app with waitress, in PROGRESS_WEB_PROCESSES processes sharing one
listening socket. One waitress process is bound by the GIL to one core; the kernel hands each
new connection to whichever process accepts it first. The first process supervises the others
and starts a new one if one dies."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time

import waitress

from api import create_app
from tasks.settings import LOG_FORMAT, Settings

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
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    settings = Settings.from_env()
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
        log.warning("event=web_process_exited pid=%d status=%d: starting another", pid, status)
        time.sleep(1)  # a process that cannot start must not become a fork storm
        if not stopping:
            children.add(spawn(settings, sock))


if __name__ == "__main__":
    main()
