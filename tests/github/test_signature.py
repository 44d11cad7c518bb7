"""The webhook signature is checked over the raw request bytes, before anything is stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.webhooks import compute_signature
from storage.models import Delivery, WorkflowRun
from tests.conftest import WEBHOOK_SECRET, BotClient
from tests.github.conftest import FIXTURES, api_run, count_rows

# The raw body has a double space, a newline, a `\u2013` escape, `[ ]` and the float 1.0, so any
# parse-and-serialise round trip changes its bytes. This is its signature with the test secret.
RAW_BODY = (FIXTURES / "workflow_run.completed.raw.json").read_bytes()
RAW_SIGNATURE = "sha256=cd60eedc50d64b45b4fa2e68960670e9b81f83b29aa5f0505bab97d337e3c0ae"


def post_raw(bot: BotClient, body: bytes, delivery_id: str, signature: str | bytes | None) -> Any:
    headers: dict[str, str | bytes] = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/0000000",
        "X-GitHub-Event": "workflow_run",
        "X-GitHub-Delivery": delivery_id,
        "X-GitHub-Hook-ID": "9001",
    }
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    response = bot.client.post("/github/webhooks", content=body, headers=headers)
    bot.wait_idle()
    return response


def test_signature_fixture_matches() -> None:
    assert compute_signature(WEBHOOK_SECRET, RAW_BODY) == RAW_SIGNATURE


def test_signature_over_raw_bytes_accepted(bot: BotClient) -> None:
    response = post_raw(bot, RAW_BODY, "11110000-0011-0000-0000-000000000001", RAW_SIGNATURE)

    assert response.status_code == 202
    run = api_run(bot, 30011)
    assert run["workflow"] == "CI \u2013 main"
    assert run["conclusion"] == "success"
    assert run["duration_s"] == 312.0


def test_tampered_body_rejected(bot: BotClient) -> None:
    tampered = RAW_BODY.replace(b'"conclusion":"success"', b'"conclusion":"failure"')
    assert tampered != RAW_BODY

    response = post_raw(bot, tampered, "11110000-0011-0000-0000-000000000002", RAW_SIGNATURE)

    assert response.status_code == 401
    assert "GITHUB_WEBHOOK_SECRET" in response.json()["error"]
    assert "release-bot webhook-secret show" in response.json()["error"]
    with bot.session() as session:
        assert count_rows(session, Delivery) == 0
        assert count_rows(session, WorkflowRun) == 0


def test_missing_signature_rejected(bot: BotClient) -> None:
    response = post_raw(bot, RAW_BODY, "11110000-0011-0000-0000-000000000003", None)

    assert response.status_code == 401
    with bot.session() as session:
        assert count_rows(session, Delivery) == 0
        assert count_rows(session, WorkflowRun) == 0


def test_wrong_secret_rejected(bot: BotClient) -> None:
    signature = compute_signature("another-webhook-secret", RAW_BODY)

    response = post_raw(bot, RAW_BODY, "signed-with-another-secret", signature)

    assert response.status_code == 401
    with bot.session() as session:
        assert count_rows(session, Delivery) == 0


def test_malformed_signatures_rejected(bot: BotClient) -> None:
    digest = RAW_SIGNATURE.removeprefix("sha256=")
    # Header bytes that are not ASCII reach the app as Latin-1 text.
    malformed = [
        "",
        digest,
        "sha1=" + digest,
        "sha256=" + digest.upper(),
        "sha256=",
        "sha256=\xe9".encode("latin-1"),
    ]

    statuses = [
        post_raw(bot, RAW_BODY, f"malformed-signature-{index}", signature).status_code
        for index, signature in enumerate(malformed)
    ]

    assert statuses == [401] * len(malformed)
    with bot.session() as session:
        assert session.scalars(select(Delivery)).all() == []
