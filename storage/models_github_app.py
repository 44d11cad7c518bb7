"""SQLModel tables of the GitHub App side: PR build-profile comments, repository
configuration, and what the bot learned about each installation's token and permissions.

No token is stored: installation tokens live only in the process that requested them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Text
from sqlmodel import Field, SQLModel

from storage.models import big_id, utc_field


class PullRequestComment(SQLModel, table=True):
    """The build-profile comment of one pull request, and the lease of whoever is writing it.

    The reaction records which head commit the comment should describe; the outbox sender
    takes the lease (`lock_owner`, `lock_until`) before it calls GitHub, so two senders never
    create two comments for one pull request.
    """

    __tablename__ = "github_pr_comment"

    repo: str = Field(primary_key=True, max_length=200)
    pr_number: int = Field(primary_key=True)
    installation_id: int | None = big_id()
    head_sha: str | None = Field(default=None, max_length=64)
    head_repository: str | None = Field(default=None, max_length=200)
    base_ref: str | None = Field(default=None, max_length=255)
    head_seen_at: datetime | None = utc_field()
    comment_id: int | None = big_id()
    body_digest: str | None = Field(default=None, max_length=64)
    lock_owner: str | None = Field(default=None, max_length=100)
    lock_until: datetime | None = utc_field()
    refreshed_at: datetime | None = utc_field()
    updated_at: datetime = utc_field(nullable=False, default_now=True)

    __table_args__ = (Index("ix_github_pr_comment_installation_id", "installation_id"),)


class RepoConfigState(SQLModel, table=True):
    """The `.github/release-bot.yml` in force for a repository, and the last error reading it.

    `config` is the last valid file as parsed (None while the defaults are in force);
    `error` lists the problems of the newest file read, which is then not in force.
    """

    __tablename__ = "github_repo_config"

    repo: str = Field(primary_key=True, max_length=200)
    installation_id: int | None = big_id()
    source: str = Field(default="default", max_length=20)
    config: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    blob_sha: str | None = Field(default=None, max_length=64)
    error: list[dict[str, str]] | None = Field(default=None, sa_type=JSON)
    error_at: datetime | None = utc_field()
    fetched_at: datetime | None = utc_field()
    stale: bool = Field(default=True)
    updated_at: datetime = utc_field(nullable=False, default_now=True)


class InstallationApiState(SQLModel, table=True):
    """What calling GitHub as one installation taught the bot: a rejected token request,
    and App permissions GitHub reported missing (each reported once)."""

    __tablename__ = "github_installation_state"

    installation_id: int = big_id(primary_key=True)
    token_status: str = Field(default="ok", max_length=20)
    token_error: str | None = Field(default=None, sa_type=Text)
    token_failed_at: datetime | None = utc_field()
    missing_permissions: list[dict[str, str]] = Field(default_factory=list, sa_type=JSON)
    updated_at: datetime = utc_field(nullable=False, default_now=True)
