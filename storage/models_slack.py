"""SQLModel tables of the Slack side: workspace links, subscriptions and live status messages.

Slack ids (team, channel, user) are stored bare, as `C0123ABCD`. The escaped forms Slack
sends in command text (`<#C0123|name>`) are parsed before they reach these tables. The
installation and OAuth state tables of slack_sdk's SQLAlchemy stores are declared here too,
column for column as those stores build them, so that the migrations and the stores agree on
one schema without this module importing slack_sdk.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    func,
)
from sqlmodel import Field, SQLModel

from storage.models import big_id, utc_field

SLACK_INSTALLATIONS_TABLE = "slack_installations"
SLACK_BOTS_TABLE = "slack_bots"
SLACK_OAUTH_STATES_TABLE = "slack_oauth_states"

# Event groups a subscription can ask for; `all` stands for every group.
SUBSCRIPTION_EVENTS = ("failures", "publishes", "deployments")


class SlackLink(SQLModel, table=True):
    """A Slack workspace allowed to see the repositories of one GitHub App installation."""

    __tablename__ = "slack_link"

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    installation_id: int = big_id(nullable=False)
    created_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = utc_field(nullable=False, default_now=True)

    __table_args__ = (
        UniqueConstraint("team_id", "installation_id"),
        Index("ix_slack_link_installation_id", "installation_id"),
    )


class SlackSubscription(SQLModel, table=True):
    """A channel following one repository's failures, publishes or deployments.

    `branch` and `workflow` are empty strings, not NULL, when the subscription covers every
    branch or workflow, so that the unique constraint also catches those duplicates.
    """

    __tablename__ = "slack_subscription"

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    channel_id: str = Field(max_length=32)
    repo: str = Field(max_length=200)
    installation_id: int | None = big_id()
    events: str = Field(default="all", max_length=100)
    branch: str = Field(default="", max_length=255)
    workflow: str = Field(default="", max_length=255)
    created_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = utc_field(nullable=False, default_now=True)

    __table_args__ = (
        UniqueConstraint("team_id", "channel_id", "repo", "branch", "workflow"),
        Index("ix_slack_subscription_repo", "repo"),
    )

    @property
    def event_set(self) -> frozenset[str]:
        """The event groups this subscription covers, with `all` expanded."""
        names = {name.strip() for name in self.events.split(",") if name.strip()}
        if "all" in names:
            return frozenset(SUBSCRIPTION_EVENTS)
        return frozenset(names)


class SlackStatusMessage(SQLModel, table=True):
    """The live status message of one run in one channel, edited in place as jobs progress.

    `ts` is the message timestamp exactly as `chat.postMessage` returned it (a string such as
    `1717400000.000100`); Slack identifies the message by that string, so it is never a float.
    `posting_until` is a lease taken before the first post, so that two senders never post
    the same message twice. `update_seq` numbers the outbox rows queued for this message, so
    that at most one of them waits at a time (see handlers.slack.live_status).
    """

    __tablename__ = "slack_status_message"

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    channel_id: str = Field(max_length=32)
    run_id: int = big_id(nullable=False)
    ts: str | None = Field(default=None, max_length=32)
    posting_until: datetime | None = utc_field()
    is_final: bool = Field(default=False)
    update_seq: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = utc_field(nullable=False, default_now=True)
    updated_at: datetime = utc_field(nullable=False, default_now=True)

    __table_args__ = (
        UniqueConstraint("team_id", "channel_id", "run_id"),
        Index("ix_slack_status_message_run_id", "run_id"),
    )


def bot_columns() -> list[Column]:
    """Return the columns that slack_sdk's installations and bots tables share, in its order."""
    return [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("client_id", String(32), nullable=False),
        Column("app_id", String(32), nullable=False),
        Column("enterprise_id", String(32)),
        Column("enterprise_name", String(200)),
    ]


# slack_sdk 3.48 builds these in SQLAlchemyInstallationStore.build_installations_table,
# build_bots_table and SQLAlchemyOAuthStateStore.build_oauth_states_table; the tests compare
# both declarations, so an upgrade of slack_sdk that changes them fails there.
slack_installations = Table(
    SLACK_INSTALLATIONS_TABLE,
    SQLModel.metadata,
    *bot_columns(),
    Column("enterprise_url", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", String(200)),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", String(200)),
    Column("bot_token_expires_at", DateTime),
    Column("user_id", String(32), nullable=False),
    Column("user_token", String(200)),
    Column("user_scopes", String(1000)),
    Column("user_refresh_token", String(200)),
    Column("user_token_expires_at", DateTime),
    Column("incoming_webhook_url", String(200)),
    Column("incoming_webhook_channel", String(200)),
    Column("incoming_webhook_channel_id", String(200)),
    Column("incoming_webhook_configuration_url", String(200)),
    Column("is_enterprise_install", Boolean, default=False, nullable=False),
    Column("token_type", String(32)),
    Column("installed_at", DateTime, nullable=False, default=func.now()),
    Index(
        f"{SLACK_INSTALLATIONS_TABLE}_idx",
        "client_id",
        "enterprise_id",
        "team_id",
        "user_id",
        "installed_at",
    ),
)
slack_bots = Table(
    SLACK_BOTS_TABLE,
    SQLModel.metadata,
    *bot_columns(),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", String(200)),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", String(200)),
    Column("bot_token_expires_at", DateTime),
    Column("is_enterprise_install", Boolean, default=False, nullable=False),
    Column("installed_at", DateTime, nullable=False, default=func.now()),
    Index(f"{SLACK_BOTS_TABLE}_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
)
slack_oauth_states = Table(
    SLACK_OAUTH_STATES_TABLE,
    SQLModel.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(200), nullable=False),
    Column("expire_at", DateTime, nullable=False),
)
