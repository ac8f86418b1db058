"""How the Celery processes' broker connections take Redis faults: fixes to kombu 5.7's Redis
transport (with Celery 5.7 and redis-py 8), applied when tasks.celery_app is imported, so that a
worker waits out a fault and reconnects instead of exiting. Each was seen by experiment
(tests/test_worker_recovery.py).

1. A Redis that became a replica (a failover, an operator's REPLICAOF) is a connection fault.
   - It first ends every blocked BRPOP with `-UNBLOCKED ... (master -> replica?)`, a plain
     ResponseError to redis-py, which kombu's consumer does not recover from: "Unrecoverable
     error: server:ResponseError", the worker exits. redis-py now raises RoleChanged, a
     ConnectionError, for that reply.
   - Then it answers every write, kombu's own SET of its restore mutex included, with
     READONLY: a channel error to kombu, and the worker exits again on every start. ReadOnlyError
     is added to the transport's connection errors, so the consumer reconnects.
   - A connection to a replica succeeds (PING answers), so without more the consumer would
     reconnect and fail again at once, five times a second, logging each. Connecting now asks
     the server's ROLE and fails with ReadOnlyError on a replica, which Celery retries with
     its usual growing interval, one line each time, until a master answers at that address.
   (LOADING, a restarted Redis reading its append-only file, is a connection error already.)

2. Closing a channel whose transport is already closed restores nothing instead of crashing.
   When the broker connection breaks, Celery's consumer first `collect()`s the connection and
   then closes it. `collect()` tries to close the default channel, which fails half-way on the
   dead socket (the channel is left open) and then detaches the transport from its connection
   (`transport.client = None`). The close that follows closes that channel again, and its
   restore of unacknowledged messages needs a new connection pool, built from
   `transport.client.hostname`: AttributeError, which no one catches, and the worker exits
   ("Unrecoverable error: AttributeError(\"'NoneType' object has no attribute 'hostname'\")").
   The messages it would have restored stay in kombu's unacked hash in Redis, which every
   worker's transport puts back on their queues once the visibility timeout has passed (and
   our own records re-send the work sooner: tasks.pipeline's sweep).
"""

from __future__ import annotations

import logging

from kombu.transport import redis as redis_transport
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError, ReadOnlyError

log = logging.getLogger("progress.broker")


class RoleChanged(ConnectionError):
    """-UNBLOCKED: the server ended a blocking command because it is no longer the master."""


def _restore_unacked(self: redis_transport.QoS, client=None) -> None:
    if client is None and self.channel.connection.client is None:
        log.warning(
            "event=restore_unacked_skipped messages=%d reason=connection_closed",
            len(self._delivered),
        )
        self._delivered.clear()  # left to the visibility timeout (see the module's docstring)
        return
    _restore_unacked.original(self, client)


def _establish_connection(self: redis_transport.Transport):
    connection = _establish_connection.original(self)
    channel = self._avail_channels[-1]  # the channel that verified the connection
    role = channel.client.execute_command("ROLE")[0]
    if role not in (b"master", "master"):
        self._avail_channels.remove(channel)
        channel.close()
        role = role.decode() if isinstance(role, bytes) else role
        raise ReadOnlyError(f"the broker at this address is a {role}, not the master")
    return connection


def install() -> None:
    """Apply the fixes (once)."""
    transport = redis_transport.Transport
    if ReadOnlyError in transport.connection_errors:
        return
    BaseParser.EXCEPTION_CLASSES["UNBLOCKED"] = RoleChanged
    # kombu.Connection reads the transport class's tuple; SentinelTransport inherits it.
    transport.connection_errors = (*transport.connection_errors, ReadOnlyError)
    _establish_connection.original = transport.establish_connection
    transport.establish_connection = _establish_connection
    _restore_unacked.original = redis_transport.QoS.restore_unacked
    redis_transport.QoS.restore_unacked = _restore_unacked
