"""Contract tests: every GitHub call the bot makes, sent to a Prism mock of GitHub's own
REST API description (`@octokit/openapi`), which returns 422 for a request the description
does not allow. The App authentication runs for real: the App JWT is signed with a real RSA
key and the installation token from the mock is sent on the calls that follow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot import outbox as outbox_sender
from bot import pr_comment
from bot.app import create_app
from bot.build_profile import JobTiming, WorkflowProfile
from bot.config import Settings, load_settings
from bot.github_client import GitHubApp, RequestRejected
from bot.pr_comment import PR_COMMENT_KIND, PR_LOOKUP_KIND
from bot.render_markdown import MAX_COMMENT_CHARS, CommentView, render_build_profile
from bot.repo_config import CONFIG_PATH
from storage.outbox import OutboxStatus
from tests.conftest import WEBHOOK_SECRET
from tests.github_app.conftest import APP_ID, AppBot, AppKey
from tests.github_app.payloads import START, pull_request_event, send_run, workflow_run_event
from tests.github_app.prism import PrismServer, PrismUnavailable, install_packages, start_prism

REPO = "octocat/hello-world"


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismServer]:
    """Prism serving GitHub's REST API description on 127.0.0.1."""
    try:
        install_packages()
    except PrismUnavailable as exc:
        pytest.skip(str(exc))
    server = start_prism(Path(tmp_path_factory.mktemp("prism")))
    yield server
    server.stop()


@pytest.fixture
def github(prism: PrismServer, app_key: AppKey) -> GitHubApp:
    return GitHubApp(app_id=APP_ID, private_key=app_key.private_pem, api_url=prism.url)


def big_body() -> str:
    t0 = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)
    jobs = [
        JobTiming(id=n, name=f"shard {n} | <{'x' * 200}>", stage="test", status="completed", conclusion="success",
                  created_at=t0, started_at=t0, completed_at=t0 + timedelta(seconds=n + 1), queue_s=1.0,
                  duration_s=n + 1.0, html_url=None)
        for n in range(300)
    ]
    profile = WorkflowProfile(
        workflow_name="CI", event="pull_request", run_id=1, run_number=1, attempt=1, html_url=None, status="completed",
        conclusion="success", wall_s=400.0, queue_s=300.0, max_queue_s=1.0, execution_s=45150.0, jobs=jobs,
    )
    return render_build_profile(CommentView(head_sha="a" * 40, workflows=[profile]))


def test_comment_calls_match_description(github: GitHubApp) -> None:
    body = big_body()
    assert 40_000 < len(body) <= MAX_COMMENT_CHARS

    comments = github.list_issue_comments(1, REPO, 42)
    created = github.create_issue_comment(1, REPO, 42, body)
    updated = github.update_issue_comment(1, REPO, created["id"], body)

    assert isinstance(comments, list)
    assert isinstance(created["id"], int)
    assert updated is not None
    assert updated["id"] == created["id"]


def test_lookup_and_file_calls_match_description(github: GitHubApp) -> None:
    pulls = github.list_pulls_for_commit(1, REPO, "6dcb09b5b57875f334f61aebed695e2e4193db5e")
    repo_file = github.get_file(1, REPO, CONFIG_PATH)

    assert all(isinstance(pull["number"], int) for pull in pulls)
    assert repo_file is not None
    # The description's example file contains invalid base64, which is reported, not raised.
    assert repo_file.text or repo_file.problem


def test_invalid_request_rejected_422(github: GitHubApp) -> None:
    # A comment without a body: the real API rejects it, and so does the description.
    with pytest.raises(RequestRejected) as caught:
        github.call(1, "create a pull request comment", lambda client: client.request(
            "POST", f"/repos/{REPO}/issues/42/comments", json={"text": "no body"}
        ))
    assert caught.value.status_code == 422


@pytest.fixture
def prism_bot(database_url: str, app_key: AppKey, prism: PrismServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppBot]:
    """The real app calling the Prism mock over HTTP; its outbox sends only when the test calls `deliver`."""
    settings: Settings = load_settings(
        _env_file=None, database_url=database_url, github_webhook_secret=WEBHOOK_SECRET, worker_poll_seconds=0.05,
        github_app_id=APP_ID, github_private_key=app_key.private_pem, github_api_url=prism.url, scheduler_enabled=False,
    )
    monkeypatch.setattr(pr_comment, "SETTLE_SECONDS", 0.0)
    app = create_app(settings)
    with TestClient(app) as client:
        app.state.outbox_worker.stop()
        github = GitHubApp.from_settings(settings)
        for kind, sender in pr_comment.github_senders(app.state.engine, github).items():
            monkeypatch.setitem(outbox_sender.SENDERS, kind, sender)
        yield AppBot(client=client, engine=app.state.engine)


def test_pull_request_comment_flow(prism_bot: AppBot) -> None:
    prism_bot.send("pull_request", pull_request_event(42, head_sha="a1" * 20))
    send_run(prism_bot, 6001, head_sha="a1" * 20, jobs=[("build", 60), ("test", 90)], pull_numbers=[42])
    prism_bot.deliver()
    send_run(prism_bot, 6002, head_sha="b2" * 20, jobs=[("build", 70)], pull_numbers=[42], started=START + timedelta(hours=1))
    prism_bot.deliver()
    # A fork's run: the lookup finds only the description's example pull request, whose head differs.
    prism_bot.send("workflow_run", workflow_run_event(6003, head_sha="c3" * 20, started=START, seconds=60,
                                                      head_repo="someone/widget"))
    prism_bot.deliver()

    comment_results = [(m.status, m.result.get("action")) for m in prism_bot.messages(PR_COMMENT_KIND)]
    assert comment_results == [(OutboxStatus.SENT.value, "created"), (OutboxStatus.SENT.value, "updated")]
    (lookup,) = prism_bot.messages(PR_LOOKUP_KIND)
    assert lookup.status == OutboxStatus.SENT.value
    assert lookup.result == {"pull_requests": []}
