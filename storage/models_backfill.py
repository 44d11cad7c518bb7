"""SQLModel tables of `release-bot backfill`: how far each backfill got, and which runs it recorded."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from storage.models import big_id, utc_field


class BackfillProgress(SQLModel, table=True):
    """The page cursor of one backfill, keyed by repository and the first day it covers.

    `next_page` is the first page of GitHub's run list (newest runs first) with runs not yet
    recorded. `finished_at` is set once the last page is done.
    """

    __tablename__ = "backfill_progress"

    repo: str = Field(primary_key=True, max_length=200)
    since: str = Field(primary_key=True, max_length=10)
    next_page: int = Field(default=1)
    total_count: int | None = Field(default=None)
    installation_id: int | None = big_id()
    started_at: datetime = utc_field(nullable=False, default_now=True)
    updated_at: datetime = utc_field(nullable=False, default_now=True)
    finished_at: datetime | None = utc_field()


class BackfilledRun(SQLModel, table=True):
    """A completed run whose attempts up to `run_attempt` and their jobs a backfill recorded.

    Keyed by repository and run, not by backfill, so that a later backfill with another window
    skips the run too, unless GitHub lists a newer attempt of it.
    """

    __tablename__ = "backfill_run"

    repo: str = Field(primary_key=True, max_length=200)
    run_id: int = big_id(primary_key=True)
    run_attempt: int = Field(default=1)
    recorded_at: datetime = utc_field(nullable=False, default_now=True)
