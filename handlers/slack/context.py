"""The context of a Slack command: who ran it where, the database, the settings and a Slack client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine

from bot.config import Settings
from storage.db import read_session, session_scope

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

ResultT = TypeVar("ResultT")


@dataclass
class CommandContext:
    """One `/release` invocation (or a "Post to channel" press that repeats one)."""

    settings: Settings
    engine: Engine
    team_id: str
    channel_id: str
    user_id: str
    command_text: str
    client: AsyncWebClient | None = None
    # True when the response is posted for the whole channel, so it gets no "Post to channel" button.
    in_channel: bool = False

    @property
    def share(self) -> str | None:
        """The command text for the "Post to channel" button, or None in a channel post."""
        return None if self.in_channel else self.command_text

    def log_extra(self, **ids: Any) -> dict[str, Any]:
        """Return the `extra` mapping of a log line about this command."""
        return {"team_id": self.team_id, "channel": self.channel_id, "user_id": self.user_id, **ids}

    async def read(self, function: Callable[..., ResultT], /, **kwargs: Any) -> ResultT:
        """Run `function(session, **kwargs)` in a worker thread, so the event loop does not block on the database."""
        return await asyncio.to_thread(self._read, function, kwargs)

    async def write(self, function: Callable[..., ResultT], /, **kwargs: Any) -> ResultT:
        """Like `read`, in a transaction that commits when `function` returns."""
        return await asyncio.to_thread(self._write, function, kwargs)

    def _read(self, function: Callable[..., ResultT], kwargs: dict[str, Any]) -> ResultT:
        with read_session(self.engine) as session:
            return function(session, **kwargs)

    def _write(self, function: Callable[..., ResultT], kwargs: dict[str, Any]) -> ResultT:
        with session_scope(self.engine) as session:
            return function(session, **kwargs)
