"""The Slack rendering layer: escaping, links, cutting, and every message type at the largest
realistic sizes (150 jobs, 80 followed repositories, names at GitHub's length limits)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.render import slack as render
from bot.render.slack_messages import render_error, render_help, render_stats, render_subscriptions
from bot.render.slack_runs import (
    render_home,
    render_live_status,
    render_profile,
    render_repo_list,
    render_repo_status,
)
from bot.render.slack_views import (
    Baseline,
    Bottleneck,
    JobRow,
    ReleaseInfo,
    RepoLine,
    RepoStatus,
    RunProfile,
    RunSummary,
    StageRow,
    StatsView,
    SubscriptionRow,
)
from tests.slack.fake_slack import block_problems

START = datetime(2024, 6, 3, 22, 0, 10, tzinfo=UTC)
# GitHub's limits: logins 39 characters, repository names 100, refs and workflow names 255 here.
LONG_OWNER = "o" * 39
LONG_REPO = f"{LONG_OWNER}/{'r' * 100}"
LONG_BRANCH = "feature/" + "<!channel>&" * 22
LONG_NAME = "integration-test <@U0USER0002> & more " * 26


def check_message(message: render.SlackMessage, max_blocks: int = 50) -> None:
    assert block_problems(message.blocks, max_blocks) == []
    assert len(message.text) <= 4000
    assert render.text_size(message.blocks) <= render.MAX_MESSAGE_TEXT
    for block in message.blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150


def job(index: int, *, name: str | None = None, status: str = "completed") -> JobRow:
    return JobRow(
        job_id=51900 + index,
        name=name or f"integration-test (shard {index:03d}/150, ubuntu-22.04, postgres-16)",
        stage="test",
        status=status,
        conclusion="success" if status == "completed" else None,
        duration_s=60.0 + index if status == "completed" else None,
        queue_s=10.0,
        started_at=START,
        completed_at=START + timedelta(seconds=60 + index) if status == "completed" else None,
        html_url=f"https://github.com/octo-org/widget/actions/runs/30019/job/{51900 + index}",
        ordinal=index if name else None,
    )


def run(
    jobs: list[JobRow],
    *,
    status: str = "completed",
    repo: str = "octo-org/widget",
    branch: str = "main",
) -> RunSummary:
    return RunSummary(
        run_id=30019,
        repo=repo,
        workflow=LONG_NAME[:255],
        run_number=100,
        branch=branch,
        event="push",
        title=LONG_NAME,
        actor="dev-user",
        html_url="https://github.com/octo-org/widget/actions/runs/30019",
        attempt=2,
        status=status,
        conclusion="success" if status == "completed" else None,
        duration_s=220.0,
        started_at=START,
        completed_at=START + timedelta(seconds=220),
        jobs=jobs,
    )


def profile(jobs: list[JobRow]) -> RunProfile:
    return RunProfile(
        run=run(jobs),
        stages=[
            StageRow(
                name=f"stage{i}", job_count=15, status="success", job_time_s=900.0, wall_s=200.0
            )
            for i in range(12)
        ],
        bottlenecks=[Bottleneck(job=item, share=0.9, on_critical_path=True) for item in jobs[:5]],
        critical_path=jobs[:40],
        critical_path_s=210.0,
        baseline=Baseline(branch=LONG_BRANCH, run_count=10, median_s=200.0, delta_s=20.0),
        total_job_time_s=20000.0,
    )


def test_escape_control_characters() -> None:
    assert (
        render.escape("fix-->-parser/<!channel>&co") == "fix--&gt;-parser/&lt;!channel&gt;&amp;co"
    )
    assert render.escape("CI <prod> & docs") == "CI &lt;prod&gt; &amp; docs"
    assert render.escape("*bold* _it_") == "*bold* _it_"


def test_link_escapes_label_keeps_url() -> None:
    assert render.link(
        "https://github.com/octo-org/widget/actions/runs/30021", "CI <prod> & docs"
    ) == ("<https://github.com/octo-org/widget/actions/runs/30021|CI &lt;prod&gt; &amp; docs>")


def test_url_segment_percent_encodes() -> None:
    assert (
        render.url_segment("fix-->-parser/<!channel>&co") == "fix--%3E-parser/%3C%21channel%3E%26co"
    )


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "ftp://example.com/x", "", None, "https://"]
)
def test_unusable_url_leaves_label(url: str | None) -> None:
    assert render.link(url, "a <b>") == "a &lt;b&gt;"


def test_clean_url_encodes_link_breakers() -> None:
    assert (
        render.clean_url("https://example.com/a|b>c<d e&f")
        == "https://example.com/a%7Cb%3Ec%3Cd%20e%26f"
    )


def test_cut_never_splits_entity_or_link() -> None:
    text = "a" * 10 + "&amp;" + "b" * 10
    assert render.cut(text, 13) == "a" * 10 + "…"
    linked = "x" * 5 + "<https://example.com/long/path|label>"
    assert render.cut(linked, 20) == "x" * 5 + "…"
    assert render.cut("short", 10) == "short"


def test_plain_text_not_escaped() -> None:
    assert render.plain_text("Build & <ship>", 150)["text"] == "Build & <ship>"
    assert len(render.plain_text("h" * 500, 150)["text"]) == 150


def test_builder_keeps_footer_when_cutting() -> None:
    builder = render.BlockBuilder()
    for index in range(80):
        builder.section(f"section {index}")
    builder.actions([render.button("Post to channel", action_id="post_to_channel", value="status")])
    message = builder.build("x" * 10_000)
    assert len(message.blocks) == 50
    assert message.blocks[-1]["type"] == "actions"
    assert "32 more blocks were left out" in message.blocks[-2]["elements"][0]["text"]
    assert len(message.text) == 4000


def test_builder_cuts_body_to_text_budget() -> None:
    builder = render.BlockBuilder()
    for index in range(20):
        builder.section(f"{index} " + "x" * 2900)
    builder.actions([render.button("Post to channel", action_id="post_to_channel", value="status")])
    message = builder.build("fallback")
    assert render.text_size(message.blocks) <= render.MAX_MESSAGE_TEXT
    assert len(message.blocks) == 6
    assert "16 more blocks were left out" in message.blocks[-2]["elements"][0]["text"]
    assert message.blocks[-1]["type"] == "actions"


def test_lines_end_with_more_count() -> None:
    builder = render.BlockBuilder()
    shown = builder.lines(
        [f"line {index} " + "x" * 200 for index in range(500)],
        max_blocks=3,
        more=lambda count: f"and {count} more jobs",
    )
    assert len(builder.body) == 3
    assert builder.body[-1]["text"]["text"].endswith(f"_and {500 - shown} more jobs_")
    assert all(len(block["text"]["text"]) <= 3000 for block in builder.body)


def test_button_value_over_limit_dropped() -> None:
    assert render.button("Post to channel", action_id="post_to_channel", value="x" * 2001) is None


def test_profile_of_150_long_jobs_fits() -> None:
    jobs = [job(index, name=f"{LONG_NAME}{index}"[:1000]) for index in range(1, 151)]
    message = render_profile(profile(jobs), share="profile octo-org/widget 30019")
    check_message(message)
    text = "\n".join(
        block.get("text", {}).get("text", "")
        for block in message.blocks
        if block["type"] != "header"
    )
    assert "more jobs_" in text
    assert "<@U0USER0002>" not in text
    assert message.blocks[0]["text"]["text"].startswith(
        "Profile: integration-test <@U0USER0002> & more"
    )
    assert message.blocks[-1]["type"] == "actions"


def test_profile_slowest_job_first() -> None:
    jobs = [job(index) for index in range(1, 151)]
    message = render_profile(profile(jobs), share=None)
    check_message(message)
    job_sections = [
        block["text"]["text"]
        for block in message.blocks
        if block["type"] == "section"
        and block.get("text", {})
        .get("text", "")
        .startswith(
            ":white_check_mark: <https://github.com/octo-org/widget/actions/runs/30019/job/"
        )
    ]
    assert "shard 150/150" in job_sections[0].splitlines()[0]


def test_live_status_of_150_running_jobs_fits() -> None:
    jobs = [job(index, status="in_progress" if index % 2 else "queued") for index in range(1, 151)]
    message = render_live_status(run(jobs, status="in_progress"), None)
    check_message(message)
    assert "75 running · 75 waiting · 0 completed" in str(message.blocks)


def test_final_live_status_fits() -> None:
    jobs = [job(index, name=f"{LONG_NAME}{index}"[:1000]) for index in range(1, 151)]
    check_message(render_live_status(run(jobs), profile(jobs)))


def test_status_of_long_repository_fits() -> None:
    runs = [
        run(
            [job(index, status="in_progress") for index in range(1, 151)],
            status="in_progress",
            repo=LONG_REPO,
            branch=LONG_BRANCH,
        )
        for _ in range(20)
    ]
    status = RepoStatus(
        repo=LONG_REPO,
        version="v" + "1" * 254,
        release=ReleaseInfo(
            tag="v1",
            name=LONG_NAME,
            state="published",
            author="a" * 39,
            html_url="https://github.com/x/y/releases/tag/v1",
            published_at=START,
        ),
        stages=[
            StageRow(name=f"stage{i}", job_count=1, status="success", job_time_s=1.0, wall_s=1.0)
            for i in range(25)
        ],
        runs=runs,
        notice="n" * 5000,
    )
    message = render_repo_status(status, share="status " + LONG_REPO)
    check_message(message)
    assert message.blocks[-1]["type"] == "actions"


def test_eighty_followed_repositories_fit() -> None:
    lines = [
        RepoLine(
            repo=f"{LONG_OWNER}/{'r' * 97}{index:03d}",
            release_tag="v" + "9" * 200,
            latest_run=run([job(1, status="in_progress")], status="in_progress"),
        )
        for index in range(80)
    ]
    check_message(render_repo_list(lines, scope="this channel", share="status"))
    home = render_home(lines)
    assert home["type"] == "home"
    assert block_problems(home["blocks"], 100) == []


def test_home_with_many_repositories_fits_view() -> None:
    lines = [
        RepoLine(repo=f"octo-org/repo-{index:04d}", release_tag=None, latest_run=None)
        for index in range(5000)
    ]
    home = render_home(lines)
    assert block_problems(home["blocks"], 100) == []
    assert "more repositories" in str(home["blocks"])


def test_many_subscriptions_fit() -> None:
    rows = [
        SubscriptionRow(
            channel_id="C0ALERTS01",
            repo=LONG_REPO,
            events="all",
            branch=LONG_BRANCH,
            workflow=LONG_NAME[:255],
        )
        for _ in range(500)
    ]
    message = render_subscriptions(rows, scope="this workspace")
    check_message(message)
    assert "more subscriptions" in str(message.blocks)
    assert "&lt;!channel&gt;" in str(message.blocks)


def test_stats_with_long_filters_fits() -> None:
    view = StatsView(
        metric="build_time",
        repo=LONG_REPO,
        workflow=LONG_NAME[:255],
        branch=LONG_BRANCH,
        since=START,
        until=START + timedelta(days=30),
        current={"count": 10, "mean": 100.0, "p50": 90.0, "p95": 200.0, "min": 10.0, "max": 300.0},
        previous={"count": 0, "mean": None},
        failure_rate=0.25,
        runs=8,
        reruns=2,
        outcomes={"success": 6, "failure": 2},
        sparkline="▁▂▃▄▅▆▇█" * 2 + "    ",
        bucket_seconds=3600 * 36,
    )
    message = render_stats(view, share="stats")
    check_message(message)
    assert "mean: no data in the previous window, count +10 (0 before)" in str(message.blocks)


def test_error_and_help_fit() -> None:
    check_message(render_error("x <y> " * 5000, usage="u" * 5000))
    check_message(render_help([(f"/release cmd{index}", "summary " * 200) for index in range(200)]))
