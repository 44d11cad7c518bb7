"""A release fed by signed webhooks through the real endpoint shows on its dashboard."""

from __future__ import annotations

from bot.dashboard import PublishStatus, StatusDashboard
from storage.releases import list_dashboards
from tests.api.payloads import release, workflow_job, workflow_run
from tests.conftest import BotClient

RUN = 50001


def job(job_id: int, name: str, *, status: str = "completed", conclusion: str | None = "success",
        started: str | None = "2024-06-03T10:01:00Z", completed: str | None = "2024-06-03T10:03:00Z",
        attempt: int = 1, run_id: int = RUN, workflow: str = "Release", branch: str = "v2.0.0") -> dict[str, object]:
    return workflow_job(job_id, run_id, name, started=started, completed=completed, status=status,
                        conclusion=conclusion, workflow=workflow, branch=branch, attempt=attempt)


def dashboard(bot: BotClient, version: str = "2.0.0") -> StatusDashboard:
    return StatusDashboard("octo-org/widget", version, engine=bot.app.state.engine)


def test_release_jobs_become_stages(bot: BotClient) -> None:
    bot.send("release", release(9001, "v2.0.0"))
    bot.send("workflow_run", workflow_run(RUN, name="Release", event="release", branch="v2.0.0", status="in_progress", conclusion=None))
    bot.send("workflow_job", job(60001, "build", started="2024-06-03T10:00:00Z", completed="2024-06-03T10:02:00Z"))
    bot.send("workflow_job", job(60002, "test", started="2024-06-03T10:02:10Z", completed="2024-06-03T10:05:10Z"))
    bot.send("workflow_job", job(60003, "publish to PyPI", status="in_progress", started="2024-06-03T10:05:20Z"))

    running = dashboard(bot).export_status()
    assert running["status"] == "in_progress"
    assert [(stage["name"], stage["status"]) for stage in running["stages"]] == [
        ("build", "completed"), ("test", "completed"), ("publish to PyPI", "in_progress")
    ]
    assert running["stages"][0]["duration_s"] == 120.0
    assert running["stages"][0]["job_id"] == 60001

    bot.send("workflow_job", job(60003, "publish to PyPI", conclusion="failure", started="2024-06-03T10:05:20Z", completed="2024-06-03T10:06:00Z"))
    # A late in_progress event for a finished job changes nothing.
    bot.send("workflow_job", job(60003, "publish to PyPI", status="in_progress", started="2024-06-03T10:05:20Z"))

    status = dashboard(bot).get_current_status()
    assert status["stages"]["publish to PyPI"] == PublishStatus.FAILED
    assert status["status"] == PublishStatus.PARTIAL
    assert "publish to PyPI" in dashboard(bot).render_dashboard()


def test_rerun_replaces_failed_stage(bot: BotClient) -> None:
    bot.send("workflow_job", job(61001, "build"))
    bot.send("workflow_job", job(61002, "publish", conclusion="failure"))
    assert dashboard(bot).get_current_status()["status"] == PublishStatus.PARTIAL

    bot.send("workflow_job", job(61003, "publish", attempt=2, started="2024-06-03T11:00:00Z", completed="2024-06-03T11:01:00Z"))
    # The first attempt's job arriving again must not take the stage back.
    bot.send("workflow_job", job(61002, "publish", conclusion="failure"))

    exported = dashboard(bot).export_status()
    assert exported["status"] == "completed"
    publish = next(stage for stage in exported["stages"] if stage["name"] == "publish")
    assert publish["job_id"] == 61003
    assert publish["run_attempt"] == 2
    assert len(exported["stages"]) == 2


def test_same_name_jobs_stay_distinct(bot: BotClient) -> None:
    bot.send("workflow_job", job(62001, "upload"))
    bot.send("workflow_job", job(62002, "upload", conclusion="failure"))

    stages = dashboard(bot).get_current_status()["stages"]

    assert stages == {"upload": PublishStatus.COMPLETED, "upload (job 62002)": PublishStatus.FAILED}


def test_script_and_webhook_share_dashboard(bot: BotClient) -> None:
    script_view = dashboard(bot, "v2.0.0")
    script_view.update_status("announce", PublishStatus.PENDING)
    bot.send("workflow_job", job(63001, "build", started="2024-06-03T10:00:00Z", completed="2024-06-03T10:02:00Z"))
    script_view.update_status("announce", PublishStatus.COMPLETED, "posted to the blog")

    stages = dashboard(bot, "2.0.0").get_current_status()["stages"]

    assert stages == {"build": PublishStatus.COMPLETED, "announce": PublishStatus.COMPLETED}


def test_branch_runs_make_no_dashboard(bot: BotClient) -> None:
    bot.send("workflow_job", job(64001, "publish", branch="main"))
    bot.send("workflow_job", job(64002, "build", workflow="CI", branch="v9.9.9"))

    with bot.session() as session:
        assert list_dashboards(session=session) == []


def test_skipped_jobs_closed_by_run(bot: BotClient) -> None:
    bot.send("workflow_job", job(65001, "build", conclusion="failure"))
    bot.send("workflow_job", job(65002, "publish", status="queued", started=None, completed=None))
    assert dashboard(bot).get_current_status()["status"] == PublishStatus.FAILED

    bot.send("workflow_run", workflow_run(RUN, name="Release", event="push", branch="v2.0.0", conclusion="failure",
                                          started="2024-06-03T10:00:00Z", updated="2024-06-03T10:04:00Z"))

    stages = dashboard(bot).get_current_status()["stages"]
    assert stages == {"build": PublishStatus.FAILED, "publish": PublishStatus.SKIPPED}


def test_pushed_tag_names_version(bot: BotClient) -> None:
    tag_push = {
        "ref": "refs/tags/spring-release",
        "after": "b" * 40,
        "deleted": False,
        "pusher": {"name": "dev-user"},
        "repository": {"id": 1001, "full_name": "octo-org/widget"},
        "installation": {"id": 424242},
    }
    bot.send("push", tag_push)
    bot.send("workflow_job", job(66001, "upload", branch="spring-release"))
    bot.send("workflow_job", job(66002, "upload", branch="feature-branch"))

    stages = dashboard(bot, "spring-release").get_current_status()["stages"]

    assert stages == {"upload": PublishStatus.COMPLETED}
    with bot.session() as session:
        assert [entry.version for entry in list_dashboards(session=session)] == ["spring-release"]
