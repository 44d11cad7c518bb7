"""`release-bot metric`: record a metric point from a CI job, and print statistics."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import typer

from storage.models import MetricType

metric_app = typer.Typer(
    help="Record metric points and print their statistics.", no_args_is_help=True
)

TYPE_HELP = "Metric type: " + ", ".join(member.value for member in MetricType) + "."


def parse_tags(pairs: list[str]) -> dict[str, str]:
    """Parse repeated `--tag KEY=VALUE` options; raise ValueError naming a malformed one."""
    tags: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"invalid --tag {pair!r}: use KEY=VALUE, such as --tag branch=main")
        tags[key.strip()] = value
    return tags


def parse_value(text: str) -> float:
    """Parse a metric value; raise ValueError unless it is a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"invalid value {text!r}: expected a number, such as 45.5") from None
    if not math.isfinite(value):
        raise ValueError(f"invalid value {text!r}: expected a finite number, not NaN or infinity")
    return value


def parse_timestamp(text: str | None) -> datetime | None:
    """Parse an ISO 8601 time; a `Z` suffix or no offset means UTC."""
    if text is None:
        return None
    clean = text.strip()
    if clean.endswith(("Z", "z")):
        clean = clean[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(clean)
    except ValueError:
        raise ValueError(
            f"invalid --timestamp {text!r}: use ISO 8601, such as 2024-06-03T09:00:00Z"
        ) from None


def open_tracker() -> Any:
    """Return a MetricsTracker on the configured database, or exit with the configuration error."""
    from bot.cli import settings_or_exit
    from bot.tracker import MetricsTracker

    settings = settings_or_exit(quiet=True)
    return MetricsTracker(settings.database_url)


@metric_app.command("record")
def record(
    name: str = typer.Argument(..., help="Metric name, such as build_time."),
    value: str = typer.Argument(..., help="Value in the metric's unit (seconds for times)."),
    metric_type: str = typer.Option(MetricType.CUSTOM.value, "--type", help=TYPE_HELP),
    tag: list[str] = typer.Option([], "--tag", help="Tag as KEY=VALUE; repeat for more tags."),
    timestamp: str = typer.Option(
        None, "--timestamp", help="When it was measured, ISO 8601 [default: now]."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the stored point as JSON."),
) -> None:
    """Record one metric point in the bot's database; it shows in the bot's statistics at once."""
    from bot.cli import fail

    try:
        number = parse_value(value)
        tags = parse_tags(tag)
        moment = parse_timestamp(timestamp)
        point = open_tracker().record_metric(name, number, metric_type, tags=tags, timestamp=moment)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    if as_json:
        typer.echo(json.dumps(point.to_dict()))
        return
    typer.echo(
        f"recorded {point.name} = {point.value:g} ({point.metric_type.value}) at {point.to_dict()['timestamp']}, id {point.id}"
    )


@metric_app.command("stats")
def stats(
    metric_type: str = typer.Option(MetricType.BUILD_TIME.value, "--type", help=TYPE_HELP),
    tag: list[str] = typer.Option(
        [], "--tag", help="Only points with this tag, as KEY=VALUE; repeatable."
    ),
    since: str = typer.Option(
        None, "--since", help="Window start: 7d, 12h or an ISO 8601 time [default: all]."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Print count, mean, min, max, percentiles and stddev of one metric type."""
    from bot.cli import fail

    try:
        result = open_tracker().calculate_statistics(metric_type, parse_tags(tag) or None, since)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    if as_json:
        typer.echo(json.dumps({"metric": metric_type, **result}))
        return
    typer.echo(f"{metric_type}: {result['count']} points")
    for key in ("mean", "min", "p50", "p90", "p95", "p99", "max", "stddev", "total"):
        if result[key] is not None:
            typer.echo(f"  {key:<6} {result[key]:.3f}")
    if not result["percentiles_exact"]:
        typer.echo("  (percentiles estimated from the histogram, within 0.5 %)")
