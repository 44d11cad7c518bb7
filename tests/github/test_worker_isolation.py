"""The worker isolates a delivery that breaks its whole batch instead of retrying it forever."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot import worker as worker_module
from handlers import slack as slack_handlers
from storage.models import Delivery, Job
from tests.conftest import BotClient


def job_payload(job_id: int) -> dict[str, Any]:
    return {
        "action": "queued",
        "workflow_job": {"id": job_id, "run_id": 7001, "name": f"job {job_id}", "status": "queued"},
        "repository": {"id": 1001, "full_name": "octo-org/widget"},
        "installation": {"id": 424242},
    }


def test_batch_error_isolates_one_delivery(bot: BotClient, monkeypatch: pytest.MonkeyPatch) -> None:
    real_prefetch = worker_module.prefetch_facts

    def prefetch_failing_on_poison(*, session: Any, claimed: Any) -> Any:
        if any(delivery.delivery_id == "poison" for delivery in claimed):
            raise RuntimeError("prefetch cannot read this delivery")
        return real_prefetch(session=session, claimed=claimed)

    monkeypatch.setattr(worker_module, "prefetch_facts", prefetch_failing_on_poison)

    bot.send("workflow_job", job_payload(1), delivery_id="healthy-1", wait=False)
    bot.send("workflow_job", job_payload(2), delivery_id="poison", wait=False)
    bot.send("workflow_job", job_payload(3), delivery_id="healthy-2")

    with bot.session() as session:
        statuses = dict(session.execute(select(Delivery.delivery_id, Delivery.status)).all())
        job_ids = set(session.scalars(select(Job.id)).all())
    assert statuses["healthy-1"] == "done"
    assert statuses["healthy-2"] == "done"
    assert statuses["poison"] == "failed"
    assert job_ids == {1, 3}


def test_reaction_integrity_error_retried(bot: BotClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another replica inserting the same row shows up in a reaction as an IntegrityError. The
    # worker then processes the delivery once more, so the reaction must pass the error up.
    calls: list[str] = []

    def collides_twice(ctx: Any, payload: dict[str, Any]) -> None:
        calls.append(ctx.delivery_id)
        if len(calls) <= 2:
            raise IntegrityError("INSERT INTO alert_failure ...", {}, Exception("duplicate key"))

    reaction = slack_handlers.Reaction(collides_twice, lambda ctx: ctx.event == "workflow_job")
    monkeypatch.setattr(slack_handlers, "REACTIONS", (reaction,))

    bot.send("workflow_job", job_payload(1), delivery_id="collides")

    with bot.session() as session:
        delivery = session.scalars(select(Delivery).where(Delivery.delivery_id == "collides")).one()
        job_ids = set(session.scalars(select(Job.id)).all())
    assert delivery.status == "done"
    assert job_ids == {1}
    # The batch without savepoints fails and runs again with them, where the delivery's first
    # try fails and its second passes.
    assert calls == ["collides", "collides", "collides"]
