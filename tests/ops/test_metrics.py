"""`GET /metrics`: delivery counters, build histogram, queue gauges from the database, API errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import update

from bot.app import create_app
from bot.config import Settings
from bot.observability import record_api_error
from storage import outbox
from storage.db import session_scope
from storage.models import Delivery
from tests.conftest import BotClient, sign

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

RUN_PAYLOAD = {
    "action": "completed",
    "workflow_run": {
        "id": 7001,
        "name": "Release Build",
        "run_attempt": 1,
        "status": "completed",
        "conclusion": "success",
        "head_branch": "main",
        "run_started_at": "2024-06-03T09:00:00Z",
        "updated_at": "2024-06-03T09:05:12Z",
    },
    "repository": {"id": 5, "full_name": "Octo/Metrics"},
    "installation": {"id": 9},
}


def scrape(client: TestClient, **headers: str) -> Samples:
    """Fetch /metrics and parse it the way Prometheus does."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_delivery_counters_and_build_histogram(bot: BotClient) -> None:
    before = scrape(bot.client)

    assert bot.send("workflow_run", RUN_PAYLOAD, delivery_id="metrics-run-1").status_code == 202
    assert bot.send("workflow_run", RUN_PAYLOAD, delivery_id="metrics-run-1").status_code == 200
    broken = {**RUN_PAYLOAD, "workflow_run": "not an object"}
    assert bot.send("workflow_run", broken, delivery_id="metrics-run-2").status_code == 202
    after = scrape(bot.client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("release_bot_webhook_deliveries_received_total", event="workflow_run") == 2
    assert delta("release_bot_webhook_deliveries_processed_total", event="workflow_run", outcome="done") == 1
    assert delta("release_bot_webhook_deliveries_processed_total", event="workflow_run", outcome="invalid") == 1
    assert delta("release_bot_webhook_deliveries_failed_total", event="workflow_run", outcome="invalid") == 1
    histogram = {"repo": "octo/metrics", "workflow": "Release Build"}
    assert delta("release_bot_build_duration_seconds_count", **histogram) == 1
    assert delta("release_bot_build_duration_seconds_sum", **histogram) == 312.0
    assert delta("release_bot_build_duration_seconds_bucket", le="300.0", **histogram) == 0
    assert delta("release_bot_build_duration_seconds_bucket", le="600.0", **histogram) == 1
    assert not any(name.startswith("release_bot_build") and "run_id" in dict(labels) for name, labels in after)
    assert value(after, "release_bot_webhook_deliveries_pending") == 0
    assert value(after, "release_bot_delivery_processing_lag_seconds") == 0


def test_api_errors_by_service_and_code(bot: BotClient) -> None:
    before = scrape(bot.client)
    record_api_error("slack", "ratelimited")
    record_api_error("github", 502)
    after = scrape(bot.client)
    for service, code in (("slack", "ratelimited"), ("github", "502")):
        name = "release_bot_api_errors_total"
        assert value(after, name, service=service, code=code) - value(before, name, service=service, code=code) == 1


@pytest.fixture
def idle_bot(settings: Settings) -> Iterator[BotClient]:
    """The app without its worker, so stored deliveries stay pending."""
    with TestClient(create_app(settings, start_worker=False)) as client:
        yield BotClient(client)


def test_lag_and_outbox_read_from_database(idle_bot: BotClient) -> None:
    body = b'{"action": "completed", "workflow_job": {"id": 1}}'
    headers = {"X-GitHub-Event": "workflow_job", "X-GitHub-Delivery": "lag-1", "X-Hub-Signature-256": sign(body)}
    assert idle_bot.client.post("/github/webhooks", content=body, headers=headers).status_code == 202
    engine = idle_bot.app.state.engine
    received = datetime.now(UTC) - timedelta(hours=1)
    with session_scope(engine) as session:
        session.execute(update(Delivery).where(Delivery.delivery_id == "lag-1").values(received_at=received))
        for target in ("C1", "C2"):
            message = outbox.enqueue(session=session, kind="test", target=target, payload={})
            message.created_at = received
            session.add(message)

    samples = scrape(idle_bot.client)

    assert value(samples, "release_bot_webhook_deliveries_pending") == 1
    assert value(samples, "release_bot_delivery_processing_lag_seconds") >= 3600
    assert value(samples, "release_bot_outbox_depth") == 2
    assert value(samples, "release_bot_outbox_oldest_age_seconds") >= 3600


def test_metrics_token_required_when_set(settings: Settings) -> None:
    protected = settings.model_copy(update={"metrics_token": SecretStr("metrics-scrape-token-1234")})
    with TestClient(create_app(protected, start_worker=False)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        scrape(client, Authorization="Bearer metrics-scrape-token-1234")
