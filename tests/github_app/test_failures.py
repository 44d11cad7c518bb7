"""How failed GitHub calls are handled: a missing permission reported once, 5xx and network
errors retried, a secondary rate limit retried once, other 4xx not retried, a nearly spent
rate budget waited out, and installation tokens renewed before they expire."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session

from bot.pr_comment import PR_COMMENT_KIND
from storage import github_app
from storage.outbox import OutboxStatus
from storage.types import utc_now
from tests.github_app.conftest import AppBot
from tests.github_app.payloads import INSTALLATION_ID, REPO, START, send_run

SHA = "a1" * 20


def refresh(app_bot: AppBot, run_id: int, number: int = 42) -> None:
    send_run(app_bot, run_id, head_sha=f"{run_id:040x}", jobs=[("build", 60)], pull_numbers=[number],
             started=START + timedelta(minutes=run_id % 1000))


def comment_message(app_bot: AppBot, index: int = -1):
    return app_bot.messages(PR_COMMENT_KIND)[index]


def test_missing_permission_reported_once(app_bot: AppBot, caplog: pytest.LogCaptureFixture) -> None:
    forbidden = {"message": "Resource not accessible by integration"}
    headers = {"x-accepted-github-permissions": "issues=write; pull_requests=write"}
    app_bot.github.plan(
        "comments",
        httpx.Response(200, json=[]),
        httpx.Response(403, json=forbidden, headers=headers),
        httpx.Response(200, json=[]),
        httpx.Response(403, json=forbidden, headers=headers),
    )
    caplog.set_level(logging.WARNING, logger="bot.github_outbox")

    refresh(app_bot, 3001)
    app_bot.deliver()
    refresh(app_bot, 3002, number=43)
    app_bot.deliver()

    reports = [record for record in caplog.records if "lacks a permission" in record.getMessage()]
    assert len(reports) == 1
    assert reports[0].levelno == logging.WARNING
    assert "grant pull_requests: write" in reports[0].getMessage()
    assert [message.status for message in app_bot.messages(PR_COMMENT_KIND)] == [OutboxStatus.FAILED.value] * 2
    with Session(app_bot.engine) as session:
        state = github_app.get_installation_state(session=session, installation_id=INSTALLATION_ID)
        status = github_app.describe_repository(session=session, repo=REPO)
    assert [entry["permission"] for entry in state.missing_permissions] == ["pull_requests=write"]
    assert status.missing_permissions[0]["operation"] == "create a pull request comment"


def test_server_error_retried(app_bot: AppBot) -> None:
    app_bot.github.plan("comments", httpx.Response(200, json=[]), httpx.Response(502, json={"message": "Bad Gateway"}))
    refresh(app_bot, 3101)
    app_bot.deliver()

    message = comment_message(app_bot)
    assert message.status == OutboxStatus.PENDING.value
    assert "502" in message.last_error
    assert message.next_attempt_at > utc_now()

    app_bot.make_due()
    app_bot.deliver()
    assert comment_message(app_bot).status == OutboxStatus.SENT.value
    assert len(app_bot.github.comments_on(REPO, 42)) == 1


def test_network_error_retried(app_bot: AppBot) -> None:
    def fail_once() -> None:
        app_bot.github.before.pop("comments")
        raise httpx.ConnectError("connection refused")

    app_bot.github.before["comments"] = fail_once
    refresh(app_bot, 3201)
    app_bot.deliver()
    assert "network error" in comment_message(app_bot).last_error

    app_bot.make_due()
    app_bot.deliver()
    assert len(app_bot.github.comments_on(REPO, 42)) == 1


def test_secondary_rate_limit_retried_once(app_bot: AppBot) -> None:
    limited = httpx.Response(403, json={"message": "You have exceeded a secondary rate limit"}, headers={"retry-after": "60"})
    app_bot.github.plan("comments", httpx.Response(200, json=[]), limited)
    refresh(app_bot, 3301)
    app_bot.deliver()

    message = comment_message(app_bot)
    assert message.status == OutboxStatus.PENDING.value
    wait = (message.next_attempt_at - utc_now()).total_seconds()
    assert 55 <= wait <= 60
    assert app_bot.deliver() == 0

    app_bot.make_due()
    app_bot.deliver()
    assert comment_message(app_bot).status == OutboxStatus.SENT.value
    assert len(app_bot.github.comments_on(REPO, 42)) == 1


def test_secondary_rate_limit_twice_gives_up(app_bot: AppBot) -> None:
    limited = httpx.Response(429, json={"message": "secondary rate limit"}, headers={"retry-after": "30"})
    app_bot.github.plan("comments", limited, limited)
    refresh(app_bot, 3401)
    app_bot.deliver()
    app_bot.make_due()
    app_bot.deliver()

    message = comment_message(app_bot)
    assert message.status == OutboxStatus.FAILED.value
    assert "again after one retry" in message.last_error
    assert app_bot.github.count("comments") == 2
    app_bot.make_due()
    assert app_bot.deliver() == 0


def test_client_error_not_retried(app_bot: AppBot) -> None:
    app_bot.github.plan(
        "comments",
        httpx.Response(200, json=[]),
        httpx.Response(422, json={"message": "Validation Failed", "errors": [{"code": "invalid"}]}),
    )
    refresh(app_bot, 3501)
    app_bot.deliver()
    app_bot.make_due()
    app_bot.deliver()

    message = comment_message(app_bot)
    assert message.status == OutboxStatus.FAILED.value
    assert "422" in message.last_error
    assert app_bot.github.count("comments", "POST") == 1


def test_low_rate_budget_waits_for_reset(app_bot: AppBot) -> None:
    reset = int(time.time()) + 600
    app_bot.github.rate_headers = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "20", "x-ratelimit-reset": str(reset)}
    refresh(app_bot, 3601)
    app_bot.deliver()
    calls = len(app_bot.github.calls)

    refresh(app_bot, 3602, number=43)
    app_bot.deliver()
    assert len(app_bot.github.calls) == calls
    message = comment_message(app_bot)
    assert message.status == OutboxStatus.PENDING.value
    assert "requests are left" in message.last_error
    wait = (message.next_attempt_at - utc_now()).total_seconds()
    assert 590 <= wait <= 600


def test_expiring_token_renewed(app_bot: AppBot) -> None:
    # githubkit keeps a token until one minute before its expiry, so a token that expires
    # in 30 seconds is never reused: every API call requests a new one.
    app_bot.github.token_lifetime = timedelta(seconds=30)
    refresh(app_bot, 3701)
    app_bot.deliver()
    api_calls = len(app_bot.github.calls) - app_bot.github.count("token")
    # The configuration file, the comment search and the new comment.
    assert api_calls == 3
    assert app_bot.github.count("token") == api_calls


def test_rejected_app_jwt_not_retried(app_bot: AppBot, caplog: pytest.LogCaptureFixture) -> None:
    app_bot.github.rejected_installations[INSTALLATION_ID] = (401, "Bad credentials")
    caplog.set_level(logging.ERROR, logger="bot.github_outbox")
    refresh(app_bot, 3801)
    app_bot.deliver()

    assert comment_message(app_bot).status == OutboxStatus.FAILED.value
    assert "GITHUB_APP_ID and GITHUB_PRIVATE_KEY" in caplog.records[0].getMessage()
    with Session(app_bot.engine) as session:
        # A wrong App key is not the installation's fault: it stays usable once the key is fixed.
        assert github_app.installation_block_reason(session=session, installation_id=INSTALLATION_ID) is None


def test_primary_rate_limit_waits_for_reset(app_bot: AppBot) -> None:
    reset = int(time.time()) + 120
    exhausted = httpx.Response(
        403,
        json={"message": "API rate limit exceeded for installation ID 77."},
        headers={"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )
    app_bot.github.plan("comments", httpx.Response(200, json=[]), exhausted)
    refresh(app_bot, 3901)
    app_bot.deliver()

    message = comment_message(app_bot)
    assert message.status == OutboxStatus.PENDING.value
    assert message.last_error.startswith("rate limit:")
    wait = (message.next_attempt_at - utc_now()).total_seconds()
    assert 110 <= wait <= 120
