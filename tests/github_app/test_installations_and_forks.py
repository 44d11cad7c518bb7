"""Which pull request a run belongs to (fork runs have no pull request numbers), and
installations that were removed or suspended: one failed token request, then no calls."""

from __future__ import annotations

import copy
import logging

import pytest
from sqlmodel import Session

from bot.pr_comment import PR_COMMENT_KIND, PR_LOOKUP_KIND
from bot.repo_config import REFRESH_KIND
from handlers.github.reactions import pr_comment as reaction
from storage import github_app
from storage.models import Installation, PullRequest, RunAttempt
from storage.outbox import OutboxStatus
from tests.github_app.conftest import AppBot, load_steps
from tests.github_app.payloads import REPO, installation_event, pull_request_event, send_run

FORK_REPO = "octo-org/widget"
FORK_SHA = "1f0c" + "a" * 36
REMOVED_INSTALLATION = 424242


def send_steps(app_bot: AppBot, steps: list[dict]) -> None:
    for step in steps:
        response = app_bot.send(step["event"], step["payload"], delivery_id=step["delivery_id"])
        assert response.status_code == 202, response.text


def test_fork_run_comments_on_its_pull_request(app_bot: AppBot) -> None:
    send_steps(app_bot, load_steps("fork_pull_request.json"))
    with Session(app_bot.engine) as session:
        attempt = session.get(RunAttempt, (30001, 1))
        assert attempt.conclusion == "success"
        assert attempt.duration_s == 312.0

    app_bot.deliver()
    assert len(app_bot.github.comments_on(FORK_REPO, 42)) == 1
    assert app_bot.github.comments_on(FORK_REPO, 7) == []
    # The stored pull_request event matched by head SHA and head repository: no lookup.
    assert app_bot.github.count("pulls") == 0


def test_fork_run_without_pull_request(app_bot: AppBot, caplog: pytest.LogCaptureFixture) -> None:
    steps = load_steps("fork_pull_request.json")
    del steps[1]
    caplog.set_level(logging.INFO)
    send_steps(app_bot, steps)

    app_bot.deliver()
    assert app_bot.github.count("pulls") == 1
    assert app_bot.github.comments == {}
    assert [message.status for message in app_bot.messages(PR_LOOKUP_KIND)] == [OutboxStatus.SENT.value]
    assert app_bot.messages(PR_COMMENT_KIND) == []
    assert not [record for record in caplog.records if record.levelno > logging.WARNING]
    with Session(app_bot.engine) as session:
        assert session.get(RunAttempt, (30001, 1)).duration_s == 312.0


def test_fork_run_found_through_api(app_bot: AppBot) -> None:
    steps = load_steps("fork_pull_request.json")
    pull = copy.deepcopy(steps[1]["payload"]["pull_request"])
    del steps[1]
    decoy = copy.deepcopy(pull) | {"number": 8, "id": 880008}
    decoy["head"] = decoy["head"] | {"repo": {"full_name": "someone-else/widget"}}
    app_bot.github.pulls_by_commit[(FORK_REPO, FORK_SHA)] = [decoy, pull]
    send_steps(app_bot, steps)

    app_bot.deliver()
    assert len(app_bot.github.comments_on(FORK_REPO, 42)) == 1
    assert app_bot.github.comments_on(FORK_REPO, 8) == []
    assert app_bot.github.comments_on(FORK_REPO, 7) == []
    with Session(app_bot.engine) as session:
        stored = session.get(PullRequest, 880042)
        assert stored.head_repository == "octo-contrib/widget"


def test_removed_installation_left_alone(app_bot: AppBot, caplog: pytest.LogCaptureFixture) -> None:
    github = app_bot.github
    github.rejected_installations[REMOVED_INSTALLATION] = (404, "Not Found")
    run_completed, deleted, late_run = load_steps("installation_removed.json")

    send_steps(app_bot, [run_completed])
    with Session(app_bot.engine) as session:
        attempt = session.get(RunAttempt, (30013, 1))
        assert attempt.conclusion == "failure"
        assert attempt.duration_s == 312.0
    caplog.set_level(logging.WARNING)
    app_bot.deliver()

    assert github.count("token") == 1
    assert len(github.calls) == 1
    assert github.comments == {}
    # The first message (reading the repository configuration) met the rejected token
    # request; the comment was then skipped without a call.
    (refresh,) = app_bot.messages(REFRESH_KIND)
    assert refresh.status == OutboxStatus.FAILED.value
    (message,) = app_bot.messages(PR_COMMENT_KIND)
    assert message.result == {"skipped": refresh.last_error}
    assert [r.levelno for r in caplog.records if "installation token request rejected" in r.getMessage()] == [logging.WARNING]
    assert not [record for record in caplog.records if record.levelno > logging.WARNING]

    # No retry loop: nothing is left to send, even once every wait has passed.
    app_bot.make_due()
    assert app_bot.deliver() == 0

    send_steps(app_bot, [deleted, late_run])
    assert app_bot.deliver() == 0
    assert len(github.calls) == 1
    assert len(app_bot.messages()) == 2
    with Session(app_bot.engine) as session:
        assert session.get(Installation, REMOVED_INSTALLATION).status == "deleted"
        assert session.get(RunAttempt, (30013, 1)) is not None
        status = github_app.describe_repository(session=session, repo="octo-org/widget")
    assert status.installation_status == "deleted"
    assert status.blocked_reason == f"installation {REMOVED_INSTALLATION} is deleted"


def test_pending_message_skipped_after_uninstall(app_bot: AppBot) -> None:
    send_run(app_bot, 2001, head_sha="c3" * 20, jobs=[("build", 60)], pull_numbers=[42])
    app_bot.send("installation", installation_event("deleted"))

    app_bot.deliver()
    assert app_bot.github.calls == []
    (message,) = app_bot.messages(PR_COMMENT_KIND)
    assert message.result == {"skipped": "installation 77 is deleted"}


def test_suspend_and_unsuspend(app_bot: AppBot) -> None:
    app_bot.send("installation", installation_event("suspend"))
    send_run(app_bot, 2101, head_sha="c3" * 20, jobs=[("build", 60)], pull_numbers=[42])
    assert app_bot.deliver() == 0
    assert app_bot.github.calls == []

    app_bot.send("installation", installation_event("unsuspend"))
    send_run(app_bot, 2102, head_sha="d4" * 20, jobs=[("build", 60)], pull_numbers=[42])
    app_bot.deliver()
    assert len(app_bot.github.comments_on(REPO, 42)) == 1


def test_refused_token_until_unsuspend(app_bot: AppBot) -> None:
    github = app_bot.github
    github.rejected_installations[77] = (403, "This installation has been suspended")
    send_run(app_bot, 2201, head_sha="c3" * 20, jobs=[("build", 60)], pull_numbers=[42])
    app_bot.deliver()
    send_run(app_bot, 2202, head_sha="d4" * 20, jobs=[("build", 60)], pull_numbers=[43])
    assert app_bot.deliver() == 0
    assert github.count("token") == 1

    del github.rejected_installations[77]
    app_bot.send("installation", installation_event("unsuspend"))
    send_run(app_bot, 2203, head_sha="e5" * 20, jobs=[("build", 60)], pull_numbers=[43])
    app_bot.deliver()
    assert len(github.comments_on(REPO, 43)) == 1


def test_unknown_pull_request_numbers_used(app_bot: AppBot) -> None:
    # Same-repository runs name their pull requests even when no pull_request event was stored.
    send_run(app_bot, 2301, head_sha="c3" * 20, jobs=[("build", 60)], pull_numbers=[45])
    app_bot.deliver()
    assert len(app_bot.github.comments_on(REPO, 45)) == 1


def test_push_run_without_pull_request_quiet(app_bot: AppBot) -> None:
    app_bot.send("pull_request", pull_request_event(7, head_sha="e" * 40))
    send_run(app_bot, 2401, head_sha="f6" * 20, jobs=[("build", 60)], event="push", head_branch="feature")
    app_bot.deliver()
    assert [message.kind for message in app_bot.messages()] == [REFRESH_KIND]
    assert app_bot.github.count("comments") == 0
    assert app_bot.github.count("pulls") == 0


def test_removed_repository_not_commented(app_bot: AppBot) -> None:
    app_bot.send("installation_repositories", {
        "action": "removed",
        "installation": {"id": 77},
        "repositories_removed": [{"id": 501, "full_name": REPO}],
    })
    send_run(app_bot, 2501, head_sha="c3" * 20, jobs=[("build", 60)], pull_numbers=[42])
    assert app_bot.deliver() == 0
    assert app_bot.github.calls == []


def test_reaction_failure_keeps_run(app_bot: AppBot, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("reaction bug")

    monkeypatch.setattr(reaction, "queue_comment_refresh", broken)
    send_run(app_bot, 2601, head_sha="c3" * 20, jobs=[("build", 60)], pull_numbers=[42])

    with Session(app_bot.engine) as session:
        assert session.get(RunAttempt, (2601, 1)).status == "completed"
    assert app_bot.messages() == []
