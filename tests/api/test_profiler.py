"""BuildProfiler: timeline, critical path and shares, duplicate job names from webhooks,
comparisons against another build and against the median of recent successful runs, reports."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import NotFound
from bot.profiler import BuildProfiler
from tests.api.payloads import step, workflow_job, workflow_run
from tests.conftest import BotClient

T0 = datetime(2024, 6, 3, 16, 0, tzinfo=UTC)


def test_sequential_stage_shares() -> None:
    profiler = BuildProfiler()
    profiler.record_stage("compile", 30)
    profiler.record_stage("test", 120)
    profiler.record_stage("package", 10)

    profile = profiler.profile_build()

    assert profile.wall_time == 160
    assert [stage.name for stage in profile.critical_path] == ["compile", "test", "package"]
    assert [stage.share for stage in profile.stages] == [30 / 160, 120 / 160, 10 / 160]
    assert [stage.name for stage in profiler.get_bottlenecks(threshold=0.1)] == ["test", "compile"]


def test_parallel_share_of_wall_time() -> None:
    profiler = BuildProfiler()
    for name, seconds in (("unit", 60), ("integration", 120), ("e2e", 180)):
        profiler.record_stage(name, seconds, started_at=T0)

    profile = profiler.profile_build()
    shares = {stage.name: stage.share for stage in profile.stages}
    wall_shares = {stage.name: stage.wall_share for stage in profile.stages}

    assert profile.wall_time == 180
    assert profile.stage_time == 360
    assert shares == {"unit": 0.0, "integration": 0.0, "e2e": 1.0}
    assert wall_shares["unit"] == pytest.approx(1 / 3)
    assert [stage.name for stage in profiler.get_bottlenecks(threshold=0.1)] == ["e2e"]


def test_critical_path_follows_dependencies() -> None:
    profiler = BuildProfiler()
    profiler.record_stage("build", 100, started_at=T0)
    profiler.record_stage("lint", 30, started_at=T0)
    profiler.record_stage("test", 90, started_at=T0 + timedelta(seconds=110))
    profiler.record_stage("docs", 20, started_at=T0 + timedelta(seconds=110))
    profiler.record_stage("package", 10, started_at=T0 + timedelta(seconds=205))

    profile = profiler.profile_build()

    assert [stage.name for stage in profiler.critical_path()] == ["build", "test", "package"]
    assert profile.wall_time == 215
    assert profile.waiting_time == 15
    assert {stage.name: stage.on_critical_path for stage in profile.stages}["docs"] is False
    assert [stage.name for stage in profiler.get_bottlenecks(0.3)] == ["build", "test"]


def test_child_stages_stay_inside_parent() -> None:
    profiler = BuildProfiler()
    test = profiler.record_stage("test", 100)
    profiler.record_stage("unit", 60, parent=test)
    profiler.record_stage("lint", 40, parent="test")
    profiler.record_stage("package", 10)

    profile = profiler.profile_build()

    assert profile.wall_time == 110
    assert [(child.name, child.start, child.end) for child in profile.stages[0].children] == [
        ("unit", 0.0, 60.0), ("lint", 60.0, 100.0)
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: p.record_stage("x", -1), "invalid stage duration -1"),
        (lambda p: p.record_stage("x", math.nan), "invalid stage duration nan"),
        (lambda p: p.record_stage("x", "30"), "invalid stage duration '30'"),
        (lambda p: p.record_stage("", 3), "invalid stage name ''"),
        (lambda p: p.record_stage("x", 3, parent="missing"), "invalid parent 'missing'"),
        (lambda p: p.get_bottlenecks(threshold=1.5), "invalid threshold 1.5"),
        (lambda p: p.generate_report(format="html"), "invalid report format 'html'"),
        (lambda p: p.compare_to_baseline(branch="main"), "needs the build's repo and workflow"),
    ],
)
def test_invalid_input_named(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call(BuildProfiler())


def test_markdown_report_escapes_names() -> None:
    profiler = BuildProfiler()
    profiler.record_stage("a | b <img src=x> *bold*", 30)
    profiler.record_stage("plain", 10)

    report = profiler.generate_report(format="markdown")

    assert "a &#124; b &lt;img src=x&gt; &#42;bold&#42;" in report
    assert "<img" not in report
    assert report.count("\n| ") == 3


def test_text_report_shows_control_characters() -> None:
    profiler = BuildProfiler()
    profiler.record_stage("evil\x1b[31mred", 30)

    report = profiler.generate_report()

    assert "\x1b" not in report
    assert "evil\\u001b[31mred" in report


def test_compare_builds_by_stage() -> None:
    before, after = BuildProfiler(), BuildProfiler()
    for name, seconds in (("compile", 30), ("test", 120)):
        before.record_stage(name, seconds)
    for name, seconds in (("compile", 45), ("test", 90), ("package", 10)):
        after.record_stage(name, seconds)

    comparison = after.compare_builds(before)

    assert comparison.wall_before == 150
    assert comparison.wall_after == 145
    assert comparison.wall_delta == -5
    rows = {change.label: (change.before, change.after, change.delta) for change in comparison.stages}
    assert rows == {"compile": (30, 45, 15), "test": (120, 90, -30), "package": (None, 10, None)}
    assert comparison.stages[0].percent == 50.0


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_duplicate_job_names_stay_distinct(bot: BotClient) -> None:
    steps_50091 = [
        step(1, "Set up job", "2024-06-03T16:00:00Z", "2024-06-03T16:00:02Z"),
        step(2, "Run actions/checkout@v4", "2024-06-03T16:00:02Z", "2024-06-03T16:00:12Z"),
        step(3, "Run make test", "2024-06-03T16:00:12Z", "2024-06-03T16:00:33Z"),
        step(4, "Run actions/checkout@v4", "2024-06-03T16:00:33Z", "2024-06-03T16:00:58Z"),
        step(5, "Complete job", "2024-06-03T16:00:58Z", "2024-06-03T16:01:00Z"),
    ]
    for job_id, minutes, steps in ((50091, 1, steps_50091), (50092, 2, None), (50093, 3, None)):
        payload = workflow_job(
            job_id, 30009, "test", started=iso(T0), completed=iso(T0 + timedelta(minutes=minutes)), steps=steps
        )
        assert bot.send("workflow_job", payload).status_code == 202

    profiler = BuildProfiler.from_run(30009, engine=bot.app.state.engine)
    profile = profiler.profile_build()

    assert [(stage.label, stage.duration) for stage in profile.stages] == [
        ("test (job 50091)", 60.0), ("test (job 50092)", 120.0), ("test (job 50093)", 180.0)
    ]
    assert profile.stage_time == 360.0
    assert [stage.label for stage in profile.critical_path] == ["test (job 50093)"]
    checkouts = [(child.label, child.duration) for child in profile.stages[0].children if "checkout" in child.name]
    assert checkouts == [("Run actions/checkout@v4 #1", 10.0), ("Run actions/checkout@v4 #2", 25.0)]
    assert "test (job 50092)" in profiler.generate_report()


def test_from_run_unknown(bot: BotClient) -> None:
    with pytest.raises(NotFound, match="run 424 not found"):
        BuildProfiler.from_run(424, engine=bot.app.state.engine)


def send_run(bot: BotClient, run_id: int, start: datetime, build_s: int, test_s: int, *, conclusion: str = "success") -> None:
    """Send a completed run with `build` then `test` (10 s apart) and its workflow_run event."""
    build_end = start + timedelta(seconds=build_s)
    test_start = build_end + timedelta(seconds=10)
    test_end = test_start + timedelta(seconds=test_s)
    bot.send("workflow_job", workflow_job(run_id * 10 + 1, run_id, "build", started=iso(start), completed=iso(build_end)))
    bot.send("workflow_job", workflow_job(run_id * 10 + 2, run_id, "test", started=iso(test_start), completed=iso(test_end)))
    bot.send("workflow_run", workflow_run(run_id, conclusion=conclusion, started=iso(start), updated=iso(test_end)))


def test_compare_to_baseline_median(bot: BotClient) -> None:
    for index, (build_s, test_s) in enumerate(((100, 50), (120, 60), (140, 70))):
        send_run(bot, 40001 + index, T0 + timedelta(hours=index), build_s, test_s)
    send_run(bot, 40009, T0 + timedelta(hours=4), 500, 500, conclusion="failure")
    send_run(bot, 40010, T0 + timedelta(hours=5), 200, 60)

    comparison = BuildProfiler.from_run(40010, engine=bot.app.state.engine).compare_to_baseline(last_n=20)

    assert comparison.baseline_runs == 3
    rows = {change.label: (change.before, change.after, change.delta) for change in comparison.stages}
    assert rows == {"build": (120.0, 200.0, 80.0), "test": (60.0, 60.0, 0.0)}
    assert comparison.wall_before == 190.0
    assert comparison.wall_after == 270.0
    assert BuildProfiler.from_run(40010, engine=bot.app.state.engine).compare_to_baseline(last_n=1).baseline_runs == 1


def test_baseline_skips_fork_pull_request_runs(bot: BotClient) -> None:
    send_run(bot, 40001, T0, 100, 50)
    # A fork's pull request run on its own branch named `main` is not the base branch's history.
    build_end = T0 + timedelta(hours=1, seconds=900)
    bot.send("workflow_job", workflow_job(400021, 40002, "build", started=iso(T0 + timedelta(hours=1)), completed=iso(build_end)))
    fork_run = workflow_run(40002, event="pull_request", started=iso(T0 + timedelta(hours=1)), updated=iso(build_end))
    fork_run["workflow_run"]["head_repository"] = {"full_name": "octo-contrib/widget"}
    bot.send("workflow_run", fork_run)
    send_run(bot, 40010, T0 + timedelta(hours=5), 200, 60)

    comparison = BuildProfiler.from_run(40010, engine=bot.app.state.engine).compare_to_baseline(last_n=20)

    assert comparison.baseline_runs == 1
    assert {change.label: change.before for change in comparison.stages} == {"build": 100.0, "test": 50.0}


def test_baseline_skips_runs_without_jobs(bot: BotClient) -> None:
    send_run(bot, 40001, T0, 100, 50)
    # Only the run's own event arrived; its job events were missed.
    bot.send("workflow_run", workflow_run(40002, started=iso(T0 + timedelta(hours=1)), updated=iso(T0 + timedelta(hours=1, minutes=5))))
    send_run(bot, 40010, T0 + timedelta(hours=5), 200, 60)

    comparison = BuildProfiler.from_run(40010, engine=bot.app.state.engine).compare_to_baseline(last_n=20)

    assert comparison.baseline_runs == 1
    assert comparison.wall_before == 160.0
