"""Progress of `release-bot backfill`: the page cursor of each backfill and the runs recorded."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlmodel import Session

from storage.models_backfill import BackfilledRun, BackfillProgress
from storage.types import utc_now


def get_progress(*, session: Session, repo: str, since: str) -> BackfillProgress | None:
    """Return the progress of the backfill of a repository from a day (YYYY-MM-DD), if any."""
    return session.get(BackfillProgress, (repo, since))


def start_progress(*, session: Session, repo: str, since: str, installation_id: int) -> BackfillProgress:
    """Return the stored progress of a backfill, or create it at page 1."""
    progress = get_progress(session=session, repo=repo, since=since)
    if progress is None:
        progress = BackfillProgress(repo=repo, since=since)
    progress.installation_id = installation_id
    progress.updated_at = utc_now()
    session.add(progress)
    return progress


def save_cursor(
    *, session: Session, repo: str, since: str, next_page: int | None, total_count: int | None
) -> None:
    """Store the next page to read; `next_page` None marks the backfill finished."""
    progress = session.get(BackfillProgress, (repo, since))
    if progress is None:
        progress = BackfillProgress(repo=repo, since=since)
    if next_page is None:
        progress.finished_at = utc_now()
    else:
        progress.next_page = next_page
        progress.finished_at = None
    if total_count is not None:
        progress.total_count = total_count
    progress.updated_at = utc_now()
    session.add(progress)


def reset_progress(*, session: Session, repo: str, since: str) -> None:
    """Forget a backfill's cursor and every run recorded by backfills of the repository."""
    session.execute(
        delete(BackfillProgress).where(BackfillProgress.repo == repo, BackfillProgress.since == since)  # type: ignore[arg-type]
    )
    session.execute(delete(BackfilledRun).where(BackfilledRun.repo == repo))  # type: ignore[arg-type]


def recorded_attempts(*, session: Session, repo: str, run_ids: list[int]) -> dict[int, int]:
    """Return, for each run already recorded by a backfill, the last attempt recorded."""
    if not run_ids:
        return {}
    rows = session.execute(
        select(BackfilledRun.run_id, BackfilledRun.run_attempt).where(
            BackfilledRun.repo == repo, BackfilledRun.run_id.in_(run_ids)  # type: ignore[union-attr]
        )
    ).all()
    return {run_id: attempt for run_id, attempt in rows}


def mark_run_recorded(*, session: Session, repo: str, run_id: int, run_attempt: int) -> None:
    """Record that a completed run's attempts up to `run_attempt` and their jobs are stored."""
    row = session.get(BackfilledRun, (repo, run_id))
    if row is None:
        row = BackfilledRun(repo=repo, run_id=run_id, run_attempt=run_attempt)
    row.run_attempt = max(row.run_attempt, run_attempt)
    row.recorded_at = utc_now()
    session.add(row)
