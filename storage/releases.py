"""Release dashboards: one per repository and version, with stages set by scripts or by jobs.

A stage set through the Python API takes the status it is given. A stage fed by a
`workflow_job` event follows its stored job, whose status only moves forward, and is
refreshed from the `job` table whenever the dashboard is read, so jobs closed by their run's
completion show too.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session

from storage.db import upsert_insert
from storage.jobs import JobRecord
from storage.metric_filter import as_utc
from storage.models import Job
from storage.models_release import PublishStatus, ReleaseDashboard, ReleaseStage
from storage.runs import seconds_between
from storage.types import utc_now

FINAL_STATUSES = frozenset(
    {PublishStatus.COMPLETED, PublishStatus.FAILED, PublishStatus.SKIPPED, PublishStatus.CANCELLED}
)
MAX_VERSION_LENGTH = 255
MAX_STAGE_LENGTH = 255
# `v1.2.0` and `1.2.0` name the same release: a `v` directly before a digit is dropped.
LEADING_V = re.compile(r"^[vV](?=\d)")

JOB_CONCLUSIONS = {
    "success": PublishStatus.COMPLETED,
    "failure": PublishStatus.FAILED,
    "timed_out": PublishStatus.FAILED,
    "startup_failure": PublishStatus.FAILED,
    "action_required": PublishStatus.FAILED,
    "cancelled": PublishStatus.CANCELLED,
    "skipped": PublishStatus.SKIPPED,
    "neutral": PublishStatus.SKIPPED,
    "stale": PublishStatus.SKIPPED,
}


def normalize_version(version: object) -> str:
    """Return the version key of a release, or raise ValueError unless it is a non-empty string."""
    if not isinstance(version, str) or not version.strip():
        raise ValueError(f"invalid version {version!r}: expected a non-empty string such as '1.0.0'")
    text = LEADING_V.sub("", version.strip())
    if len(text) > MAX_VERSION_LENGTH:
        raise ValueError(f"invalid version {text[:40]!r}...: longer than {MAX_VERSION_LENGTH} characters")
    return text


def job_status(status: str | None, conclusion: str | None) -> PublishStatus:
    """Map a job's status and conclusion to a stage status."""
    if status == "completed":
        return JOB_CONCLUSIONS.get(conclusion or "", PublishStatus.COMPLETED if not conclusion else PublishStatus.FAILED)
    if status == "in_progress":
        return PublishStatus.IN_PROGRESS
    return PublishStatus.PENDING


def ensure_dashboard(*, session: Session, repo: str, version: str, release_id: int | None = None) -> ReleaseDashboard:
    """Return the dashboard of a repo and version, creating it if needed (safe against a concurrent insert)."""
    now = utc_now()
    table = ReleaseDashboard.__table__  # type: ignore[attr-defined]
    session.execute(
        upsert_insert(session.get_bind().dialect.name)(table)
        .values(repo=repo, version=version, release_id=release_id, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["repo", "version"])
    )
    dashboard = session.scalars(
        select(ReleaseDashboard).where(ReleaseDashboard.repo == repo, ReleaseDashboard.version == version)
    ).one()
    if release_id is not None and dashboard.release_id is None:
        dashboard.release_id = release_id
        session.add(dashboard)
    return dashboard


def get_dashboard(*, session: Session, repo: str, version: str) -> ReleaseDashboard | None:
    """Return the dashboard of a repo and version, if it exists."""
    return session.scalars(
        select(ReleaseDashboard).where(ReleaseDashboard.repo == repo, ReleaseDashboard.version == version)
    ).first()


def list_dashboards(*, session: Session, repo: str | None = None, limit: int = 20) -> list[ReleaseDashboard]:
    """Return dashboards, most recently updated first."""
    statement = select(ReleaseDashboard).order_by(ReleaseDashboard.updated_at.desc()).limit(limit)  # type: ignore[attr-defined]
    if repo is not None:
        statement = statement.where(ReleaseDashboard.repo == repo)
    return list(session.scalars(statement).all())


def stage_order(stage: ReleaseStage) -> tuple[int, datetime, int]:
    """Order stages by when they started (or finished, if never seen running); unseen ones last."""
    moment = as_utc(stage.started_at or stage.completed_at)
    if moment is None:
        return (1, datetime.min.replace(tzinfo=utc_now().tzinfo), stage.position)
    return (0, moment, stage.position)


def list_stages(*, session: Session, dashboard: ReleaseDashboard) -> list[ReleaseStage]:
    """Return a dashboard's stages in stage order, after refreshing those that follow a job."""
    stages = list(session.scalars(select(ReleaseStage).where(ReleaseStage.dashboard_id == dashboard.id)).all())
    job_ids = [stage.job_id for stage in stages if stage.job_id is not None]
    if job_ids:
        jobs = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(job_ids)))}  # type: ignore[attr-defined]
        for stage in stages:
            job = jobs.get(stage.job_id)  # type: ignore[arg-type]
            if job is not None:
                apply_job(stage, job)
                session.add(stage)
    return sorted(stages, key=stage_order)


def _next_position(session: Session, dashboard_id: int) -> int:
    current = session.scalar(select(func.max(ReleaseStage.position)).where(ReleaseStage.dashboard_id == dashboard_id))
    return int(current or 0) + 1


def _stage_by_name(session: Session, dashboard_id: int, name: str) -> ReleaseStage | None:
    return session.scalars(
        select(ReleaseStage).where(ReleaseStage.dashboard_id == dashboard_id, ReleaseStage.name == name)
    ).first()


def _new_stage(session: Session, dashboard: ReleaseDashboard, name: str) -> ReleaseStage:
    """Insert an empty pending stage (or find the one a concurrent writer inserted) and return it."""
    table = ReleaseStage.__table__  # type: ignore[attr-defined]
    session.execute(
        upsert_insert(session.get_bind().dialect.name)(table)
        .values(
            dashboard_id=dashboard.id,
            name=name,
            status=PublishStatus.PENDING.value,
            message="",
            position=_next_position(session, dashboard.id),  # type: ignore[arg-type]
            updated_at=utc_now(),
        )
        .on_conflict_do_nothing(index_elements=["dashboard_id", "name"])
    )
    stage = _stage_by_name(session, dashboard.id, name)  # type: ignore[arg-type]
    assert stage is not None
    return stage


def set_stage_status(
    *, session: Session, dashboard: ReleaseDashboard, name: str, status: PublishStatus, message: str = ""
) -> ReleaseStage:
    """Set a stage's status and message as given, recording when it started and finished."""
    stage = _stage_by_name(session, dashboard.id, name) or _new_stage(session, dashboard, name)  # type: ignore[arg-type]
    now = utc_now()
    previous = PublishStatus(stage.status)
    if status == PublishStatus.IN_PROGRESS and (stage.started_at is None or previous in FINAL_STATUSES):
        # Running again after finishing is a retry: its times start over.
        stage.started_at = now
        stage.completed_at = None
        stage.duration_s = None
    if status in FINAL_STATUSES:
        stage.completed_at = now
        stage.duration_s = seconds_between(as_utc(stage.started_at), now)
    if status == PublishStatus.PENDING:
        stage.started_at = stage.completed_at = None
        stage.duration_s = None
    stage.status = status.value
    stage.message = message
    stage.updated_at = now
    dashboard.updated_at = now
    session.add_all([stage, dashboard])
    return stage


def apply_job(stage: ReleaseStage, job: Job | JobRecord) -> None:
    """Copy a job's state onto the stage that follows it."""
    status = job_status(job.status, job.conclusion)
    stage.job_id = job.id
    stage.run_id = job.run_id
    stage.run_attempt = job.run_attempt
    stage.html_url = job.html_url
    stage.status = status.value
    stage.message = job.conclusion or job.status or ""
    stage.started_at = job.started_at
    stage.completed_at = job.completed_at if status in FINAL_STATUSES else None
    stage.duration_s = job.duration_s if status in FINAL_STATUSES else None
    stage.updated_at = utc_now()


def record_job_stage(*, session: Session, dashboard: ReleaseDashboard, job: Job | JobRecord, workflow_name: str | None) -> ReleaseStage | None:
    """Make a job a stage of a dashboard; return the stage, or None for a superseded attempt's job.

    The stage is named after the job. A re-run's job (same run, later attempt) takes over its
    earlier attempt's stage; a job of an earlier attempt arriving late changes nothing. Two
    jobs of one attempt with the same name get `(job <id>)` added, and a same-named job of
    another workflow run gets its workflow's name in front.
    """
    stage = session.scalars(
        select(ReleaseStage).where(ReleaseStage.dashboard_id == dashboard.id, ReleaseStage.job_id == job.id)
    ).first()
    if stage is None:
        name = job.name[:MAX_STAGE_LENGTH]
        stage = _stage_by_name(session, dashboard.id, name)  # type: ignore[arg-type]
        if stage is not None and stage.job_id is not None:
            if stage.run_id == job.run_id and (stage.run_attempt or 0) > job.run_attempt:
                return None
            if stage.run_id == job.run_id and (stage.run_attempt or 0) == job.run_attempt:
                stage = _claim_stage(session, dashboard, f"{job.name} (job {job.id})", job)
            elif stage.run_id != job.run_id:
                prefix = f"{workflow_name} / " if workflow_name else ""
                stage = _claim_stage(session, dashboard, f"{prefix}{job.name}", job)
        if stage is None:
            stage = _new_stage(session, dashboard, name)
    apply_job(stage, job)
    dashboard.updated_at = utc_now()
    session.add_all([stage, dashboard])
    return stage


def _claim_stage(session: Session, dashboard: ReleaseDashboard, name: str, job: Job | JobRecord) -> ReleaseStage:
    """Return the stage of that name for this job, adding the job id if another job has the name."""
    name = name[:MAX_STAGE_LENGTH]
    stage = _stage_by_name(session, dashboard.id, name)  # type: ignore[arg-type]
    if stage is not None and stage.job_id not in (None, job.id):
        name = f"{name[: MAX_STAGE_LENGTH - 30]} (job {job.id})"
        stage = _stage_by_name(session, dashboard.id, name)  # type: ignore[arg-type]
    return stage or _new_stage(session, dashboard, name)
