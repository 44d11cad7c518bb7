"""Webhook handlers, one module per event family, composed in one list."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from handlers.github import (
    check_suite,
    deployment,
    installation,
    pull_request,
    push,
    release,
    workflow_job,
    workflow_run,
)
from handlers.github.context import HandlerContext

Handler = Callable[[HandlerContext, dict[str, Any]], None]

MODULES: tuple[ModuleType, ...] = (
    workflow_run,
    workflow_job,
    check_suite,
    release,
    deployment,
    pull_request,
    installation,
    push,
)

HANDLERS: dict[str, Handler] = {
    event: module.handle for module in MODULES for event in module.EVENTS
}


def handler_for(event: str) -> Handler | None:
    """Return the handler of an event, or None for events the bot does not use."""
    return HANDLERS.get(event)
