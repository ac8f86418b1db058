"""asyncio support: run a blocking call in a thread so the event loop never waits on the
network (asyncio.to_thread is Python 3.9+, the client supports 3.8)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from typing import Any, Callable, TypeVar

T = TypeVar("T")


async def off_loop(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Await `func(*args, **kwargs)` run in the loop's default thread pool."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await loop.run_in_executor(None, call)
