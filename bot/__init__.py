"""release-bot: GitHub Actions runs as data for Slack, pull requests and alerts.

The Python API for release scripts is importable from here: `from bot import MetricsTracker,
MetricType, BuildProfiler, StatusDashboard, PublishStatus, FailureAlerter, AlertChannel`.
The names load on first use, so `import bot.config` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.alerter import AlertChannel as AlertChannel
    from bot.alerter import FailureAlerter as FailureAlerter
    from bot.dashboard import PublishStatus as PublishStatus
    from bot.dashboard import StatusDashboard as StatusDashboard
    from bot.profiler import BuildProfiler as BuildProfiler
    from bot.tracker import MetricsTracker as MetricsTracker
    from bot.tracker import MetricType as MetricType

EXPORTS = {
    "MetricsTracker": "bot.tracker",
    "MetricType": "bot.tracker",
    "BuildProfiler": "bot.profiler",
    "StatusDashboard": "bot.dashboard",
    "PublishStatus": "bot.dashboard",
    "FailureAlerter": "bot.alerter",
    "AlertChannel": "bot.alerter",
}

__all__ = list(EXPORTS)


def __getattr__(name: str) -> Any:
    module = EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bot' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
