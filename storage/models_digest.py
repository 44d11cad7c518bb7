"""SQLModel table of channel digests: which Slack channels get a daily or weekly summary of the
repositories they follow."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.models import utc_field

DIGEST_FREQUENCIES = ("daily", "weekly")


class ChannelDigest(SQLModel, table=True):
    """The digest schedule of one channel: `daily` or `weekly` (posted on Mondays)."""

    __tablename__ = "channel_digest"

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    channel_id: str = Field(max_length=32)
    frequency: str = Field(max_length=10)
    created_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = utc_field(nullable=False, default_now=True)
    updated_at: datetime = utc_field(nullable=False, default_now=True)

    __table_args__ = (
        UniqueConstraint("team_id", "channel_id", name="uq_channel_digest_team_id_channel_id"),
    )
