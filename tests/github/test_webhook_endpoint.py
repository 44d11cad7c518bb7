"""Bad and unusual input at `POST /github/webhooks`: unsigned, oversized, malformed, pings,
unknown values, missing and mistyped fields. A verified delivery never gets a 5xx."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from bot import webhook_problems
from bot.webhooks import MAX_BODY_BYTES
from storage.models import (
    CheckSuite,
    Delivery,
    Job,
    PullRequest,
    Release,
    RunAttempt,
    Step,
    Tag,
    WorkflowRun,
)
from tests.conftest import BotClient, sign
from tests.github.conftest import api_jobs, api_run, count_rows, delivery_statuses, load_fixture


def warnings_for(caplog: pytest.LogCaptureFixture, delivery_id: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and getattr(record, "delivery_id", None) == delivery_id
    ]


def stored_delivery(bot: BotClient, delivery_id: str) -> Delivery | None:
    with bot.session() as session:
        return session.scalars(select(Delivery).where(Delivery.delivery_id == delivery_id)).first()


def test_unsigned_delivery_rejected(bot: BotClient, caplog: pytest.LogCaptureFixture) -> None:
    body = json.dumps(load_fixture("workflow_job.completed.json")).encode()
    headers = {
        "X-GitHub-Event": "workflow_job",
        "X-GitHub-Delivery": "unsigned-1",
        "Content-Type": "application/json",
    }

    response = bot.client.post("/github/webhooks", content=body, headers=headers)

    assert response.status_code == 401
    assert "X-Hub-Signature-256" in response.json()["error"]
    assert warnings_for(caplog, "unsigned-1") == ["webhook signature missing"]
    with bot.session() as session:
        assert count_rows(session, Delivery) == 0
        assert count_rows(session, Job) == 0


def test_wrong_signature_rejected(bot: BotClient, caplog: pytest.LogCaptureFixture) -> None:
    response = bot.send(
        "workflow_job",
        load_fixture("workflow_job.completed.json"),
        delivery_id="forged-1",
        secret="not-the-secret",
    )

    assert response.status_code == 401
    assert warnings_for(caplog, "forged-1") == ["webhook signature invalid"]
    with bot.session() as session:
        assert count_rows(session, Delivery) == 0
        assert count_rows(session, Job) == 0


def test_body_over_limit_rejected(bot: BotClient, caplog: pytest.LogCaptureFixture) -> None:
    body = b'{"zen": "' + b"x" * MAX_BODY_BYTES + b'"}'

    with caplog.at_level(logging.WARNING, logger="bot.webhooks"):
        response = bot.send("workflow_job", body, delivery_id="too-large")

    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in response.json()["error"]
    # The client may still be sending the body, which must not be read as a next request.
    assert response.headers["connection"] == "close"
    assert [record.delivery_id for record in caplog.records] == ["too-large"]
    with bot.session() as session:
        assert count_rows(session, Delivery) == 0


def test_streamed_body_over_limit_rejected(bot: BotClient) -> None:
    # Without Content-Length the endpoint must stop reading once the limit is passed.
    chunk = b"x" * (1024 * 1024)

    def chunks() -> Iterator[bytes]:
        yield b'{"zen": "'
        for _ in range(MAX_BODY_BYTES // len(chunk) + 1):
            yield chunk
        yield b'"}'

    headers = {
        "X-GitHub-Event": "workflow_job",
        "X-GitHub-Delivery": "too-large-streamed",
        "X-Hub-Signature-256": "sha256=" + "0" * 64,
        "Content-Type": "application/json",
    }

    response = bot.client.post("/github/webhooks", content=chunks(), headers=headers)

    assert response.status_code == 413
    with bot.session() as session:
        assert count_rows(session, Delivery) == 0


def test_body_at_limit_accepted(bot: BotClient) -> None:
    prefix, suffix = b'{"action": "created", "zen": "', b'"}'
    body = prefix + b"x" * (MAX_BODY_BYTES - len(prefix) - len(suffix)) + suffix
    assert len(body) == MAX_BODY_BYTES

    response = bot.send("star", body, delivery_id="at-limit")

    assert response.status_code == 202
    delivery = stored_delivery(bot, "at-limit")
    assert delivery is not None
    assert delivery.status == "ignored"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"action": "completed", "workflow_job": ', "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'[{"action": "completed"}]', "must be a JSON object, got list"),
        (b'"completed"', "must be a JSON object, got str"),
        # Beyond Python's 4,300-digit limit for int(), json.loads raises a plain ValueError.
        (b'{"action": "completed", "n": 1' + b"0" * 4400 + b"}", "Exceeds the limit (4300 digits)"),
    ],
)
def test_invalid_json_rejected(
    bot: BotClient, caplog: pytest.LogCaptureFixture, body: bytes, message: str
) -> None:
    response = bot.send("workflow_job", body, delivery_id="not-json")

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]
    assert response.json()["delivery_id"] == "not-json"
    warnings = warnings_for(caplog, "not-json")
    assert len(warnings) == 1
    assert message in warnings[0]
    with bot.session() as session:
        assert delivery_statuses(session) == {"not-json": "invalid"}
        assert count_rows(session, Job) == 0


def test_ping_answered_not_stored(bot: BotClient) -> None:
    payload = {
        "zen": "Keep it logically awesome.",
        "hook_id": 9001,
        "hook": {"type": "App", "events": ["workflow_job"]},
    }

    response = bot.send("ping", payload, delivery_id="ping-1")

    assert response.status_code == 200
    assert response.json() == {"status": "pong"}
    with bot.session() as session:
        assert count_rows(session, Delivery) == 0


def test_unsigned_ping_rejected(bot: BotClient) -> None:
    response = bot.client.post(
        "/github/webhooks",
        content=b'{"zen": "Design for failure."}',
        headers={"X-GitHub-Event": "ping", "X-GitHub-Delivery": "ping-2"},
    )

    assert response.status_code == 401


@pytest.mark.parametrize("missing", ["X-GitHub-Event", "X-GitHub-Delivery"])
def test_missing_event_headers_rejected(bot: BotClient, caplog: pytest.LogCaptureFixture, missing: str) -> None:
    body = json.dumps(load_fixture("workflow_job.completed.json")).encode()
    headers = {
        "X-GitHub-Event": "workflow_job",
        "X-GitHub-Delivery": "no-header",
        "X-Hub-Signature-256": sign(body),
    }
    del headers[missing]

    with caplog.at_level(logging.WARNING, logger="bot.webhooks"):
        response = bot.client.post("/github/webhooks", content=body, headers=headers)

    assert response.status_code == 400
    assert response.json()["error"] == f"the {missing} header is required; GitHub sends both headers with every delivery"
    assert [record.getMessage() for record in caplog.records] == [f"webhook header missing: {missing}"]
    with bot.session() as session:
        assert count_rows(session, Delivery) == 0


def test_form_encoded_delivery_accepted(bot: BotClient) -> None:
    payload = load_fixture("workflow_job.completed.json")
    body = urlencode({"payload": json.dumps(payload)}).encode()

    response = bot.send(
        "workflow_job",
        body,
        delivery_id="form-1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 202
    assert api_jobs(api_run(bot, 60001))[70001]["duration_s"] == 312.0


def test_unknown_enum_values_accepted(bot: BotClient, caplog: pytest.LogCaptureFixture) -> None:
    job = load_fixture("workflow_job.completed.json")
    job["action"] = "brand_new"
    job["workflow_job"].update(status="brand_new", conclusion="brand_new_conclusion")
    job["workflow_job"]["steps"][0].update(status="brand_new", conclusion="brand_new_conclusion")
    run = load_fixture("workflow_run.completed.json")
    run["action"] = "brand_new"
    run["workflow_run"].update(status="brand_new", conclusion=None)

    responses = [
        bot.send("workflow_job", job, delivery_id="unknown-job-status"),
        bot.send("workflow_run", run, delivery_id="unknown-run-status"),
    ]

    assert [response.status_code for response in responses] == [202, 202]
    with bot.session() as session:
        assert set(delivery_statuses(session).values()) == {"done"}
        stored_job = session.get(Job, 70001)
        assert stored_job is not None
        assert (stored_job.status, stored_job.conclusion) == ("brand_new", "brand_new_conclusion")
        assert stored_job.duration_s is None
        step = session.get(Step, (70001, 1))
        assert step is not None
        assert step.status == "brand_new"
        attempt = session.get(RunAttempt, (60001, 1))
        assert attempt is not None
        assert attempt.status == "brand_new"
        assert attempt.duration_s is None
    assert warnings_for(caplog, "unknown-job-status") == [
        "unknown workflow_job status",
        "unknown workflow_job conclusion",
    ]
    assert warnings_for(caplog, "unknown-run-status") == ["unknown workflow_run status"]


def test_unknown_run_conclusion_logged(bot: BotClient, caplog: pytest.LogCaptureFixture) -> None:
    run = load_fixture("workflow_run.completed.json")
    run["workflow_run"]["conclusion"] = "brand_new_conclusion"

    response = bot.send("workflow_run", run, delivery_id="unknown-run-conclusion")

    assert response.status_code == 202
    with bot.session() as session:
        attempt = session.get(RunAttempt, (60001, 1))
        assert attempt is not None
        assert attempt.conclusion == "brand_new_conclusion"
    assert warnings_for(caplog, "unknown-run-conclusion") == ["unknown workflow_run conclusion"]


def test_unknown_status_then_completed(bot: BotClient) -> None:
    job = load_fixture("workflow_job.completed.json")
    early = load_fixture("workflow_job.completed.json")
    early["workflow_job"].update(status="brand_new", conclusion=None, completed_at=None, steps=[])

    bot.send("workflow_job", early)
    bot.send("workflow_job", job)

    stored = api_jobs(api_run(bot, 60001))[70001]
    assert (stored["status"], stored["conclusion"], stored["duration_s"]) == (
        "completed",
        "success",
        312.0,
    )


MINIMAL_PAYLOADS: dict[str, dict[str, Any]] = {
    "workflow_job": {"workflow_job": {"id": 1, "run_id": 2}},
    "workflow_run": {"workflow_run": {"id": 3}},
    "check_suite": {"check_suite": {"id": 4}},
    "release": {"action": "published", "release": {"id": 5}},
    "deployment": {"deployment": {"id": 6}},
    "deployment_status": {"deployment": {"id": 7}, "deployment_status": {"state": "success"}},
    "pull_request": {"pull_request": {"id": 8, "number": 9}},
    "installation": {"action": "created", "installation": {"id": 10}},
    "installation_repositories": {"installation": {"id": 11}, "repositories_added": [{"id": 12}]},
    "push": {"ref": "refs/tags/v1.0.0"},
}


@pytest.mark.parametrize("event", sorted(MINIMAL_PAYLOADS))
def test_missing_optional_fields_accepted(bot: BotClient, event: str) -> None:
    response = bot.send(event, MINIMAL_PAYLOADS[event], delivery_id=f"minimal-{event}")

    assert response.status_code == 202
    delivery = stored_delivery(bot, f"minimal-{event}")
    assert delivery is not None
    assert (delivery.status, delivery.error) == ("done", None)


def test_minimal_facts_stored(bot: BotClient) -> None:
    for event, payload in MINIMAL_PAYLOADS.items():
        bot.send(event, payload)

    with bot.session() as session:
        job = session.get(Job, 1)
        assert job is not None
        assert (job.run_id, job.run_attempt, job.name, job.status) == (2, 1, "job 1", "queued")
        assert session.get(WorkflowRun, 3) is not None
        assert session.get(CheckSuite, 4) is not None
        release = session.get(Release, 5)
        assert release is not None
        assert release.state == "published"
        tag = session.get(Tag, ("", "v1.0.0"))
        assert tag is not None


@pytest.mark.parametrize(
    ("event", "payload", "message"),
    [
        (
            "workflow_run",
            {"workflow_run": {}},
            "`workflow_run.id` must be an integer from 1 to 9223372036854775807, got null",
        ),
        (
            "workflow_job",
            {"workflow_job": {"id": 1}},
            "`workflow_job.run_id` must be an integer from 1 to 9223372036854775807, got null",
        ),
        (
            "workflow_job",
            {"workflow_job": {"id": "one", "run_id": 2}},
            '`workflow_job.id` must be an integer from 1 to 9223372036854775807, got "one"',
        ),
        (
            "workflow_job",
            {"workflow_job": {"id": 2**70, "run_id": 2}},
            "`workflow_job.id` must be an integer from 1 to 9223372036854775807, got 1180591620717411303424",
        ),
        (
            "workflow_job",
            {"workflow_job": {"id": -5, "run_id": 2}},
            "`workflow_job.id` must be an integer from 1 to 9223372036854775807, got -5",
        ),
        (
            "workflow_job",
            {"workflow_job": [1, 2]},
            "`workflow_job` must be an object, got an array",
        ),
        ("release", {"release": "v1"}, "`release` must be an object, got a string"),
        (
            "pull_request",
            {"pull_request": {"id": 8}},
            "`pull_request.number` must be an integer from 1 to 2147483647, got null",
        ),
        ("deployment_status", {"deployment": {"id": 7}}, "`deployment_status` is missing"),
    ],
)
def test_missing_required_fields_invalid(
    bot: BotClient,
    caplog: pytest.LogCaptureFixture,
    event: str,
    payload: dict[str, Any],
    message: str,
) -> None:
    response = bot.send(event, payload, delivery_id="missing-field")

    assert response.status_code == 202
    delivery = stored_delivery(bot, "missing-field")
    assert delivery is not None
    assert delivery.status == "invalid"
    assert message in (delivery.error or "")
    warnings = warnings_for(caplog, "missing-field")
    assert len(warnings) == 1
    assert message in warnings[0]
    assert [record for record in caplog.records if record.levelno > logging.WARNING] == []
    with bot.session() as session:
        assert count_rows(session, Job) == 0
        assert count_rows(session, WorkflowRun) == 0


def test_mistyped_optional_fields_ignored(bot: BotClient) -> None:
    payload = load_fixture("workflow_job.completed.json")
    payload["workflow_job"].update(
        run_attempt="two",
        name=["build"],
        labels="ubuntu-latest",
        steps=[None, "step", {"number": "x"}, {"number": 3, "name": None, "started_at": 12}],
        created_at=True,
        started_at="yesterday",
        completed_at=1e20,
        runner_id={"id": 1},
    )
    payload["repository"] = "octo-org/widget"
    payload["installation"] = {"id": "424242"}

    response = bot.send("workflow_job", payload, delivery_id="mistyped")

    assert response.status_code == 202
    delivery = stored_delivery(bot, "mistyped")
    assert delivery is not None
    assert (delivery.status, delivery.error) == ("done", None)
    with bot.session() as session:
        job = session.get(Job, 70001)
        assert job is not None
        assert (job.run_attempt, job.name, job.labels) == (1, "job 70001", [])
        assert (job.created_at, job.started_at, job.completed_at, job.duration_s) == (
            None,
            None,
            None,
            None,
        )
        steps = session.scalars(select(Step).where(Step.job_id == 70001)).all()
        assert [(step.number, step.name) for step in steps] == [(3, "step 3")]


def test_long_values_stored(bot: BotClient) -> None:
    # Column limits differ from GitHub's; PostgreSQL rejects longer strings, SQLite keeps them.
    payload = load_fixture("workflow_job.completed.json")
    payload["workflow_job"].update(
        name="test (" + ", ".join(f"option-{index}" for index in range(200)) + ")",
        head_branch="feature/" + "b" * 400,
        workflow_name="W" * 400,
        runner_name="r" * 400,
        conclusion="c" * 100,
        labels=["l" * 300],
    )
    run = load_fixture("workflow_run.completed.json")
    run["workflow_run"].update(
        name="W" * 400,
        head_branch="feature/" + "b" * 400,
        event="e" * 200,
        display_title="t" * 5000,
        conclusion="c" * 100,
    )

    responses = [
        bot.send("workflow_job", payload, delivery_id="long-job"),
        bot.send("workflow_run", run, delivery_id="long-run"),
    ]

    assert [response.status_code for response in responses] == [202, 202]
    with bot.session() as session:
        assert delivery_statuses(session) == {"long-job": "done", "long-run": "done"}
        job = session.get(Job, 70001)
        assert job is not None
        assert job.name.startswith("test (option-0, option-1")
        assert len(job.name) == 1000
        assert job.head_branch == ("feature/" + "b" * 400)[:255]
        assert job.duration_s == 312.0
        stored_run = session.get(WorkflowRun, 60001)
        assert stored_run is not None
        assert stored_run.display_title == "t" * 5000
        assert stored_run.workflow_name == "W" * 255


def test_nul_characters_dropped(bot: BotClient) -> None:
    # JSON may carry \u0000, which PostgreSQL text columns cannot store.
    pull = load_fixture("fork_pull_request.json")[1]["payload"]
    pull["pull_request"]["title"] = "Fix\u0000 parser"
    job = load_fixture("workflow_job.completed.json")
    job["workflow_job"]["name"] = "build\u0000"
    job["workflow_job"]["steps"][0]["name"] = "Set up\u0000 job"

    responses = [
        bot.send("pull_request", pull, delivery_id="nul-pr"),
        bot.send("workflow_job", job, delivery_id="nul-job"),
    ]

    assert [response.status_code for response in responses] == [202, 202]
    with bot.session() as session:
        assert delivery_statuses(session) == {"nul-pr": "done", "nul-job": "done"}
        stored_pull = session.get(PullRequest, 880042)
        assert stored_pull is not None
        assert stored_pull.title == "Fix parser"
        step = session.get(Step, (70001, 1))
        assert step is not None
        assert step.name == "Set up job"
    assert api_jobs(api_run(bot, 60001))[70001]["name"] == "build"


def test_nul_in_stored_delivery_fields(bot: BotClient) -> None:
    payload = load_fixture("workflow_job.completed.json")
    payload["action"] = "completed\u0000"
    payload["repository"]["full_name"] = "octo-org/\u0000widget"

    response = bot.send("workflow_job", payload, delivery_id="nul-delivery")

    assert response.status_code == 202
    delivery = stored_delivery(bot, "nul-delivery")
    assert delivery is not None
    assert (delivery.status, delivery.action, delivery.repository) == (
        "done",
        "completed",
        "octo-org/widget",
    )


def test_out_of_range_installation_id(bot: BotClient) -> None:
    payload = load_fixture("workflow_job.completed.json")
    payload["installation"]["id"] = 2**70

    response = bot.send("workflow_job", payload, delivery_id="huge-installation")

    assert response.status_code == 202
    delivery = stored_delivery(bot, "huge-installation")
    assert delivery is not None
    assert (delivery.status, delivery.installation_id) == ("done", None)


def test_deeply_nested_json_rejected(bot: BotClient) -> None:
    depth = 100_000
    body = b'{"action": "completed", "workflow_job": ' + b"[" * depth + b"]" * depth + b"}"

    response = bot.send("workflow_job", body, delivery_id="deep-json")

    assert response.status_code == 400
    assert "nested" in response.json()["error"]


def test_delivery_id_over_column_length_rejected(bot: BotClient, caplog: pytest.LogCaptureFixture) -> None:
    payload = load_fixture("workflow_job.completed.json")

    longest = bot.send("workflow_job", payload, delivery_id="a" * 100)
    too_long = bot.send("workflow_job", payload, delivery_id="a" * 100 + "b", wait=False)

    assert longest.status_code == 202
    assert too_long.status_code == 400
    assert too_long.json() == {
        "error": "X-GitHub-Delivery is 101 characters long, above the limit of 100; "
        "GitHub sends a 36-character GUID"
    }
    assert warnings_for(caplog, "a" * 100) == ["webhook delivery id too long"]
    with bot.session() as session:
        assert delivery_statuses(session) == {"a" * 100: "done"}


def test_duplicate_with_other_body_keeps_first(bot: BotClient, caplog: pytest.LogCaptureFixture) -> None:
    first_payload = load_fixture("workflow_job.completed.json")
    other_payload = load_fixture("workflow_job.completed.json")
    other_payload["workflow_job"]["conclusion"] = "failure"

    first = bot.send("workflow_job", first_payload, delivery_id="same-id-1")
    same = bot.send("workflow_job", first_payload, delivery_id="same-id-1")
    other = bot.send("workflow_job", other_payload, delivery_id="same-id-1")

    assert first.status_code == 202
    assert (same.status_code, same.json()) == (200, {"status": "duplicate", "delivery_id": "same-id-1"})
    assert (other.status_code, other.json()) == (200, {"status": "duplicate", "delivery_id": "same-id-1"})
    # Only the one with another body is reported.
    assert warnings_for(caplog, "same-id-1") == [
        "duplicate delivery id with a different body: kept the stored delivery, ignored this one"
    ]
    record = next(record for record in caplog.records if getattr(record, "delivery_id", None) == "same-id-1")
    assert record.event == "workflow_job"
    assert record.stored_bytes == len(json.dumps(first_payload).encode())
    assert record.received_bytes == len(json.dumps(other_payload).encode())
    stored = stored_delivery(bot, "same-id-1")
    assert stored is not None
    assert stored.body == json.dumps(first_payload).encode()
    assert api_jobs(api_run(bot, first_payload["workflow_job"]["run_id"]))[first_payload["workflow_job"]["id"]][
        "conclusion"
    ] == first_payload["workflow_job"]["conclusion"]


def test_duplicate_of_ignored_event_not_reported(bot: BotClient, caplog: pytest.LogCaptureFixture) -> None:
    # Events without a handler are stored without their body, so the comparison must not
    # report every redelivery of one.
    payload = {"action": "created", "starred_at": "2024-06-03T09:00:00Z", "repository": {"id": 1}}

    first = bot.send("star", payload, delivery_id="star-1")
    again = bot.send("star", payload, delivery_id="star-1")

    assert first.json() == {"status": "ignored", "event": "star"}
    assert again.json() == {"status": "duplicate", "delivery_id": "star-1"}
    assert warnings_for(caplog, "star-1") == []


def test_new_delivery_reads_no_stored_body(bot: BotClient, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real_read = webhook_problems.read_stored_body

    def counting_read(engine: Any, delivery_id: str) -> bytes | None:
        reads.append(delivery_id)
        return real_read(engine, delivery_id)

    monkeypatch.setattr(webhook_problems, "read_stored_body", counting_read)
    payload = load_fixture("workflow_job.completed.json")

    bot.send("workflow_job", payload, delivery_id="fresh-1")
    bot.send("workflow_job", payload, delivery_id="fresh-2")
    bot.send("workflow_job", payload, delivery_id="fresh-1")

    assert reads == ["fresh-1"]
