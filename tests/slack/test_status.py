"""`/release status`: dashboards from stored facts, running jobs, releases, GitHub App problems,
and escaping."""

from __future__ import annotations

import re
from dataclasses import asdict

from bot.repo_config import parse_config
from storage import github_app
from tests.slack import payloads
from tests.slack.conftest import SlackDriver, all_text, texts

BUILD_STEPS_DONE = [
    {
        "name": "Set up job",
        "status": "completed",
        "conclusion": "success",
        "number": 1,
        "started_at": "2024-06-03T10:00:20Z",
        "completed_at": "2024-06-03T10:00:22Z",
    },
    {
        "name": "Run actions/checkout@v4",
        "status": "completed",
        "conclusion": "success",
        "number": 2,
        "started_at": "2024-06-03T10:00:22Z",
        "completed_at": "2024-06-03T10:00:30Z",
    },
    {
        "name": "Run make test",
        "status": "completed",
        "conclusion": "success",
        "number": 3,
        "started_at": "2024-06-03T10:00:30Z",
        "completed_at": "2024-06-03T10:05:30Z",
    },
    {
        "name": "Complete job",
        "status": "completed",
        "conclusion": "success",
        "number": 4,
        "started_at": "2024-06-03T10:05:30Z",
        "completed_at": "2024-06-03T10:05:32Z",
    },
]
BUILD_STEPS_RUNNING = [
    BUILD_STEPS_DONE[0],
    {
        "name": "Run actions/checkout@v4",
        "status": "in_progress",
        "conclusion": None,
        "number": 2,
        "started_at": "2024-06-03T10:00:22Z",
        "completed_at": None,
    },
]


def linked(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    slack.ask("subscribe octo-org/widget")


def test_completed_job_after_late_in_progress_not_running(slack: SlackDriver) -> None:
    linked(slack)
    build = {"name": "build", "created": "2024-06-03T10:00:00Z"}
    slack.bot.send(
        "workflow_job",
        payloads.workflow_job(
            50001,
            30002,
            action="queued",
            status="queued",
            conclusion=None,
            started="2024-06-03T10:00:00Z",
            completed=None,
            **build,
        ),
    )
    slack.bot.send(
        "workflow_job",
        payloads.workflow_job(
            50001,
            30002,
            started="2024-06-03T10:00:20Z",
            completed="2024-06-03T10:05:32Z",
            steps=BUILD_STEPS_DONE,
            **build,
        ),
    )
    slack.bot.send(
        "workflow_job",
        payloads.workflow_job(
            50001,
            30002,
            action="in_progress",
            status="in_progress",
            conclusion=None,
            started="2024-06-03T10:00:20Z",
            completed=None,
            steps=BUILD_STEPS_RUNNING,
            **build,
        ),
    )

    answer = slack.ask("status octo-org/widget")
    text = all_text(answer)

    assert "*Running jobs:* 0" in text
    assert "running since" not in text
    assert ":hourglass_flowing_sand:" not in text
    assert "Release status of octo-org/widget: 1 run, 0 running jobs" == answer["text"]


def test_running_job_listed(slack: SlackDriver) -> None:
    linked(slack)
    slack.bot.send(
        "workflow_run",
        payloads.workflow_run(30003, action="in_progress", status="in_progress", conclusion=None),
    )
    slack.bot.send(
        "workflow_job",
        payloads.workflow_job(
            50011,
            30003,
            name="lint",
            action="in_progress",
            status="in_progress",
            conclusion=None,
            completed=None,
        ),
    )
    slack.bot.send("workflow_job", payloads.workflow_job(50012, 30003, name="build"))

    text = all_text(slack.ask("status octo-org/widget"))

    assert "*Running jobs:* 1" in text
    assert (
        "<https://github.com/octo-org/widget/actions/runs/30003/job/50011|lint> · running since 2024-06-03 10:00 UTC"
        in text
    )
    assert "job/50012|build> · running" not in text


def test_user_text_escaped_in_status(slack: SlackDriver) -> None:
    linked(slack)
    slack.bot.send(
        "workflow_run",
        payloads.workflow_run(
            30021,
            name="CI <prod> & docs",
            conclusion="failure",
            branch="fix-->-parser/<!channel>&co",
            title="rename a -> b <!here> & ping <@U0USER0002>",
            started="2024-06-03T23:00:00Z",
            updated="2024-06-03T23:05:12Z",
        ),
    )

    answer = slack.ask("status octo-org/widget")
    mrkdwn = "\n".join(
        texts({"blocks": [block for block in answer["blocks"] if block["type"] != "header"]})
    )

    assert "fix--&gt;-parser/&lt;!channel&gt;&amp;co" in mrkdwn
    assert "CI &lt;prod&gt; &amp; docs" in mrkdwn
    assert "rename a -&gt; b &lt;!here&gt; &amp; ping &lt;@U0USER0002&gt;" in mrkdwn
    assert (
        "<https://github.com/octo-org/widget/actions/runs/30021|CI &lt;prod&gt; &amp; docs #100>"
        in mrkdwn
    )
    assert (
        "<https://github.com/octo-org/widget/tree/fix--%3E-parser/%3C%21channel%3E%26co|" in mrkdwn
    )
    for text in texts(answer):
        # The only `<` left open the bot's own links and channel references.
        for construct in re.findall(r"<[^>]*>", text):
            assert construct.startswith(("<https://", "<#C")), construct
        assert "<!" not in text
        assert "<@" not in text


def test_plain_text_not_double_escaped(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    slack.ask("subscribe octo-org/widget")
    slack.bot.send("workflow_run", payloads.workflow_run(30022, name="Build & <ship>"))
    answer = slack.ask("profile octo-org/widget 30022")
    header = answer["blocks"][0]
    assert header["type"] == "header"
    assert header["text"]["type"] == "plain_text"
    assert header["text"]["text"] == "Profile: Build & <ship> #100 · octo-org/widget"


def test_release_version_dashboard(slack: SlackDriver) -> None:
    linked(slack)
    slack.bot.send(
        "release",
        {
            "action": "published",
            "release": {
                "id": 9001,
                "tag_name": "v1.2.0",
                "name": "Widget 1.2",
                "draft": False,
                "prerelease": False,
                "author": {"login": "rel-user"},
                "html_url": "https://github.com/octo-org/widget/releases/tag/v1.2.0",
                "created_at": "2024-06-03T11:00:00Z",
                "published_at": "2024-06-03T11:00:00Z",
            },
            "repository": payloads.repository(),
            "installation": {"id": payloads.INSTALLATION_ID},
        },
    )
    slack.bot.send(
        "workflow_run",
        payloads.workflow_run(
            30030,
            name="Publish",
            branch="v1.2.0",
            event="release",
            started="2024-06-03T11:00:05Z",
            updated="2024-06-03T11:04:05Z",
        ),
    )
    slack.bot.send(
        "workflow_job",
        payloads.workflow_job(
            50301,
            30030,
            name="publish-to-pypi",
            workflow="Publish",
            branch="v1.2.0",
            started="2024-06-03T11:01:00Z",
            completed="2024-06-03T11:03:00Z",
        ),
    )
    slack.bot.send("workflow_run", payloads.workflow_run(30031, branch="main", run_number=101))

    latest = all_text(slack.ask("status octo-org/widget"))
    asked = all_text(slack.ask("status widget v1.2.0"))

    for text in (latest, asked):
        assert "Release status: octo-org/widget v1.2.0" in text
        assert (
            "*Release* <https://github.com/octo-org/widget/releases/tag/v1.2.0|v1.2.0 (Widget 1.2)> · published · by rel-user"
            in text
        )
        assert "*Publish status:* :white_check_mark: completed" in text
        assert (
            "*<https://github.com/octo-org/widget/actions/runs/30030/job/50301|publish-to-pypi>* :white_check_mark:\n"
            "completed · 2m 0s · success"
        ) in text
        assert "Publish #100>" in text
        assert "triggered by dev-user" in text
        assert "runs/30031" not in text


def test_unknown_version_lists_releases(slack: SlackDriver) -> None:
    linked(slack)
    text = all_text(slack.ask("status octo-org/widget v9.9.9"))
    assert "unknown version 'v9.9.9' of octo-org/widget: no release of it is recorded yet" in text


def test_channel_without_repo_shows_followed(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget", "gadget")
    slack.ask("subscribe octo-org/widget")
    slack.ask("subscribe octo-org/gadget")
    slack.bot.send("workflow_run", payloads.workflow_run(30040))
    text = all_text(slack.ask("status"))
    assert "Release status: 2 repositories followed in this channel" in text
    assert "*<https://github.com/octo-org/widget|octo-org/widget>*" in text
    assert "*<https://github.com/octo-org/gadget|octo-org/gadget>* · no runs recorded" in text


def test_channel_following_nothing(slack: SlackDriver) -> None:
    text = all_text(slack.ask("status"))
    assert "This channel follows no repositories" in text


def test_share_button_posts_in_channel(slack: SlackDriver) -> None:
    linked(slack)
    answer = slack.ask("status octo-org/widget")
    actions = [block for block in answer["blocks"] if block["type"] == "actions"]
    button = actions[0]["elements"][0]
    assert button["text"]["text"] == "Post to channel"
    assert button["value"] == "status octo-org/widget"

    before = len(slack.fake.responses)
    response = slack.press_share(button["value"])
    assert response.status_code == 200
    assert slack.fake.wait_for(lambda: len(slack.fake.responses) > before)
    shared = slack.fake.responses[before]
    assert shared["response_type"] == "in_channel"
    assert shared["replace_original"] is False
    assert not [block for block in shared["blocks"] if block["type"] == "actions"]


def test_app_missing_permission_shown(slack: SlackDriver) -> None:
    linked(slack)
    assert "*GitHub App*" not in all_text(slack.ask("status octo-org/widget"))

    with slack.bot.session() as session:
        github_app.record_missing_permission(
            session=session,
            installation_id=payloads.INSTALLATION_ID,
            permission="pull_requests=write",
            operation="create a pull request comment",
        )
        session.commit()
    text = all_text(slack.ask("status octo-org/widget"))

    assert "*GitHub App*" in text
    assert (
        ":warning: missing App permission *pull_requests: write* (needed to create a pull request "
        "comment): grant it in the GitHub App's settings, then accept the new permissions on the "
        "installation"
    ) in text


def test_app_blocked_calls_shown(slack: SlackDriver) -> None:
    linked(slack)
    with slack.bot.session() as session:
        github_app.record_token_rejected(
            session=session,
            installation_id=payloads.INSTALLATION_ID,
            error="GitHub rejected the token request of installation 424242 (HTTP 404)",
        )
        session.commit()

    text = all_text(slack.ask("status octo-org/widget"))

    assert (
        ":no_entry: release-bot makes no GitHub calls for this repository: GitHub rejected the "
        "token request of installation 424242 (HTTP 404)"
    ) in text


def test_app_invalid_config_shown(slack: SlackDriver) -> None:
    linked(slack)
    _, problems = parse_config('pr_comments:\n  enabled: maybe\n  "<!channel>": 1\n')
    with slack.bot.session() as session:
        github_app.store_repo_config_error(
            session=session,
            repo="octo-org/widget",
            installation_id=payloads.INSTALLATION_ID,
            problems=[asdict(problem) for problem in problems],
            blob_sha="3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a",
        )
        session.commit()

    answer = slack.ask("status octo-org/widget")
    text = all_text(answer)

    assert (
        ":warning: invalid .github/release-bot.yml · key pr_comments.enabled: Input should be a "
        "valid boolean (got 'maybe')"
    ) in text
    assert (
        ":warning: invalid .github/release-bot.yml · key pr_comments.&lt;!channel&gt;: unknown key; "
        "check its spelling against docs/repo-config.md"
    ) in text
    assert "The last valid configuration, or the defaults, stays in force" in text
    for block_text in texts(answer):
        assert "<!" not in block_text


def test_app_deleted_installation_notice(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget", "gadget")
    slack.ask("subscribe octo-org/widget")
    slack.ask("subscribe octo-org/gadget")
    with slack.bot.session() as session:
        github_app.record_missing_permission(
            session=session,
            installation_id=payloads.INSTALLATION_ID,
            permission="pull_requests=write",
            operation="create a pull request comment",
        )
        session.commit()
    slack.bot.send("installation", payloads.installation_deleted())

    single = all_text(slack.ask("status octo-org/widget"))
    listed = all_text(slack.ask("status"))

    assert (
        "The GitHub App is no longer installed for octo-org, so release-bot gets no new data for "
        "octo-org/widget. Install the App on octo-org again to follow it."
    ) in single
    assert "*<https://github.com/octo-org/widget|octo-org/widget>* · the GitHub App is no longer installed for octo-org" in listed
    for text in (single, listed):
        assert "*GitHub App*" not in text
        assert "pull_requests" not in text


def test_app_many_problems_fit_limits(slack: SlackDriver) -> None:
    linked(slack)
    problems = [
        {"file": ".github/release-bot.yml", "key": f"stages.build.jobs.{index}", "reason": "x" * 400}
        for index in range(200)
    ]
    with slack.bot.session() as session:
        github_app.store_repo_config_error(
            session=session,
            repo="octo-org/widget",
            installation_id=payloads.INSTALLATION_ID,
            problems=problems,
            blob_sha=None,
        )
        session.commit()

    answer = slack.ask("status octo-org/widget")
    text = all_text(answer)

    assert len(answer["blocks"]) <= 50
    assert sum(len(block_text) for block_text in texts(answer)[1:]) <= 12_000
    assert re.search(r"and \d+ more GitHub App problems", text)
    assert "key stages.build.jobs.0:" in text
    assert "*Running jobs:* 0" in text
