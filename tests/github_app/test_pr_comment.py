"""The build-profile comment: created once, updated on each push, one per pull request even
when two runs complete at once, and sent through the real App authentication flow."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlmodel import Session

from bot import outbox as outbox_sender
from bot.pr_comment import PR_COMMENT_KIND
from bot.render_markdown import MARKER
from bot.repo_config import REFRESH_KIND
from storage import github_app, outbox
from storage.db import session_scope
from storage.outbox import OutboxStatus
from tests.github_app.conftest import AppBot
from tests.github_app.payloads import REPO, START, pull_request_event, send_baseline, send_run

SHA_1 = "a1" * 20
SHA_2 = "b2" * 20


def test_comment_created_then_updated(app_bot: AppBot) -> None:
    github = app_bot.github
    app_bot.send("pull_request", pull_request_event(42, head_sha=SHA_1))
    send_run(app_bot, 1001, head_sha=SHA_1, jobs=[("build", 120), ("test", 200)], pull_numbers=[42])

    # The repository configuration is read first, then the comment is written.
    assert [message.kind for message in app_bot.messages()] == [REFRESH_KIND, PR_COMMENT_KIND]
    assert app_bot.deliver() == 2
    comments = github.comments_on(REPO, 42)
    assert len(comments) == 1
    first_body = comments[0]["body"]
    assert first_body.startswith(MARKER)
    assert f"Build profile of {SHA_1[:12]}" in first_body
    assert "#### ✅ CI (pull&#95;request)" in first_body
    assert "| build | build | ✅ | 5s | 2m 0s | – |" in first_body

    app_bot.send("pull_request", pull_request_event(42, head_sha=SHA_2, action="synchronize"))
    send_run(app_bot, 1002, head_sha=SHA_2, jobs=[("build", 130), ("test", 210)], pull_numbers=[42],
             started=START + timedelta(hours=1))
    assert app_bot.deliver() == 1

    comments = github.comments_on(REPO, 42)
    assert len(comments) == 1
    assert f"Build profile of {SHA_2[:12]}" in comments[0]["body"]
    assert "2m 10s" in comments[0]["body"]
    assert github.count("comments", "POST") == 1
    assert github.count("comment", "PATCH") == 1
    # One installation token served both deliveries: it is cached until shortly before expiry.
    assert github.count("token") == 1


def test_older_run_does_not_replace_newer_head(app_bot: AppBot) -> None:
    send_run(app_bot, 1102, head_sha=SHA_2, jobs=[("build", 60)], pull_numbers=[42], started=START + timedelta(hours=1))
    send_run(app_bot, 1101, head_sha=SHA_1, jobs=[("build", 60)], pull_numbers=[42])
    app_bot.deliver()

    body = app_bot.github.comments_on(REPO, 42)[0]["body"]
    assert f"Build profile of {SHA_2[:12]}" in body


def test_two_workflows_share_one_message(app_bot: AppBot) -> None:
    send_run(app_bot, 1201, head_sha=SHA_1, jobs=[("build", 60)], pull_numbers=[42], name="CI", workflow_id=10)
    send_run(app_bot, 1202, head_sha=SHA_1, jobs=[("lint", 30)], pull_numbers=[42], name="Lint", workflow_id=11)

    pending = [m for m in app_bot.messages(PR_COMMENT_KIND) if m.status == OutboxStatus.PENDING.value]
    assert len(pending) == 1
    app_bot.deliver()
    comments = app_bot.github.comments_on(REPO, 42)
    assert len(comments) == 1
    assert "CI (pull&#95;request)" in comments[0]["body"]
    assert "Lint (pull&#95;request)" in comments[0]["body"]


def test_concurrent_senders_one_comment(app_bot: AppBot) -> None:
    send_run(app_bot, 1301, head_sha=SHA_1, jobs=[("build", 60)], pull_numbers=[42])
    app_bot.github.files[(REPO, ".github/release-bot.yml")] = ""
    # A second process queued its own refresh before seeing the first one.
    with session_scope(app_bot.engine) as session:
        outbox.enqueue(session=session, kind=PR_COMMENT_KIND, target=f"{REPO}#42",
                       payload={"repo": REPO, "number": 42}, dedupe_key="second-process")
    with session_scope(app_bot.engine) as session:
        claimed = [m for m in outbox.claim_due(session=session, limit=10, lease=timedelta(minutes=5)) if m.kind == PR_COMMENT_KIND]
    assert len(claimed) == 2

    second_done = threading.Event()
    first_create = threading.Event()

    def hold_first_create() -> None:
        if not first_create.is_set():
            first_create.set()
            # Keep the first comment in flight until the other sender has tried its turn.
            second_done.wait(timeout=30)

    app_bot.github.before["comments"] = hold_first_create
    outcomes: dict[int, str] = {}

    def send(index: int) -> None:
        if index == 1:
            first_create.wait(timeout=30)
        outcomes[index] = outbox_sender.deliver_one(app_bot.engine, claimed[index])
        if index == 1:
            second_done.set()

    threads = [threading.Thread(target=send, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert outcomes == {0: "sent", 1: "retry"}
    app_bot.make_due()
    app_bot.deliver()
    assert len(app_bot.github.comments_on(REPO, 42)) == 1
    assert app_bot.github.count("comments", "POST") == 1


def test_lost_comment_id_found_by_marker(app_bot: AppBot) -> None:
    send_run(app_bot, 1401, head_sha=SHA_1, jobs=[("build", 60)], pull_numbers=[42])
    app_bot.deliver()
    # The process died after creating the comment and before storing its id.
    with session_scope(app_bot.engine) as session:
        row = github_app.get_pr_comment(session=session, repo=REPO, pr_number=42)
        row.comment_id = None
        row.body_digest = None
        session.add(row)
    send_run(app_bot, 1402, head_sha=SHA_2, jobs=[("build", 70)], pull_numbers=[42], started=START + timedelta(hours=1))
    app_bot.deliver()

    assert len(app_bot.github.comments_on(REPO, 42)) == 1
    assert app_bot.github.count("comment", "PATCH") == 1


def test_deleted_comment_created_again(app_bot: AppBot) -> None:
    send_run(app_bot, 1501, head_sha=SHA_1, jobs=[("build", 60)], pull_numbers=[42])
    app_bot.deliver()
    app_bot.github.comments[(REPO, 42)].clear()
    send_run(app_bot, 1502, head_sha=SHA_2, jobs=[("build", 70)], pull_numbers=[42], started=START + timedelta(hours=1))
    app_bot.deliver()

    comments = app_bot.github.comments_on(REPO, 42)
    assert len(comments) == 1
    assert SHA_2[:12] in comments[0]["body"]


def test_redelivered_completion_queues_nothing(app_bot: AppBot) -> None:
    send_run(app_bot, 1601, head_sha=SHA_1, jobs=[("build", 60)], pull_numbers=[42])
    app_bot.deliver()
    send_run(app_bot, 1601, head_sha=SHA_1, jobs=[], pull_numbers=[42])

    assert app_bot.deliver() == 0
    assert app_bot.github.count("comments", "POST") == 1


def test_closed_pull_request_not_commented(app_bot: AppBot) -> None:
    app_bot.send("pull_request", pull_request_event(42, head_sha=SHA_1, state="closed", action="closed"))
    send_run(app_bot, 1701, head_sha=SHA_1, jobs=[("build", 60)], pull_numbers=[42])
    app_bot.deliver()

    assert app_bot.messages(PR_COMMENT_KIND) == []
    assert app_bot.github.count("comments") == 0


def test_comparison_with_base_branch(app_bot: AppBot) -> None:
    send_baseline(app_bot, count=5, jobs=[("build", 100), ("test", 200), ("lint", 100)])
    app_bot.send("pull_request", pull_request_event(42, head_sha=SHA_1))
    # build: +60 s (+60 %) is slower; test: +35 s is only +17.5 %; lint: -50 s (-50 %) is faster.
    send_run(app_bot, 1801, head_sha=SHA_1, jobs=[("build", 160), ("test", 235), ("lint", 50)], pull_numbers=[42])
    app_bot.deliver()

    body = app_bot.github.comments_on(REPO, 42)[0]["body"]
    assert "Against the median of the last 5 successful runs on **main**: **1 slower**, 1 faster" in body
    assert "🔺 Slower: **build** +1m 0s (+60%)" in body
    assert "🔻 Faster: **lint** -50s (-50%)" in body
    assert "| test | test | ✅ | 5s | 3m 55s | +35s (+18%) |" in body


def test_comment_session_has_no_open_transaction(app_bot: AppBot) -> None:
    send_run(app_bot, 1901, head_sha=SHA_1, jobs=[("build", 60)], pull_numbers=[42])
    seen: list[bool] = []

    def check_no_lock() -> None:
        # The comment row can be written while the sender talks to GitHub.
        with Session(app_bot.engine) as session:
            row = github_app.get_pr_comment(session=session, repo=REPO, pr_number=42)
            row.refreshed_at = None
            session.add(row)
            session.commit()
            seen.append(True)

    app_bot.github.before["comments"] = check_no_lock
    app_bot.deliver()
    assert seen
