"""StatusDashboard: the publish status of one release, persisted, fed by scripts and by webhooks.

Overall status of a release, from its stages in stage order. Stages are ordered by start
time, or by finish time for a stage never seen running. Stages that have neither come last, in
the order they were added. The first rule that matches decides:

1. No stages, or every stage PENDING: PENDING.
2. A stage FAILED or CANCELLED while another is still PENDING or IN_PROGRESS: FAILED, because
   the release can no longer complete. It may turn PARTIAL once every stage has finished.
3. Any stage IN_PROGRESS, or some stages finished and others PENDING: IN_PROGRESS.
4. Every stage has finished (COMPLETED, FAILED, CANCELLED or SKIPPED):
   a. all COMPLETED: COMPLETED;
   b. all SKIPPED: SKIPPED;
   c. none COMPLETED: FAILED;
   d. a FAILED or CANCELLED stage before the last COMPLETED one (a failure in the middle): FAILED;
   e. FAILED, CANCELLED or SKIPPED stages only after the last COMPLETED one (at the end): PARTIAL;
   f. otherwise (SKIPPED stages between COMPLETED ones): COMPLETED.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from bot.engines import resolve_engine
from bot.render.plain import format_duration, printable
from storage import releases
from storage.db import session_scope
from storage.models_release import PublishStatus, ReleaseDashboard, ReleaseStage

logger = logging.getLogger(__name__)

__all__ = ["PublishStatus", "StatusDashboard", "overall_status"]

FAILURES = frozenset({PublishStatus.FAILED, PublishStatus.CANCELLED})
UNFINISHED = frozenset({PublishStatus.PENDING, PublishStatus.IN_PROGRESS})
STAGE_STATUSES = tuple(status for status in PublishStatus if status != PublishStatus.PARTIAL)
ICONS = {
    PublishStatus.PENDING: "·",
    PublishStatus.IN_PROGRESS: "…",
    PublishStatus.COMPLETED: "✓",
    PublishStatus.FAILED: "✗",
    PublishStatus.SKIPPED: "-",
    PublishStatus.CANCELLED: "⊘",
    PublishStatus.PARTIAL: "◐",
}
MAX_MESSAGE_CHARS = 200


def overall_status(statuses: Sequence[PublishStatus]) -> PublishStatus:
    """Return a release's status from its stages' statuses in stage order (rules in the module docstring)."""
    if not statuses or all(status == PublishStatus.PENDING for status in statuses):
        return PublishStatus.PENDING
    unfinished = any(status in UNFINISHED for status in statuses)
    if unfinished and any(status in FAILURES for status in statuses):
        return PublishStatus.FAILED
    if unfinished:
        return PublishStatus.IN_PROGRESS
    if all(status == PublishStatus.COMPLETED for status in statuses):
        return PublishStatus.COMPLETED
    if all(status == PublishStatus.SKIPPED for status in statuses):
        return PublishStatus.SKIPPED
    completed_at = [index for index, status in enumerate(statuses) if status == PublishStatus.COMPLETED]
    if not completed_at:
        return PublishStatus.FAILED
    last_completed = completed_at[-1]
    if any(status in FAILURES for status in statuses[:last_completed]):
        return PublishStatus.FAILED
    if any(status != PublishStatus.COMPLETED for status in statuses[last_completed + 1 :]):
        return PublishStatus.PARTIAL
    return PublishStatus.COMPLETED


def check_status(status: object) -> PublishStatus:
    """Return a stage status, or raise ValueError naming the accepted values."""
    try:
        checked = PublishStatus(status.value if isinstance(status, PublishStatus) else status)
    except ValueError:
        checked = None
    if checked is None or checked == PublishStatus.PARTIAL:
        names = ", ".join(f"PublishStatus.{member.name}" for member in STAGE_STATUSES)
        raise ValueError(f"invalid stage status {status!r}: use one of {names}")
    return checked


def iso(moment: Any) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


class StatusDashboard:
    """The persisted publish status of one version of one repository.

    `repo` is `owner/name` (stored in lower case), or empty for scripts that publish outside
    a repository. Setting `current_version` selects the release, creating it if needed; a
    leading `v` before a digit is dropped, so `v1.0.0` and `1.0.0` are the same release.
    """

    def __init__(
        self,
        repo: str | None = None,
        version: str | None = None,
        *,
        engine: Engine | None = None,
        database_url: str | None = None,
    ) -> None:
        if repo is not None and not isinstance(repo, str):
            raise ValueError(f"invalid repo {repo!r}: expected 'owner/name'")
        self.repo = (repo or "").strip().lower()
        self.engine = resolve_engine(engine, database_url)
        self._version: str | None = None
        if version is not None:
            self.current_version = version

    @property
    def current_version(self) -> str | None:
        """The version this dashboard shows, or None before one is set."""
        return self._version

    @current_version.setter
    def current_version(self, version: str) -> None:
        normalized = releases.normalize_version(version)
        with session_scope(self.engine) as session:
            releases.ensure_dashboard(session=session, repo=self.repo, version=normalized)
        self._version = normalized

    def _dashboard(self, session: Session) -> ReleaseDashboard:
        if self._version is None:
            raise ValueError("no release selected: set current_version first, such as dashboard.current_version = '1.0.0'")
        return releases.ensure_dashboard(session=session, repo=self.repo, version=self._version)

    def update_status(self, stage: str, status: PublishStatus | str, message: str = "") -> None:
        """Set a stage's status and message; IN_PROGRESS after a final status starts a retry."""
        if not isinstance(stage, str) or not stage.strip():
            raise ValueError(f"invalid stage name {stage!r}: expected a non-empty string such as 'build'")
        if len(stage) > releases.MAX_STAGE_LENGTH:
            raise ValueError(f"invalid stage name {stage[:40]!r}...: longer than {releases.MAX_STAGE_LENGTH} characters")
        if not isinstance(message, str):
            raise ValueError(f"invalid message {message!r}: expected a string")
        checked = check_status(status)
        with session_scope(self.engine) as session:
            dashboard = self._dashboard(session)
            releases.set_stage_status(session=session, dashboard=dashboard, name=stage, status=checked, message=message)
        logger.info(
            "release stage updated",
            extra={"repo": self.repo, "version": self._version, "stage": stage, "status": checked.value},
        )

    def _load(self) -> tuple[ReleaseDashboard, list[ReleaseStage]]:
        with session_scope(self.engine) as session:
            dashboard = self._dashboard(session)
            return dashboard, releases.list_stages(session=session, dashboard=dashboard)

    def get_current_status(self) -> dict[str, Any]:
        """Return the version, the overall status and each stage's status, in stage order."""
        _, stages = self._load()
        statuses = [PublishStatus(stage.status) for stage in stages]
        return {
            "repo": self.repo,
            "version": self._version,
            "status": overall_status(statuses),
            "stages": {stage.name: status for stage, status in zip(stages, statuses, strict=True)},
        }

    def export_status(self) -> dict[str, Any]:
        """Return the release's status as JSON-ready values for a monitoring system."""
        dashboard, stages = self._load()
        statuses = [PublishStatus(stage.status) for stage in stages]
        return {
            "repo": self.repo,
            "version": self._version,
            "status": overall_status(statuses).value,
            "updated_at": iso(dashboard.updated_at),
            "counts": dict(Counter(status.value for status in statuses)),
            "stages": [
                {
                    "name": stage.name,
                    "status": stage.status,
                    "message": stage.message,
                    "started_at": iso(stage.started_at),
                    "completed_at": iso(stage.completed_at),
                    "duration_s": stage.duration_s,
                    "job_id": stage.job_id,
                    "run_id": stage.run_id,
                    "run_attempt": stage.run_attempt,
                    "html_url": stage.html_url,
                    "updated_at": iso(stage.updated_at),
                }
                for stage in stages
            ],
        }

    def render_dashboard(self) -> str:
        """Render the release's status as plain text; names and messages are shown literally."""
        _, stages = self._load()
        statuses = [PublishStatus(stage.status) for stage in stages]
        overall = overall_status(statuses)
        where = f" of {printable(self.repo)}" if self.repo else ""
        lines = [f"Release {printable(self._version)}{where}: {ICONS[overall]} {overall.value.upper()}"]
        if not stages:
            lines.append("  (no stages yet)")
            return "\n".join(lines)

        names = [printable(stage.name) for stage in stages]
        name_width = max(len(name) for name in names)
        status_width = max(len(status.value) for status in statuses)
        for stage, name, status in zip(stages, names, statuses, strict=True):
            duration = format_duration(stage.duration_s) if stage.duration_s is not None else ""
            message = printable(stage.message)[:MAX_MESSAGE_CHARS] if stage.message else ""
            line = f"  {ICONS[status]} {name.ljust(name_width)}  {status.value.ljust(status_width)}  {duration:>7}  {message}"
            lines.append(line.rstrip())
        return "\n".join(lines)
