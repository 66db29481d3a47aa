"""Serving an ASGI application with hypercorn's trio worker, in the caller's trio run.

Two parts of scalper speak HTTP: the operator API (:mod:`scalper.operator.api`) and the
simulated exchange (:mod:`scalper.venues.sim.server`). Both run hypercorn inside the
caller's nursery (no thread, no second event loop), bind one address, want to know the
port the OS picked when asked for port 0, keep access logs off, do not advertise a
``Server`` header, and stop gracefully when their handle says so. :func:`serve_asgi` is that
one recipe.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import trio

__all__ = ["bind_address", "serve_asgi"]


def bind_address(host: str) -> str:
    """``host`` as it appears in a ``host:port`` bind or URL (IPv6 literals in brackets)."""
    bare = host.strip("[]")
    return f"[{bare}]" if ":" in bare else bare


async def serve_asgi(
    app: Any,
    *,
    host: str,
    port: int,
    graceful_timeout_s: float,
    errorlog: logging.Logger,
    shutdown_trigger: Callable[[], Awaitable[None]],
    then_cancel: trio.CancelScope | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port`` until ``shutdown_trigger`` returns or cancellation.

    Use with ``port = await nursery.start(serve_asgi, app, host=..., ...)``: the reported
    value is the port actually bound (useful with ``port=0``). Once the server has stopped,
    ``then_cancel`` (typically the caller's nursery scope, which also runs companion tasks
    such as the simulator's ticker) is cancelled.

    The caller decides whether ``host`` may be bound at all (both callers refuse
    non-loopback addresses unless configured otherwise); this function only serves.
    """
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.trio import serve
    from hypercorn.typing import ASGIFramework

    config = HypercornConfig()
    config.bind = [f"{bind_address(host)}:{port}"]
    config.accesslog = None
    config.errorlog = errorlog
    config.graceful_timeout = graceful_timeout_s
    config.include_server_header = False

    async def run(*, task_status: trio.TaskStatus[list[str]]) -> None:
        await serve(
            cast(ASGIFramework, app),
            config,
            shutdown_trigger=shutdown_trigger,
            task_status=task_status,
            mode="asgi",
        )

    try:
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(run)
            task_status.started(int(binds[0].rsplit(":", 1)[1]))
    finally:
        if then_cancel is not None:
            then_cancel.cancel()
