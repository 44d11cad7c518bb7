"""Alerts beside the GitHub App: "Re-run failed jobs" through the App's installation token (the
GitHub API behind httpx.MockTransport), and an installation removed while a run fails."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot import outbox as outbox_sender
from bot import pr_comment
from bot.alert_slack import RerunSender
from bot.config import Settings, load_settings
from bot.github_client import GitHubApp
from storage import incidents
from tests.alerts import payloads
from tests.alerts.conftest import AlertDriver, AlertSlack
from tests.alerts.test_silences import press
from tests.conftest import WEBHOOK_SECRET
from tests.github_app.fake_github import API_PREFIX, Call, FakeGitHub
from tests.slack.conftest import SIGNING_SECRET, USER_ID, all_text
from tests.slack.fake_slack import BOT_TOKEN

APP_ID = 4242
API_URL = f"http://127.0.0.1:9{API_PREFIX}"
RERUN = re.compile(r"^/repos/([^/]+/[^/]+)/actions/runs/(\d+)/rerun-failed-jobs$")


class RerunGitHub(FakeGitHub):
    """The fake GitHub API plus POST /repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs."""

    rerun_status: int = 201

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(API_PREFIX)
        match = RERUN.match(path)
        if match is None:
            return super().handle(request)
        with self.lock:
            self.calls.append(Call(request.method, "rerun", path, None))
        if request.method != "POST":
            return self.reject(request, "rerun-failed-jobs takes POST")
        failure = self.check_token(request)
        if failure is not None:
            return failure
        if self.rerun_status != 201:
            return httpx.Response(
                self.rerun_status, json={"message": "This workflow run is not rerunnable"}
            )
        return httpx.Response(201, json={})


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture
def fake_github(app_key: tuple[str, str]) -> Iterator[RerunGitHub]:
    fake = RerunGitHub(app_id=APP_ID, public_key=app_key[1])
    yield fake
    assert not fake.unplanned, f"unplanned GitHub requests: {fake.unplanned}"


@pytest.fixture
def settings(database_url: str, fake_slack: AlertSlack, app_key: tuple[str, str]) -> Settings:
    """Slack (the fake) and a GitHub App whose API is the MockTransport fake."""
    return load_settings(
        _env_file=None,
        database_url=database_url,
        github_webhook_secret=WEBHOOK_SECRET,
        worker_poll_seconds=0.05,
        scheduler_enabled=False,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.api_url,
        github_app_id=APP_ID,
        github_private_key=app_key[0],
        github_api_url=API_URL,
    )


@pytest.fixture
def app_alerts(
    alerts: AlertDriver,
    settings: Settings,
    fake_github: RerunGitHub,
    monkeypatch: pytest.MonkeyPatch,
) -> AlertDriver:
    """The alert driver whose GitHub senders call the fake through httpx.MockTransport."""
    monkeypatch.setattr(pr_comment, "SETTLE_SECONDS", 0.0)
    github = GitHubApp.from_settings(settings, transport=fake_github.transport)
    assert github is not None
    for kind, sender in pr_comment.github_senders(alerts.engine, github).items():
        monkeypatch.setitem(outbox_sender.SENDERS, kind, sender)
    monkeypatch.setitem(
        outbox_sender.SENDERS, incidents.RERUN_KIND, RerunSender(alerts.engine, github)
    )
    return alerts


def test_rerun_button_calls_github_once(app_alerts: AlertDriver, fake_github: RerunGitHub) -> None:
    app_alerts.subscribe()
    app_alerts.bot.send("workflow_run", payloads.run(33001, run_number=12))
    app_alerts.settle()
    [failure] = app_alerts.failures()

    first = press(app_alerts, "alert_rerun", str(failure.id))
    second = press(app_alerts, "alert_rerun", str(failure.id))
    assert (
        "Asked GitHub to re-run the failed jobs of <https://github.com/octo-org/widget/actions/runs/33001|CI #12>"
        in all_text(first)
    )
    assert "Asked GitHub to re-run" in all_text(second)
    app_alerts.settle()

    reruns = [call for call in fake_github.calls if call.route == "rerun"]
    assert [(call.method, call.path) for call in reruns] == [
        ("POST", "/repos/octo-org/widget/actions/runs/33001/rerun-failed-jobs")
    ]
    [note] = app_alerts.fake.replies()
    assert note["thread_ts"] == app_alerts.posts_stored()[0].ts
    assert (
        f"<@{USER_ID}> re-ran the failed jobs of <https://github.com/octo-org/widget/actions/runs/33001|CI #12>"
        in all_text(note)
    )


def test_rerun_rejected_is_noted(app_alerts: AlertDriver, fake_github: RerunGitHub) -> None:
    fake_github.rerun_status = 403
    app_alerts.subscribe()
    app_alerts.bot.send("workflow_run", payloads.run(33101))
    app_alerts.settle()
    press(app_alerts, "alert_rerun", str(app_alerts.failures()[0].id))
    app_alerts.settle()
    [note] = app_alerts.fake.replies()
    assert "The re-run of the failed jobs of" in all_text(note)
    assert "This workflow run is not rerunnable" in all_text(note)
    assert [message.status for message in app_alerts.outbox(incidents.RERUN_KIND)] == ["failed"]


def pull_request_run(run_id: int, sha: str, started: str) -> dict[str, Any]:
    payload = payloads.run(
        run_id,
        sha=sha,
        started=started,
        updated=started.replace(":00:00Z", ":05:12Z"),
        event="pull_request",
    )
    payload["workflow_run"]["pull_requests"] = [
        {
            "id": 880045,
            "number": 45,
            "head": {"ref": "feat/x", "sha": sha, "repo": {"id": 1001, "name": "widget"}},
            "base": {"ref": "main", "sha": "d" * 40, "repo": {"id": 1001, "name": "widget"}},
        }
    ]
    return payload


def test_installation_removed_midflight(app_alerts: AlertDriver, fake_github: RerunGitHub) -> None:
    app_alerts.subscribe("subscribe octo-org/widget")
    fake_github.plan("token", httpx.Response(404, json={"message": "Not Found"}))

    # Uninstalled on GitHub, but installation.deleted has not arrived: the token request fails once.
    response = app_alerts.bot.send(
        "workflow_run", pull_request_run(30013, "1" * 40, "2024-06-03T09:00:00Z")
    )
    assert response.status_code == 202
    app_alerts.settle()
    assert len(app_alerts.fake.posts()) == 1
    assert "CI failed in octo-org/widget" in all_text(app_alerts.fake.posts()[0])
    assert fake_github.count("token") == 1

    deleted = payloads.installation_deleted()
    deleted["repositories"] = [
        {"id": 1001, "name": "widget", "full_name": "octo-org/widget", "private": False}
    ]
    assert app_alerts.bot.send("installation", deleted).status_code == 202
    app_alerts.settle()
    assert (
        app_alerts.bot.send(
            "workflow_run",
            payloads.run(
                30014, sha="4" * 40, started="2024-06-03T19:00:00Z", updated="2024-06-03T19:05:12Z"
            ),
        ).status_code
        == 202
    )
    app_alerts.settle()

    assert len(app_alerts.fake.calls_of("chat.postMessage")) == 1
    assert fake_github.count("token") == 1
    assert len(fake_github.calls) == 1
    listing = all_text(app_alerts.ask("subscriptions"))
    assert "alerts paused: the GitHub App was uninstalled from octo-org" in listing
    assert [failure.run_id for failure in app_alerts.failures()] == [30013]


def test_unsuspend_resumes_alerts(app_alerts: AlertDriver) -> None:
    app_alerts.subscribe()
    suspended = payloads.installation_created(("widget",))
    suspended["action"] = "suspend"
    app_alerts.bot.send("installation", suspended)
    listing = all_text(app_alerts.ask("subscriptions"))
    assert "alerts paused: the GitHub App installation of octo-org is suspended" in listing
    app_alerts.bot.send("workflow_run", payloads.run(33201))
    app_alerts.settle()
    assert app_alerts.fake.posts() == []

    suspended["action"] = "unsuspend"
    app_alerts.bot.send("installation", suspended)
    assert "alerts paused" not in all_text(app_alerts.ask("subscriptions"))
    app_alerts.bot.send("workflow_run", payloads.run(33202, sha="e" * 40))
    app_alerts.settle()
    assert len(app_alerts.fake.posts()) == 1


def test_deleted_installation_stays_paused(app_alerts: AlertDriver) -> None:
    app_alerts.subscribe()
    app_alerts.bot.send("installation", payloads.installation_deleted())
    # A late `created` of the same id does not bring a deleted installation back.
    app_alerts.bot.send("installation", payloads.installation_created(("widget",)))
    listing = all_text(app_alerts.ask("subscriptions"))
    assert "install the App again, then run /release subscribe again to resume" in listing
