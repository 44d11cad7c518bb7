"""`POST /api/v1/metrics`: stored points, field errors that name the field, and the bearer token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from bot.app import create_app
from bot.config import Settings, load_settings
from tests.conftest import WEBHOOK_SECRET, BotClient

API_TOKEN = "api-token-for-tests-0123456789"


def test_post_metric_stored(bot: BotClient) -> None:
    response = bot.client.post(
        "/api/v1/metrics",
        json={"name": "build_time", "value": 45.5, "type": "build_time", "tags": {"repo": "Octo-Org/Widget"}, "timestamp": "2024-06-03T09:00:00+02:00"},
    )

    assert response.status_code == 201
    body = response.json()
    assert body["value"] == 45.5
    assert body["type"] == "build_time"
    assert body["timestamp"] == "2024-06-03T07:00:00Z"
    assert body["tags"] == {"repo": "octo-org/widget"}
    assert isinstance(body["id"], int)
    stats = bot.client.get("/api/v1/stats", params={"metric": "build_time", "repo": "octo-org/widget"}).json()
    assert stats["count"] == 1
    assert stats["p50"] == 45.5


def test_post_metric_defaults_custom(bot: BotClient) -> None:
    response = bot.client.post("/api/v1/metrics", json={"name": "bundle_size", "value": 1024})

    assert response.status_code == 201
    assert response.json()["type"] == "custom"
    assert response.json()["tags"] == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "value": "45.5"}, "value"),
        ({"name": "x", "value": True}, "value"),
        ({"name": "x"}, "value"),
        ({"value": 1}, "name"),
        ({"name": "", "value": 1}, "name"),
        ({"name": "x", "value": 1, "type": "compile_time"}, "type"),
        ({"name": "x", "value": 1, "tags": {"branch": 3}}, "tags"),
        ({"name": "x", "value": 1, "timestamp": "yesterday"}, "timestamp"),
        ({"name": "x", "value": 1, "unit": "s"}, "unit"),
    ],
)
def test_post_metric_names_bad_field(bot: BotClient, body: dict[str, object], field: str) -> None:
    response = bot.client.post("/api/v1/metrics", json=body)

    assert response.status_code == 422
    locations = [error["loc"] for error in response.json()["detail"]]
    assert any(field in location for location in locations), locations


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_post_metric_rejects_non_finite(bot: BotClient, literal: str) -> None:
    response = bot.client.post(
        "/api/v1/metrics", content=f'{{"name": "x", "value": {literal}}}', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "value"]


def test_post_metric_long_tag_is_400(bot: BotClient) -> None:
    response = bot.client.post("/api/v1/metrics", json={"name": "x", "value": 1, "tags": {"conclusion": "y" * 41}})

    assert response.status_code == 400
    assert "tag 'conclusion'" in response.json()["detail"]


@pytest.fixture
def token_client(database_url: str) -> Iterator[TestClient]:
    settings: Settings = load_settings(
        _env_file=None, database_url=database_url, github_webhook_secret=WEBHOOK_SECRET, api_token=API_TOKEN
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_post_metric_requires_token(token_client: TestClient) -> None:
    body = {"name": "build_time", "value": 1.0}

    missing = token_client.post("/api/v1/metrics", json=body)
    wrong = token_client.post("/api/v1/metrics", json=body, headers={"Authorization": "Bearer nope"})
    right = token_client.post("/api/v1/metrics", json=body, headers={"Authorization": f"Bearer {API_TOKEN}"})

    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert right.status_code == 201
