"""The operator surface of ``scalper serve``: status views, metrics, HTTP API, console.

Theory of operation
-------------------

Everything here is a client of a running :class:`scalper.system.System` (the members it
uses are :class:`~scalper.operator.target.OperatedSystem`): it reads the journal's state
between awaits and acts only through the System's commands, so an operator can never do
what a strategy could not, except halting, resuming and unfreezing a symbol (a resume or
an unfreeze is refused unless the last reconcile was clean). Exits are never blocked by
anything here (I1).

* :mod:`~scalper.operator.views`: :func:`status_document`, the JSON-ready picture
  (posture and why, halts, position envelopes, open and unknown work).
* :mod:`~scalper.operator.metrics`: Prometheus metrics read at scrape time from a private
  registry.
* :mod:`~scalper.operator.auth`: the bearer token file (0600) and constant-time checks.
* :mod:`~scalper.operator.api`: the loopback-only ASGI API served by hypercorn on trio.
* :mod:`~scalper.operator.console`: the rich live view.
"""

from scalper.operator.api import OperatorApiHandle, OperatorApp, serve_operator_api
from scalper.operator.auth import TokenFileError, load_or_create_token
from scalper.operator.console import render_console, run_console
from scalper.operator.metrics import operator_registry, render_metrics
from scalper.operator.target import OperatedSystem
from scalper.operator.views import status_document

__all__ = [
    "OperatedSystem",
    "OperatorApiHandle",
    "OperatorApp",
    "TokenFileError",
    "load_or_create_token",
    "operator_registry",
    "render_console",
    "render_metrics",
    "run_console",
    "serve_operator_api",
    "status_document",
]
