"""The test harness itself: a service that fails to start leaves no process behind (a fixture
that fails in its set-up never reaches the teardown that would stop it)."""

from __future__ import annotations

import pytest

from tests.conftest import FAST
from tests.harness import Service


def test_a_service_that_does_not_answer_in_time_is_stopped(redis_server, tmp_path):
    service = Service(redis_server.url, tmp_path, FAST, start_timeout=0.01)
    try:
        with pytest.raises(AssertionError, match="the web process to answer"):
            service.start()
        assert service.procs == {}  # each was killed by its process group and waited for
    finally:
        service.stop()  # only if the harness left them running
