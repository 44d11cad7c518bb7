"""`.github/release-bot.yml`: parsing and validation, the documented example, and the file
taking effect (and an invalid file not taking effect) after a push to the default branch."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from bot.pr_comment import PR_COMMENT_KIND
from bot.repo_config import (
    CONFIG_PATH,
    MAX_CONFIG_BYTES,
    REFRESH_KIND,
    ConfigProblem,
    RepoConfig,
    parse_config,
)
from storage import github_app
from storage.outbox import OutboxStatus
from tests.github_app.conftest import AppBot
from tests.github_app.payloads import REPO, START, push_event, send_baseline, send_run

DOCS = Path(__file__).parents[2] / "docs" / "repo-config.md"


def documented_example() -> str:
    """Return the complete example of docs/repo-config.md (its first yaml block)."""
    match = re.search(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert match, "docs/repo-config.md has no ```yaml block"
    return match.group(1)


def test_documented_example_valid() -> None:
    config, problems = parse_config(documented_example())
    assert problems == []
    assert config.pr_comments.enabled is True
    assert config.regressions.relative_threshold_percent == 20
    assert config.regressions.absolute_threshold_seconds == 30
    assert config.regressions.baseline_runs == 10
    assert config.alerts.slack_channel == "#ci-alerts"
    assert config.stage_of_job("CI", "Publish to PyPI") == "publish"
    assert config.stage_of_job("Release", "anything") == "publish"
    assert config.stage_of_job("CI", "pytest (3.12)") == "test"
    assert config.stage_of_step("Run mypy") == "test"


def test_empty_file_means_defaults() -> None:
    assert parse_config("") == (RepoConfig(), [])
    assert parse_config("# only a comment\n") == (RepoConfig(), [])


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("regressions:\n  baseline_runs: 0\n", "regressions.baseline_runs", "greater than or equal to 1"),
        ("regressions:\n  relative_threshold_percent: '20%'\n", "regressions.relative_threshold_percent", "valid number"),
        ("pr_comment:\n  enabled: true\n", "pr_comment", "unknown key"),
        ("stages:\n  test:\n    jobs: ['*test*', '']\n", "stages.test.jobs[1]", "at least 1 character"),
        ("alerts:\n  slack_channel: general\n", "alerts.slack_channel", "is not a Slack channel"),
        ("alerts:\n  notify_on: [failure, boom]\n", "alerts.notify_on[1]", "'failure'"),
        ("stages: [\n", "(file)", "invalid YAML at line 2, column 1"),
        ("- just\n- a list\n", "(top level)", "expected a mapping"),
        ("version: 2\n", "version", "Input should be 1"),
    ],
)
def test_invalid_file_problem(text: str, key: str, reason: str) -> None:
    config, problems = parse_config(text)
    assert config is None
    assert [problem.key for problem in problems] == [key]
    assert reason in problems[0].reason
    assert problems[0].file == CONFIG_PATH


def test_oversized_file_rejected() -> None:
    config, problems = parse_config("#" * (MAX_CONFIG_BYTES + 1))
    assert config is None
    assert problems == [ConfigProblem(CONFIG_PATH, "(file)", "the file is larger than 64 KiB")]


def config_state(app_bot: AppBot):
    with Session(app_bot.engine) as session:
        return github_app.get_repo_config_state(session=session, repo=REPO)


def push_config(app_bot: AppBot, text: str, after: str, branch: str = "main") -> None:
    app_bot.github.files[(REPO, CONFIG_PATH)] = text
    app_bot.send("push", push_event(ref=f"refs/heads/{branch}", after=after, modified=[CONFIG_PATH]))


def test_config_disables_then_enables_comments(app_bot: AppBot) -> None:
    app_bot.github.files[(REPO, CONFIG_PATH)] = "pr_comments:\n  enabled: false\n"
    send_run(app_bot, 4001, head_sha="a1" * 20, jobs=[("build", 60)], pull_numbers=[42])
    app_bot.deliver()
    assert app_bot.github.comments == {}
    assert app_bot.messages(PR_COMMENT_KIND)[0].result == {
        "skipped": "pull request comments are turned off in .github/release-bot.yml"
    }
    # The stored configuration now stops new refreshes before they are queued.
    send_run(app_bot, 4002, head_sha="b2" * 20, jobs=[("build", 60)], pull_numbers=[42], started=START + timedelta(hours=1))
    assert len(app_bot.messages(PR_COMMENT_KIND)) == 1

    push_config(app_bot, "pr_comments:\n  enabled: true\n", after="c" * 40)
    assert app_bot.deliver() == 1
    assert config_state(app_bot).source == "file"
    send_run(app_bot, 4003, head_sha="d4" * 20, jobs=[("build", 60)], pull_numbers=[42], started=START + timedelta(hours=2))
    app_bot.deliver()
    assert len(app_bot.github.comments_on(REPO, 42)) == 1
    assert app_bot.github.count("contents") == 2


def test_invalid_config_keeps_last_valid(app_bot: AppBot) -> None:
    strict = "regressions:\n  relative_threshold_percent: 10\n  absolute_threshold_seconds: 5\n  baseline_runs: 3\n"
    app_bot.github.files[(REPO, CONFIG_PATH)] = strict
    send_baseline(app_bot, count=3, jobs=[("build", 100)])
    push_config(app_bot, "regressions:\n  baseline_runs: 0\nunknown: 1\n", after="e" * 40)
    app_bot.deliver()
    state = config_state(app_bot)
    assert state.error[0] == {"file": CONFIG_PATH, "key": "regressions.baseline_runs", "reason": "Input should be greater than or equal to 1 (got 0)"}
    assert state.error[1]["key"] == "unknown"
    assert state.config is None

    # Read the strict file first, then the invalid one: the strict one stays in force.
    push_config(app_bot, strict, after="f" * 40)
    app_bot.deliver()
    push_config(app_bot, "regressions:\n  baseline_runs: 0\n", after="0f" * 20)
    app_bot.deliver()
    assert config_state(app_bot).config["regressions"]["absolute_threshold_seconds"] == 5

    # +15 s (+15 %) is past the strict margins (10 %, 5 s), not past the defaults (20 %, 30 s).
    send_run(app_bot, 4101, head_sha="a1" * 20, jobs=[("build", 115)], pull_numbers=[42])
    app_bot.deliver()
    body = app_bot.github.comments_on(REPO, 42)[0]["body"]
    assert "🔺 Slower: **build** +15s (+15%)" in body
    assert f"`{CONFIG_PATH}` is invalid" in body
    assert "regressions.baseline&#95;runs: Input should be greater than or equal to 1 (got 0)" in body
    with Session(app_bot.engine) as session:
        status = github_app.describe_repository(session=session, repo=REPO)
    assert status.config_problems[0]["key"] == "regressions.baseline_runs"


def test_invalid_first_file_uses_defaults(app_bot: AppBot) -> None:
    app_bot.github.files[(REPO, CONFIG_PATH)] = "pr_comments: yes please\n"
    send_run(app_bot, 4201, head_sha="a1" * 20, jobs=[("build", 60)], pull_numbers=[42])
    app_bot.deliver()
    body = app_bot.github.comments_on(REPO, 42)[0]["body"]
    assert "pr&#95;comments: Input should be a valid dictionary" in body
    assert config_state(app_bot).source == "default"


def test_config_stages_used_in_comment(app_bot: AppBot) -> None:
    app_bot.github.files[(REPO, CONFIG_PATH)] = "stages:\n  deploy:\n    jobs: ['ship*']\n  build:\n    jobs: ['*']\n"
    send_run(app_bot, 4301, head_sha="a1" * 20, jobs=[("ship it", 30), ("unit tests", 40)], pull_numbers=[42])
    app_bot.deliver()
    body = app_bot.github.comments_on(REPO, 42)[0]["body"]
    assert "| ship it | deploy |" in body
    assert "| unit tests | build |" in body


@pytest.mark.parametrize(
    ("ref", "modified"),
    [("refs/heads/feature", [CONFIG_PATH]), ("refs/heads/main", ["README.md"])],
)
def test_push_without_config_change_ignored(app_bot: AppBot, ref: str, modified: list[str]) -> None:
    app_bot.send("push", push_event(ref=ref, after="c" * 40, modified=modified))
    assert app_bot.messages(REFRESH_KIND) == []
    assert app_bot.deliver() == 0


def test_forced_push_refreshes_config(app_bot: AppBot) -> None:
    app_bot.send("push", push_event(ref="refs/heads/main", after="c" * 40, modified=["README.md"], forced=True))
    assert [message.status for message in app_bot.messages(REFRESH_KIND)] == [OutboxStatus.PENDING.value]
    app_bot.deliver()
    assert config_state(app_bot).source == "default"


def test_unreadable_config_does_not_block_comment(app_bot: AppBot) -> None:
    forbidden = httpx.Response(
        403, json={"message": "Resource not accessible by integration"}, headers={"x-accepted-github-permissions": "contents=read"}
    )
    # Both the background read and the comment sender's own read are forbidden.
    app_bot.github.plan("contents", forbidden, forbidden)
    send_run(app_bot, 4401, head_sha="a1" * 20, jobs=[("build", 60)], pull_numbers=[42])
    app_bot.deliver()

    body = app_bot.github.comments_on(REPO, 42)[0]["body"]
    assert "(file): could not be read: the GitHub App may not read a repository file" in body
    with Session(app_bot.engine) as session:
        status = github_app.describe_repository(session=session, repo=REPO)
    assert [entry["permission"] for entry in status.missing_permissions] == ["contents=read"]
