"""Filters of metric reads, and whether the daily rollups can serve them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement

from storage.models import Metric

# Tags that are also columns, so filters on them can use an index.
COLUMN_TAGS = ("repo", "workflow", "branch", "conclusion")


def as_utc(moment: datetime | None) -> datetime | None:
    """Return an aware UTC datetime; a naive one is taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class MetricFilter:
    """Conditions on the points a read covers, all of which must match. `since` is inclusive, `until` is not."""

    metric_type: str | None = None
    name: str | None = None
    tags: dict[str, str] | None = None
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """Return the SQL conditions of this filter."""
        conditions: list[ColumnElement[bool]] = []
        if self.metric_type is not None:
            conditions.append(Metric.metric_type == self.metric_type)
        if self.name is not None:
            conditions.append(Metric.name == self.name)
        if self.since is not None:
            conditions.append(Metric.timestamp >= as_utc(self.since))
        if self.until is not None:
            conditions.append(Metric.timestamp < as_utc(self.until))
        for key, value in (self.tags or {}).items():
            if key in COLUMN_TAGS:
                conditions.append(getattr(Metric, key) == value)
            else:
                conditions.append(Metric.tags[key].as_string() == value)  # type: ignore[index]
        return conditions

    def rollup_repo(self) -> tuple[bool, str | None]:
        """Tell whether the rollups can serve this filter, and for which repo (None: all).

        The rollups are kept per metric type, repo and day, so only filters on those and on
        time qualify. An empty repo value does not, because it means "no repo tag" there.
        """
        tags = self.tags or {}
        if self.name is not None or set(tags) - {"repo"}:
            return False, None
        repo = tags.get("repo")
        if repo == "":
            return False, None
        return True, repo
