"""A `workflow_job` delivery whose `workflow_job` object is null or absent: accepted, logged once
at WARNING with its delivery id, stored as invalid and never processed again."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from storage.models import Delivery, Job, WorkflowRun
from tests.conftest import BotClient
from tests.github.conftest import count_rows, load_fixture

NULL_JOB_DELIVERY = "14141414-0014-0000-0000-000000000001"
ABSENT_JOB_DELIVERY = "14141414-0014-0000-0000-000000000002"


def test_null_workflow_job_rejected_once(bot: BotClient, caplog: pytest.LogCaptureFixture) -> None:
    with_null = load_fixture("workflow_job.queued.null.json")
    without_key = load_fixture("workflow_job.queued.null.json")
    del without_key["workflow_job"]
    caplog.set_level(logging.INFO)

    responses = [
        bot.send("workflow_job", with_null, delivery_id=NULL_JOB_DELIVERY),
        bot.send("workflow_job", without_key, delivery_id=ABSENT_JOB_DELIVERY),
    ]
    bot.app.state.worker.drain()

    assert [response.status_code for response in responses] == [202, 202]
    for delivery_id in (NULL_JOB_DELIVERY, ABSENT_JOB_DELIVERY):
        warnings = [
            record
            for record in caplog.records
            if record.levelno == logging.WARNING
            and getattr(record, "delivery_id", None) == delivery_id
        ]
        assert len(warnings) == 1, [record.getMessage() for record in warnings]
        assert "workflow_job" in warnings[0].getMessage()
    assert [record for record in caplog.records if record.levelno > logging.WARNING] == []

    with bot.session() as session:
        assert count_rows(session, Job) == 0
        assert count_rows(session, WorkflowRun) == 0
        stored = session.scalars(select(Delivery).order_by(Delivery.id)).all()
    assert [(delivery.delivery_id, delivery.status, delivery.attempts) for delivery in stored] == [
        (NULL_JOB_DELIVERY, "invalid", 1),
        (ABSENT_JOB_DELIVERY, "invalid", 1),
    ]
    assert "`workflow_job` must be an object, got null" in (stored[0].error or "")
    assert "`workflow_job` is missing, expected an object" in (stored[1].error or "")
