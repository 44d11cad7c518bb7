"""Fixtures for the alert tests: the fake Slack Web API with users.lookupByEmail, planned answers
and held requests; a clock the tests move; and the real bot whose outbox the test drives."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from bot import outbox as outbox_sender
from bot.config import Settings, load_settings
from storage import incidents
from storage import outbox as outbox_store
from storage.models_alerts import AlertFailure, AlertIncident, AlertPost
from storage.outbox import OutboxMessage
from tests.conftest import WEBHOOK_SECRET, BotClient
from tests.slack.conftest import SIGNING_SECRET, SlackDriver
from tests.slack.fake_slack import BOT_TOKEN, FakeSlack

ALERT_CHANNEL = "C0ALERTS01"
ARCHIVED_CHANNEL = "C0ARCHIVE1"


class FakeClock:
    """A UTC clock that moves only when the test moves it."""

    def __init__(self) -> None:
        self.current = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@dataclass
class Planned:
    """A whole answer the fake gives to the next call of a method."""

    method: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    channel: str | None = None


class AlertSlack(FakeSlack):
    """The Slack fake plus users.lookupByEmail, planned answers, a clock on every call, and holds.

    A held method's requests are recorded in `held` and get no response until `release()`;
    they never post a message.
    """

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.hold_method: str | None = None
        self.held: list[dict[str, Any]] = []
        self.released = threading.Event()
        super().__init__()
        self.channels.append({"id": ARCHIVED_CHANNEL, "name": "old-alerts"})
        self.users_by_email: dict[str, str] = {}
        self.answers: list[Planned] = []
        self.stamps: list[tuple[str, datetime]] = []

    def plan_answer(
        self,
        method: str,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        *,
        channel: str | None = None,
    ) -> None:
        """Answer the next call of `method` (to `channel`, if given) with exactly this status, JSON body and headers."""
        with self._lock:
            self.answers.append(Planned(method, status, body, headers or {}, channel))

    def release(self) -> None:
        """Let held requests end (with a 503) and stop holding."""
        self.hold_method = None
        self.released.set()

    def answer(
        self, method: str, body: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        self.stamps.append((method, self.clock()))
        for planned in list(self.answers):
            if planned.method == method and planned.channel in (None, str(body.get("channel"))):
                self.answers.remove(planned)
                if (
                    planned.status == 200
                    and planned.body.get("ok")
                    and method == "chat.postMessage"
                ):
                    self.messages[(str(body.get("channel")), str(planned.body["ts"]))] = body
                return planned.status, planned.body, planned.headers
        if method == "users.lookupByEmail" and token in self.tokens:
            user = self.users_by_email.get(str(body.get("email", "")).lower())
            if user is None:
                return 200, {"ok": False, "error": "users_not_found"}, {}
            return 200, {"ok": True, "user": {"id": user, "name": "someone"}}, {}
        return super().answer(method, body, token)

    def _handler_class(self) -> Any:
        base = super()._handler_class()
        fake = self

        class Handler(base):  # type: ignore[misc, valid-type]
            def handle_any(self) -> None:
                method = urlsplit(self.path).path.removeprefix("/api/")
                if fake.hold_method is not None and method == fake.hold_method:
                    body = self.read_body()
                    with fake._lock:
                        fake.held.append(body)
                        fake._lock.notify_all()
                    fake.released.wait(60)
                    self.send(503, {"ok": False, "error": "service_unavailable"})
                    return
                super().handle_any()

            do_POST = handle_any
            do_GET = handle_any

        return Handler

    def posts(self, channel: str = ALERT_CHANNEL) -> list[dict[str, Any]]:
        """Successful chat.postMessage calls to a channel without a thread: the channel posts."""
        return [
            call.body
            for call in self.calls_of("chat.postMessage")
            if call.status == 200
            and call.answer.get("ok")
            and call.body.get("channel") == channel
            and not call.body.get("thread_ts")
        ]

    def replies(self, channel: str = ALERT_CHANNEL) -> list[dict[str, Any]]:
        """Successful thread replies in a channel."""
        return [
            call.body
            for call in self.calls_of("chat.postMessage")
            if call.status == 200
            and call.answer.get("ok")
            and call.body.get("channel") == channel
            and call.body.get("thread_ts")
        ]

    def updates(self, channel: str = ALERT_CHANNEL) -> list[dict[str, Any]]:
        """Successful chat.update calls in a channel."""
        return [
            call.body
            for call in self.calls_of("chat.update")
            if call.answer.get("ok") and call.body.get("channel") == channel
        ]


def blocks_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A message's blocks, decoded if slack_sdk sent them as a JSON string."""
    blocks = message.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else blocks


def mrkdwn_texts(message: dict[str, Any]) -> list[str]:
    """The fallback text and every mrkdwn text of a message (what Slack parses for markup)."""
    found = [str(message.get("text") or "")]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks_of(message))
    return found


def buttons_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The buttons of a message's actions blocks."""
    return [
        element
        for block in blocks_of(message)
        if block.get("type") == "actions"
        for element in block["elements"]
    ]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The clock of alerting and of the outbox, moved by the test."""
    fake = FakeClock()
    monkeypatch.setattr(incidents, "now", fake)
    monkeypatch.setattr(outbox_sender, "utc_now", fake)
    monkeypatch.setattr(outbox_store, "utc_now", fake)
    return fake


@pytest.fixture
def fake_slack(clock: FakeClock) -> Iterator[AlertSlack]:
    """The fake Slack Web API on 127.0.0.1, stamping calls with the test clock."""
    fake = AlertSlack(clock)
    fake.start()
    yield fake
    fake.release()
    fake.stop()


@pytest.fixture
def settings(database_url: str, fake_slack: AlertSlack) -> Settings:
    """A single-workspace bot whose Slack is the fake; no GitHub App, no scheduler."""
    return load_settings(
        _env_file=None,
        database_url=database_url,
        github_webhook_secret=WEBHOOK_SECRET,
        worker_poll_seconds=0.05,
        scheduler_enabled=False,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.api_url,
    )


@dataclass
class AlertDriver(SlackDriver):
    """The running bot, its fake Slack, and control over its outbox (the test sends it)."""

    clock: FakeClock | None = None

    @property
    def engine(self) -> Engine:
        return self.bot.app.state.engine

    def deliver(self, rounds: int = 20) -> int:
        """Send every message due now on the test clock; return how many were claimed."""
        total = 0
        for _ in range(rounds):
            claimed = outbox_sender.deliver_due(self.engine)
            total += claimed
            if claimed == 0:
                break
        return total

    def settle(self, *, seconds: float = 10.0, rounds: int = 10) -> None:
        """Deliver, moving the clock on while messages wait (a reply waiting for its root)."""
        for _ in range(rounds):
            self.deliver()
            if not self.waiting():
                return
            assert self.clock is not None
            self.clock.advance(seconds=seconds)

    def waiting(self) -> list[OutboxMessage]:
        """Outbox rows not yet sent or failed."""
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(OutboxMessage).where(OutboxMessage.status.in_(["pending", "sending"]))
                ).all()
            )  # type: ignore[attr-defined]

    def subscribe(self, text: str = "subscribe octo-org/widget --events failures") -> None:
        """Install the App on octo-org's widget and subscribe this channel with a signed command."""
        self.install_widget_repos("widget")
        answer = self.ask(text)
        assert "ubscribed" in json.dumps(answer), answer

    def incidents(self) -> list[AlertIncident]:
        with Session(self.engine) as session:
            return list(session.scalars(select(AlertIncident).order_by(AlertIncident.id)).all())

    def failures(self) -> list[AlertFailure]:
        with Session(self.engine) as session:
            return list(session.scalars(select(AlertFailure).order_by(AlertFailure.id)).all())

    def posts_stored(self) -> list[AlertPost]:
        with Session(self.engine) as session:
            return list(session.scalars(select(AlertPost).order_by(AlertPost.id)).all())

    def outbox(self, kind: str | None = None) -> list[OutboxMessage]:
        with Session(self.engine) as session:
            statement = select(OutboxMessage).order_by(OutboxMessage.id)  # type: ignore[arg-type]
            if kind is not None:
                statement = statement.where(OutboxMessage.kind == kind)
            return list(session.scalars(statement).all())


@pytest.fixture
def alerts(bot: BotClient, fake_slack: AlertSlack, clock: FakeClock) -> AlertDriver:
    """The running bot with its outbox worker stopped, so the test decides when messages go out."""
    bot.app.state.outbox_worker.stop()
    return AlertDriver(bot=bot, fake=fake_slack, clock=clock)
