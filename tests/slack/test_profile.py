"""`/release profile`: jobs that share a name, a run with 150 jobs, bottlenecks, critical path, baseline."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.slack import payloads
from tests.slack.conftest import SlackDriver, all_text

SHARD_NAME = "integration-test (shard {i:03d}/150, ubuntu-22.04, postgres-16)"


def linked(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    slack.ask("subscribe octo-org/widget")


def at(base: str, seconds: int) -> str:
    moment = datetime.fromisoformat(base) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_jobs_sharing_a_name_stay_separate(slack: SlackDriver) -> None:
    linked(slack)
    for job_id, minutes in ((50091, 1), (50092, 2), (50093, 3)):
        slack.bot.send(
            "workflow_job",
            payloads.workflow_job(
                job_id,
                30009,
                name="test",
                started="2024-06-03T16:00:00Z",
                completed=f"2024-06-03T16:0{minutes}:00Z",
            ),
        )

    answer = slack.ask("profile octo-org/widget 30009")
    text = all_text(answer)

    assert "|test (job 50091)> · 1m 0s" in text
    assert "|test (job 50092)> · 2m 0s" in text
    assert "|test (job 50093)> · 3m 0s" in text
    job_list = text[text.index("*Jobs*") :]
    assert job_list.count("|test (job 5009") == 3
    # Three parallel jobs: only the one that ended last bounds the run.
    assert (
        "1. <https://github.com/octo-org/widget/actions/runs/30009/job/50093|test (job 50093)> · 3m 0s · 100.0% of the run"
        in text
    )
    assert "*Jobs* (3, slowest first, 6m 0s of job time)" in text
    assert job_list.index("job 50093") < job_list.index("job 50092") < job_list.index("job 50091")


def test_profile_of_150_jobs_fits_slack(slack: SlackDriver) -> None:
    linked(slack)
    for i in range(1, 151):
        slack.bot.send(
            "workflow_job",
            payloads.workflow_job(
                51900 + i - 1,
                30019,
                name=SHARD_NAME.format(i=i),
                created="2024-06-03T22:00:00Z",
                started="2024-06-03T22:00:10Z",
                completed=at("2024-06-03T22:00:10Z", 60 + i),
            ),
            wait=False,
        )
    slack.bot.wait_idle()
    slack.bot.send(
        "workflow_run",
        payloads.workflow_run(
            30019, started="2024-06-03T22:00:00Z", updated="2024-06-03T22:03:40Z"
        ),
    )

    answer = slack.ask("profile octo-org/widget 30019")

    assert slack.fake.rejected == []
    assert len(answer["blocks"]) <= 50
    assert len(answer["text"]) <= 4000
    for block in answer["blocks"]:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        for field in block.get("fields") or []:
            assert len(field["text"]) <= 2000
    text = all_text(answer)
    slowest = "integration-test (shard 150/150, ubuntu-22.04, postgres-16)"
    assert f"{slowest}> · 3m 30s" in text
    job_list = text[text.index("*Jobs*") :]
    assert job_list.index("shard 150/150") < job_list.index("shard 149/150")
    shown = [i for i in range(1, 151) if f"shard {i:03d}/150" in job_list]
    # The slowest jobs are the ones kept: shards 150 down to the last one shown.
    assert shown == list(range(151 - len(shown), 151))
    assert f"_and {150 - len(shown)} more jobs_" in job_list
    assert "*Critical path*" in text


def test_profile_compares_with_branch_baseline(slack: SlackDriver) -> None:
    linked(slack)
    runs = (
        (30101, "main", 4),
        (30102, "main", 5),
        (30103, "main", 6),
        (30105, "feature", 1),
        (30104, "main", 7),
    )
    for run_id, branch, minutes in runs:
        end = f"2024-06-03T10:0{minutes}:00Z"
        slack.bot.send(
            "workflow_job",
            payloads.workflow_job(
                run_id + 20000,
                run_id,
                name="build",
                branch=branch,
                started="2024-06-03T10:00:00Z",
                completed=end,
            ),
        )
        slack.bot.send("workflow_run", payloads.workflow_run(run_id, branch=branch, updated=end))

    text = all_text(slack.ask("profile octo-org/widget 30104"))

    assert "*Against the main baseline* (median of 3 earlier runs: 5m 0s): +2m 0s (+40.0%)" in text
    assert "|build> · 7m 0s · baseline 5m 0s" in text


def test_profile_latest_run_by_default(slack: SlackDriver) -> None:
    linked(slack)
    slack.bot.send("workflow_run", payloads.workflow_run(30201))
    slack.bot.send("workflow_run", payloads.workflow_run(30202, run_number=101))
    assert "CI #101" in all_text(slack.ask("profile widget"))
    assert "CI #101" in all_text(slack.ask("profile octo-org/widget latest"))


def test_profile_unknown_run_named(slack: SlackDriver) -> None:
    linked(slack)
    text = all_text(slack.ask("profile octo-org/widget 99999"))
    assert "unknown run 99999 in octo-org/widget: use a run id" in text
    text = all_text(slack.ask("profile octo-org/widget first"))
    assert "invalid run 'first': use a run id" in text


def test_profile_critical_path_follows_timing(slack: SlackDriver) -> None:
    linked(slack)
    jobs = (
        (50401, "build", "10:00:00", "10:02:00"),
        (50402, "lint", "10:00:00", "10:00:30"),
        (50403, "test", "10:02:10", "10:05:00"),
        (50404, "publish", "10:05:05", "10:06:00"),
    )
    for job_id, name, start, end in jobs:
        slack.bot.send(
            "workflow_job",
            payloads.workflow_job(
                job_id,
                30400,
                name=name,
                started=f"2024-06-03T{start}Z",
                completed=f"2024-06-03T{end}Z",
            ),
        )
    text = all_text(slack.ask("profile octo-org/widget 30400"))
    assert "*Critical path* (5m 45s of job time)\nbuild → test → publish" in text
    assert (
        "1. <https://github.com/octo-org/widget/actions/runs/30400/job/50403|test> · 2m 50s · 47.2% of the run"
        in text
    )
