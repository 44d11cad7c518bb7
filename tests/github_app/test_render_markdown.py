"""The comment renderer: escaping of run text, Mermaid-safe labels, and GitHub's size limit."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.build_profile import JobTiming, StepTiming, WorkflowProfile
from bot.render_markdown import (
    MARKER,
    MAX_COMMENT_CHARS,
    MAX_GANTT_BARS,
    CommentView,
    escape,
    format_duration,
    mermaid_label,
    render_build_profile,
    size_of,
)
from tests.github_app.conftest import AppBot
from tests.github_app.payloads import REPO, send_run

NASTY = "a|b `c` <img src=x onerror=alert(1)> [x](http://e.test) & @octo/team $x$ #1 *b* _i_ ~s~ \\ !\nnext"
T0 = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a|b", "a&#124;b"),
        ("`code`", "&#96;code&#96;"),
        ("<b>&", "&lt;b&gt;&amp;"),
        ("[x](y)", "&#91;x&#93;(y)"),
        ("one\ntwo\r\nthree", "one two  three"),
        ("@team #12", "&#64;team &#35;12"),
        ("$x$", "&#36;x&#36;"),
        ("\u202eevil", "evil"),
        ("", ""),
        (None, ""),
    ],
)
def test_escape_cases(text: str | None, expected: str) -> None:
    assert escape(text) == expected


def test_escape_truncates_before_entities() -> None:
    escaped = escape("|" * 500, max_chars=10)
    assert escaped == "&#124;" * 9 + "…"


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("build: linux; arm #2", "build linux arm 2"),
        ("section deploy", "job section deploy"),
        ("Click me", "job Click me"),
        ("2024-06-03 nightly", "job 2024-06-03 nightly"),
        ("%%{init}%% x", "init x"),
        ("```", "job"),
        ("tests (3.12, ubuntu)", "tests (3.12, ubuntu)"),
    ],
)
def test_mermaid_label_cases(name: str, label: str) -> None:
    assert mermaid_label(name) == label


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "–"), (-3, "0s"), (0.4, "0s"), (42, "42s"), (312, "5m 12s"), (3725, "1h 2m")],
)
def test_format_duration_cases(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def make_job(index: int, name: str, seconds: float, steps: int = 0) -> JobTiming:
    start = T0 + timedelta(seconds=index)
    return JobTiming(
        id=index, name=name, stage="test", status="completed", conclusion="success",
        created_at=start - timedelta(seconds=3), started_at=start, completed_at=start + timedelta(seconds=seconds),
        queue_s=3.0, duration_s=seconds, html_url=None,
        steps=[StepTiming(number=n, name=f"{name} step {n}", conclusion="success", duration_s=1.0) for n in range(1, steps + 1)],
    )


def make_profile(name: str, jobs: list[JobTiming]) -> WorkflowProfile:
    return WorkflowProfile(
        workflow_name=name, event="pull_request", run_id=1, run_number=1, attempt=1, html_url=None,
        status="completed", conclusion="success", wall_s=600.0, queue_s=3.0 * len(jobs), max_queue_s=3.0,
        execution_s=sum(job.duration_s or 0 for job in jobs), jobs=jobs, critical_path=jobs[-3:],
        base_branch="main",
    )


def table_rows(body: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith("| ") and not line.startswith("| ---")]


def test_nasty_names_stay_inside_cells() -> None:
    profile = make_profile(NASTY, [make_job(1, NASTY, 60, steps=3), make_job(2, "ok", 30)])
    body = render_build_profile(CommentView(head_sha="a" * 40, workflows=[profile]))

    assert "<img" not in body
    assert "[x](http" not in body
    assert "@octo" not in body
    assert "\nnext" not in body
    for row in table_rows(body):
        assert row.count("|") in (5, 7), row
    mermaid = re.search(r"```mermaid\n(.*?)```", body, re.DOTALL).group(1)
    assert not re.search(r"[#;`<>]", mermaid.replace("section ", ""))


def test_many_workflows_within_limit() -> None:
    long_name = "shard " + "x" * 300
    workflows = [
        make_profile(f"workflow {w}", [make_job(j, f"{long_name} {j}", 10 + j, steps=20) for j in range(300)])
        for w in range(60)
    ]
    body = render_build_profile(CommentView(head_sha="a" * 40, workflows=workflows))

    assert body.startswith(MARKER)
    assert len(body) <= MAX_COMMENT_CHARS
    assert size_of(body) <= MAX_COMMENT_CHARS
    assert "more workflows are not shown" in body or "are left out" in body
    assert body.rstrip().endswith("</sub>")


def test_run_with_300_jobs(app_bot: AppBot) -> None:
    jobs = [(f"{NASTY} shard {index} " + "y" * 300, 10 + index % 50) for index in range(300)]
    send_run(app_bot, 5001, head_sha="a1" * 20, jobs=jobs, pull_numbers=[42], sequential=False,
             job_steps={jobs[-1][0]: [(f"step {n} | <x>", 1) for n in range(60)]})
    app_bot.deliver()

    (comment,) = app_bot.github.comments_on(REPO, 42)
    body = comment["body"]
    assert len(body) <= MAX_COMMENT_CHARS
    assert "Jobs (300)" in body
    listed = table_rows(body.split("Jobs (300)")[1].split("</details>")[0])[1:]
    assert 0 < len(listed) < 300
    assert f"{300 - len(listed)} of 300 jobs (the shortest) are not in the table" in body
    assert "65,536-character limit" in body
    for row in table_rows(body):
        assert row.count("|") in (5, 7), row
    assert "<x>" not in body


def test_timeline_capped() -> None:
    profile = make_profile("CI", [make_job(j, f"job {j}", 10 + j) for j in range(200)])
    body = render_build_profile(CommentView(head_sha="a" * 40, workflows=[profile]))
    mermaid = re.search(r"```mermaid\n(.*?)```", body, re.DOTALL).group(1)

    bars = [line for line in mermaid.splitlines() if re.search(r":(crit|done), j\d+", line)]
    assert len(bars) == MAX_GANTT_BARS
    assert f"The timeline shows {MAX_GANTT_BARS} of the 200 jobs" in body
    # The critical path is always drawn.
    for job in profile.critical_path:
        assert f"j{job.id}," in mermaid


def test_timeline_off() -> None:
    profile = make_profile("CI", [make_job(1, "build", 60)])
    body = render_build_profile(CommentView(head_sha="a" * 40, workflows=[profile], timeline=False))
    assert "mermaid" not in body


def test_no_runs_yet() -> None:
    body = render_build_profile(CommentView(head_sha="a" * 40, workflows=[]))
    assert "No workflow run of this commit is stored yet." in body
