"""Redelivery sweep against a planned GitHub delivery list: paging, grouping by guid, the App JWT."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from bot import redelivery
from bot.app import create_app
from bot.config import Settings, load_settings
from bot.scheduler import Scheduler
from storage import state
from storage.db import session_scope
from tests.conftest import BotClient
from tests.ops.conftest import APP_ID

API = "https://api.github.com"
LIST_PATH = "/app/hook/deliveries"
FIRST_SWEEP_AT = datetime(2024, 6, 3, 9, 40, tzinfo=UTC)
SECOND_SWEEP_AT = datetime(2024, 6, 3, 9, 50, 30, tzinfo=UTC)
PREVIOUS_SWEEP_START = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)


def guid(number: int) -> str:
    return f"38383838-0038-0000-0000-{number:012d}"


def at(text: str) -> datetime:
    return datetime.fromisoformat(f"2024-06-03T{text}+00:00")


def row(row_id: int, row_guid: str, delivered_at: datetime, status_code: int, *, redelivery: bool = False) -> dict[str, Any]:
    """One row of the delivery list, with every field GitHub sends."""
    return {
        "id": row_id,
        "guid": row_guid,
        "delivered_at": delivered_at.isoformat().replace("+00:00", "Z"),
        "redelivery": redelivery,
        "duration": 0.31 if status_code == 200 else 10.0,
        "status": {200: "OK", 500: "Internal Server Error", 502: "Bad Gateway", 504: "Gateway Timeout"}[status_code],
        "status_code": status_code,
        "event": "workflow_job",
        "action": "completed",
        "installation_id": 424242,
        "repository_id": 1001,
        "throttled_at": None,
    }


def page(newest: datetime, oldest: datetime, specific: list[dict[str, Any]], first_id: int) -> list[dict[str, Any]]:
    """100 rows newest first: the specific rows plus OK rows with distinct guids spread between the two times."""
    count = 100 - len(specific)
    taken = {item["delivered_at"] for item in specific}
    step = (newest - oldest) / (count - 1)
    rows = list(specific)
    for index in range(count):
        when = newest - step * index
        while when.isoformat().replace("+00:00", "Z") in taken:
            when -= timedelta(seconds=1)
        rows.append(row(first_id + index, f"ok-{first_id + index}", when.replace(microsecond=0), 200))
    return sorted(rows, key=lambda item: item["delivered_at"], reverse=True)


PAGE_1 = page(
    at("09:39:50"),
    at("09:20:10"),
    [
        row(3800201, guid(1), at("09:30:00"), 502),
        row(3800213, guid(3), at("09:25:00"), 200, redelivery=True),
        row(3800215, guid(5), at("09:21:00"), 500, redelivery=True),
    ],
    3810001,
)
PAGE_2 = page(
    at("09:19:59"),
    at("08:55:00"),
    [
        row(3800202, guid(2), at("09:15:00"), 504),
        row(3800203, guid(3), at("09:10:00"), 500),
        row(3800204, guid(4), at("09:08:00"), 500),
        row(3800205, guid(5), at("09:02:00"), 500),
    ],
    3820001,
)
PAGE_3 = page(at("08:54:59"), at("08:10:00"), [], 3830001)
PAGE_4 = page(at("08:09:59"), at("07:20:00"), [], 3840001)
PAGE_5 = page(at("07:19:59"), at("06:30:00"), [], 3850001)
# What the first page looks like after the three redeliveries arrived, at 09:50:30.
PAGE_1_LATER = sorted(
    [
        row(3800301, guid(1), at("09:41:00"), 200, redelivery=True),
        row(3800302, guid(2), at("09:41:30"), 200, redelivery=True),
        row(3800305, guid(5), at("09:42:00"), 200, redelivery=True),
        *[row(3860001 + index, f"ok-later-{index}", at("09:42:30") + timedelta(seconds=25 * index), 200) for index in range(18)],
        *PAGE_1,
    ],
    key=lambda item: item["delivered_at"],
    reverse=True,
)


@dataclass
class FakeDeliveryApi:
    """Respond to the planned delivery list requests; any other request fails the test."""

    public_key: rsa.RSAPublicKey
    first_page: list[dict[str, Any]] = field(default_factory=lambda: PAGE_1)
    requests: list[httpx.Request] = field(default_factory=list)
    posts: list[int] = field(default_factory=list)
    cursors: list[str | None] = field(default_factory=list)
    unplanned: list[str] = field(default_factory=list)

    PAGES: ClassVar[dict[str, tuple[list[dict[str, Any]], str]]] = {"v1_38_p2": (PAGE_2, "v1_38_p3"), "v1_38_p3": (PAGE_3, "v1_38_p4"), "v1_38_p4": (PAGE_4, "v1_38_p5"), "v1_38_p5": (PAGE_5, "v1_38_p6")}

    def issuer(self, request: httpx.Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        assert scheme == "Bearer", f"expected a Bearer App JWT, got {scheme!r}"
        claims = jwt.decode(token, self.public_key, algorithms=["RS256"])
        return str(claims["iss"])

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.issuer(request) != str(APP_ID):
            return httpx.Response(401, json={"message": "A JSON web token could not be decoded"})
        params = dict(request.url.params)
        if request.method == "GET" and request.url.path == LIST_PATH and "page" not in params:
            if params.get("per_page") != "100" or set(params) - {"per_page", "cursor"}:
                self.unplanned.append(str(request.url))
                raise AssertionError(f"unplanned query {request.url}")
            cursor = params.get("cursor")
            self.cursors.append(cursor)
            if cursor is None:
                rows, next_cursor = self.first_page, "v1_38_p2"
            elif cursor in self.PAGES and cursor != "v1_38_p5":
                rows, next_cursor = self.PAGES[cursor]
            else:
                self.unplanned.append(str(request.url))
                raise AssertionError(f"cursor {cursor} must not be requested")
            link = f'<{API}{LIST_PATH}?per_page=100&cursor={next_cursor}>; rel="next"'
            return httpx.Response(200, json=rows, headers={"Link": link})
        parts = request.url.path.strip("/").split("/")
        if request.method == "POST" and parts[:3] == ["app", "hook", "deliveries"] and len(parts) == 5 and parts[4] == "attempts":
            self.posts.append(int(parts[3]))
            return httpx.Response(202, json={})
        self.unplanned.append(f"{request.method} {request.url}")
        raise AssertionError(f"unplanned request {request.method} {request.url}")


@pytest.fixture
def bot_with_app(app_settings: Settings) -> Iterator[BotClient]:
    with TestClient(create_app(app_settings)) as client:
        yield BotClient(client)


@pytest.fixture
def github_api(app_key: rsa.RSAPrivateKey) -> FakeDeliveryApi:
    return FakeDeliveryApi(public_key=app_key.public_key())


def record_previous_sweep(engine: Any, started: datetime) -> None:
    with session_scope(engine) as session:
        state.set_value(session=session, key=redelivery.SWEEP_STATE_KEY, value=started.isoformat())


def settings_with_overlap(settings: Settings, minutes: float) -> Settings:
    return settings.model_copy(update={"redelivery_overlap_minutes": minutes})


@pytest.mark.parametrize("overlap", [0, 15, 60])
def test_sweep_redelivers_missed_guids(
    bot_with_app: BotClient, app_settings: Settings, github_api: FakeDeliveryApi, overlap: float, caplog: pytest.LogCaptureFixture
) -> None:
    engine = bot_with_app.app.state.engine
    # Processed by the bot, although GitHub logged the attempt as failed after its 10 s timeout.
    job = {"id": 3804, "run_id": 30038, "name": "build", "status": "completed", "conclusion": "success"}
    payload = {"action": "completed", "workflow_job": job, "repository": {"id": 1001, "full_name": "octo-org/widget"}}
    stored = bot_with_app.send("workflow_job", payload, delivery_id=guid(4))
    assert stored.status_code == 202
    record_previous_sweep(engine, PREVIOUS_SWEEP_START)
    settings = settings_with_overlap(app_settings, overlap)
    client = redelivery.build_app_client(settings, transport=httpx.MockTransport(github_api.handle))

    with caplog.at_level(logging.INFO, logger="bot.redelivery"):
        first = redelivery.sweep(engine, settings, github=client, now=FIRST_SWEEP_AT)

    assert github_api.unplanned == []
    assert "v1_38_p5" not in github_api.cursors
    assert github_api.cursors[:2] == [None, "v1_38_p2"]
    assert len(github_api.posts) == 3
    assert 3800201 in github_api.posts
    assert 3800202 in github_api.posts
    assert {3800205, 3800215} & set(github_api.posts)
    assert first.redelivered[guid(1)] == 3800201
    assert first.redelivered[guid(2)] == 3800202
    assert first.redelivered[guid(5)] in (3800205, 3800215)
    assert sorted(first.redelivered) == [guid(1), guid(2), guid(5)]
    assert first.recorded
    assert all(not request.url.params.get("page") for request in github_api.requests)
    logged = [record.delivery_id for record in caplog.records if record.getMessage() == "requested webhook redelivery"]  # type: ignore[attr-defined]
    assert sorted(logged) == [guid(1), guid(2), guid(5)]
    with bot_with_app.session() as session:
        assert state.get_value(session=session, key=redelivery.SWEEP_STATE_KEY) == FIRST_SWEEP_AT.isoformat()

    github_api.first_page = PAGE_1_LATER
    github_api.cursors.clear()
    second = redelivery.sweep(engine, settings, github=client, now=SECOND_SWEEP_AT)
    assert github_api.unplanned == []
    assert len(github_api.posts) == 3
    assert second.redelivered == {}
    assert "v1_38_p5" not in github_api.cursors


def test_first_sweep_uses_lookback(bot_with_app: BotClient, app_settings: Settings, github_api: FakeDeliveryApi) -> None:
    engine = bot_with_app.app.state.engine
    settings = app_settings.model_copy(update={"redelivery_lookback_hours": 2.0})
    client = redelivery.build_app_client(settings, transport=httpx.MockTransport(github_api.handle))

    result = redelivery.sweep(engine, settings, github=client, now=FIRST_SWEEP_AT)

    assert result.cutoff == FIRST_SWEEP_AT - timedelta(hours=2)
    # A 2-hour look-back reaches 07:40, inside page 4, so page 5 is never requested.
    assert github_api.cursors == [None, "v1_38_p2", "v1_38_p3", "v1_38_p4"]
    assert sorted(result.redelivered) == [guid(1), guid(2), guid(4), guid(5)]


def test_cutoff_never_passes_three_days() -> None:
    settings = load_settings(_env_file=None, redelivery_overlap_minutes=60)
    week_old = FIRST_SWEEP_AT - timedelta(days=7)
    assert redelivery.sweep_cutoff(week_old, FIRST_SWEEP_AT, settings) == FIRST_SWEEP_AT - timedelta(days=3)
    assert redelivery.sweep_cutoff(None, FIRST_SWEEP_AT, settings) == FIRST_SWEEP_AT - timedelta(hours=3)


def test_server_error_keeps_window_open(bot_with_app: BotClient, app_settings: Settings, github_api: FakeDeliveryApi) -> None:
    engine = bot_with_app.app.state.engine
    record_previous_sweep(engine, PREVIOUS_SWEEP_START)

    def fail_posts(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            github_api.requests.append(request)
            return httpx.Response(502, json={"message": "Server Error"})
        return github_api.handle(request)

    client = redelivery.build_app_client(app_settings, transport=httpx.MockTransport(fail_posts))
    result = redelivery.sweep(engine, app_settings, github=client, now=FIRST_SWEEP_AT)

    assert sorted(result.failed) == [guid(1), guid(2), guid(4), guid(5)]
    assert not result.recorded
    with bot_with_app.session() as session:
        assert state.get_value(session=session, key=redelivery.SWEEP_STATE_KEY) == PREVIOUS_SWEEP_START.isoformat()


def test_sweep_off_without_app(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bot.scheduler"):
        scheduler = Scheduler(engine=None, settings=settings)  # type: ignore[arg-type]
    assert "redelivery" not in scheduler.jobs
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("redelivery sweep is off: set GITHUB_APP_ID and GITHUB_PRIVATE_KEY to enable it") == 1


def test_sweep_scheduled_soon_after_start(app_settings: Settings) -> None:
    scheduler = Scheduler(engine=None, settings=app_settings)  # type: ignore[arg-type]
    job = scheduler.jobs["redelivery"]
    assert job.first_delay_seconds <= 90
    assert job.interval_seconds == 600
