"""`release-bot runs` and `release-bot stats`: the same data as the JSON API, as rich tables, with
user-controlled names shown literally; `serve` and `db` keep working."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bot.cli import app
from bot.render import terminal
from tests.cli_support import isolate_settings, restored_logging
from tests.conftest import BotClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RERUN_ID = 14955012403


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """CLI runs that read the test database, from an empty directory with no other setting."""
    isolate_settings(monkeypatch, tmp_path, DATABASE_URL=database_url, COLUMNS="160")
    with restored_logging():
        yield


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def send_example(bot: BotClient, folder: str) -> None:
    """Send an example folder's deliveries through the webhook endpoint, signed like GitHub."""
    for file in sorted((EXAMPLES / folder).glob("*.json")):
        recorded = json.loads(file.read_text())
        headers = recorded["headers"]
        response = bot.send(
            headers["X-GitHub-Event"],
            recorded["payload"],
            delivery_id=headers["X-GitHub-Delivery"],
            wait=False,
        )
        assert response.status_code == 202, file.name
    bot.wait_idle()


def workflow_run(
    run_id: int, *, name: str, branch: str, conclusion: str, end: str
) -> dict[str, Any]:
    return {
        "action": "completed",
        "workflow_run": {
            "id": run_id,
            "name": name,
            "run_attempt": 1,
            "status": "completed",
            "conclusion": conclusion,
            "event": "push",
            "head_branch": branch,
            "run_started_at": "2025-05-12T09:00:00Z",
            "updated_at": end,
        },
        "repository": {"id": 702341189, "full_name": "octo-org/widget"},
        "installation": {"id": 424242},
    }


def test_runs_json_matches_api(bot: BotClient, cli: None) -> None:
    send_example(bot, "3-rerun")
    send_example(bot, "2-fork-pull-request")

    listed = invoke("runs", "--json")
    one = invoke("runs", str(RERUN_ID), "--json")
    filtered = invoke(
        "runs", "--json", "--branch", "main", "--repo", "Octo-Org/Widget", "--limit", "1"
    )

    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == bot.client.get("/api/v1/runs").json()
    assert json.loads(one.stdout) == bot.client.get(f"/api/v1/runs/{RERUN_ID}").json()
    api_filtered = bot.client.get(
        "/api/v1/runs", params={"branch": "main", "repo": "Octo-Org/Widget", "limit": 1}
    ).json()
    assert json.loads(filtered.stdout) == api_filtered
    assert [run["run_id"] for run in api_filtered["runs"]] == [RERUN_ID]


def test_stats_json_matches_api(bot: BotClient, cli: None) -> None:
    send_example(bot, "3-rerun")
    send_example(bot, "2-fork-pull-request")

    for metric, options, params in [
        ("build_time", [], {}),
        ("test_duration", ["--branch", "main"], {"branch": "main"}),
        (
            "queue_time",
            ["--repo", "octo-org/widget", "--workflow", "CI"],
            {"repo": "octo-org/widget", "workflow": "CI"},
        ),
        ("build_time", ["--since", "2025-05-12T10:30:00Z"], {"since": "2025-05-12T10:30:00Z"}),
    ]:
        result = invoke("stats", metric, "--json", *options)

        assert result.exit_code == 0, result.output
        expected = bot.client.get("/api/v1/stats", params={"metric": metric, **params}).json()
        assert json.loads(result.stdout) == expected, (metric, options)


def test_runs_table_one_row_per_run(bot: BotClient, cli: None) -> None:
    send_example(bot, "3-rerun")
    send_example(bot, "2-fork-pull-request")

    result = invoke("runs")

    assert result.exit_code == 0, result.output
    rows = [line.split("│") for line in result.stdout.splitlines() if "│" in line]
    cells = [[cell.strip() for cell in row] for row in rows]
    assert cells == [
        ["14955012403", "octo-org/widget", "CI", "main", "2", "success", "3m 44s"],
        ["14954487702", "octo-org/widget", "CI", "fix-typo", "1", "success", "4m 36s"],
    ]


def test_run_detail_jobs_and_steps(bot: BotClient, cli: None) -> None:
    send_example(bot, "3-rerun")

    result = invoke("runs", str(RERUN_ID))

    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0] == f"Run {RERUN_ID}: CI #213 in octo-org/widget"
    assert lines[1] == "  push on main at c9d8e7f by dev-user"
    assert "Attempt 1: failure, 3m 18s, started by dev-user" in lines
    assert "Attempt 2: success, 3m 44s, started by dev-user" in lines
    job_rows = [[cell.strip() for cell in line.split("│")] for line in lines if "│" in line]
    assert ["test (3.12)", "test", "failure", "9s", "3m 0s", "GitHub Actions 6"] in job_rows
    assert ["5. Run pytest -q", "", "failure", "", "2m 7s", ""] in job_rows
    assert ["test (3.12)", "test", "success", "7s", "3m 29s", "GitHub Actions 11"] in job_rows
    assert ["5. Run pytest -q", "", "success", "", "2m 37s", ""] in job_rows
    assert len([row for row in job_rows if row[0].endswith("Set up job")]) == 5


def test_runs_jobs_flag_shows_steps(bot: BotClient, cli: None) -> None:
    send_example(bot, "2-fork-pull-request")

    result = invoke("runs", "--jobs")

    assert result.exit_code == 0, result.output
    assert (
        "  pull_request on fix-typo at b7e4d1c from contrib-user/widget by contrib-user"
        in result.stdout
    )
    assert "Attempt 1: success, 4m 36s, started by contrib-user" in result.stdout
    assert "5. Run python -m build" in result.stdout


def test_runs_escapes_user_text(bot: BotClient, cli: None) -> None:
    branch = "[red]main[/red]\x1b[2J"
    payload = workflow_run(
        77,
        name="CI [bold]nightly[/bold]",
        branch=branch,
        conclusion="success",
        end="2025-05-12T09:05:12Z",
    )
    bot.send("workflow_run", payload)

    table = invoke("runs")
    detail = invoke("runs", "77")

    assert table.exit_code == 0, table.output
    assert "[red]main[/red]\\u001b[2J" in table.stdout
    assert "CI [bold]nightly[/bold]" in table.stdout
    assert "\x1b" not in table.stdout
    assert "push on [red]main[/red]\\u001b[2J" in detail.stdout
    assert "\x1b" not in detail.stdout


def test_run_unknown_id(bot: BotClient, cli: None) -> None:
    result = invoke("runs", "123")

    assert result.exit_code == 1
    assert "run 123 not found; `release-bot runs` lists the stored runs" in result.stderr


def test_runs_empty_database(bot: BotClient, cli: None) -> None:
    listed = invoke("runs")
    filtered = invoke("runs", "--branch", "main")

    assert listed.exit_code == 0
    assert listed.stdout.strip() == "no runs stored yet"
    assert filtered.stdout.strip() == "no runs match"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["stats", "bogus"],
            "unknown metric 'bogus'; use one of build_time, custom, deployment_time, "
            "publish_time, queue_time, test_duration",
        ),
        (
            ["stats", "--since", "yesterday"],
            "--since: invalid time window 'yesterday': use a number with s, m, h, d or w "
            "(such as 7d) or an ISO 8601 time",
        ),
        (
            ["stats", "--repo", "widget"],
            "invalid --repo 'widget': use OWNER/NAME, such as octo-org/widget",
        ),
        (
            ["runs", "--repo", "octo-org/widget/extra"],
            "invalid --repo 'octo-org/widget/extra': use OWNER/NAME",
        ),
    ],
)
def test_invalid_option_exit_2(cli: None, args: list[str], message: str) -> None:
    result = invoke(*args)

    assert result.exit_code == 2
    assert message in result.stderr


def test_runs_limit_out_of_range(cli: None) -> None:
    result = invoke("runs", "--limit", "0")

    assert result.exit_code == 2
    assert "--limit" in result.stderr


def test_stats_table(bot: BotClient, cli: None) -> None:
    send_example(bot, "3-rerun")
    send_example(bot, "2-fork-pull-request")

    result = invoke("stats", "build_time", "--repo", "octo-org/widget")

    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0] == "build_time (repo=octo-org/widget)"
    rows = {
        cells[0]: cells[1:]
        for cells in ([cell.strip() for cell in line.split("│")] for line in lines if "│" in line)
    }
    # The points are 198 s (attempt 1), 224 s (attempt 2) and 276 s (the fork's run).
    assert rows["count"] == ["3", ""]
    assert rows["mean"] == ["232.67", "3m 53s"]
    assert rows["min"] == ["198", "3m 18s"]
    assert rows["p50 (median)"] == ["224", "3m 44s"]
    assert rows["max"] == ["276", "4m 36s"]
    assert rows["total"] == ["698", "11m 38s"]


def test_stats_no_points(bot: BotClient, cli: None) -> None:
    result = invoke("stats", "deployment_time", "--since", "7d")

    assert result.exit_code == 0, result.output
    rows = {
        cells[0]: cells[1:]
        for cells in (
            [cell.strip() for cell in line.split("│")]
            for line in result.stdout.splitlines()
            if "│" in line
        )
    }
    assert rows["count"] == ["0", ""]
    assert rows["mean"] == ["-", "-"]


def test_read_without_database_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_settings(monkeypatch, tmp_path)
    with restored_logging():
        result = invoke("runs")

    assert result.exit_code == 1
    assert f"no database at {tmp_path / 'release-bot.db'}" in result.stderr
    assert not (tmp_path / "release-bot.db").exists()


def test_db_upgrade_and_serve_help(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_settings(monkeypatch, tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}")
    with restored_logging():
        upgrade = invoke("db", "upgrade")
        serve_help = invoke("serve", "--help")
        runs = invoke("runs")

    assert upgrade.exit_code == 0, upgrade.output
    assert "is at revision heads" in upgrade.stdout
    assert serve_help.exit_code == 0
    assert "--port" in serve_help.stdout
    assert runs.exit_code == 0
    assert runs.stdout.strip() == "no runs stored yet"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(None, "-"), (0.0, "0s"), (42.4, "42s"), (312.0, "5m 12s"), (3725.0, "1h 2m"), (-3.0, "0s")],
)
def test_format_duration_cases(seconds: float | None, expected: str) -> None:
    assert terminal.format_duration(seconds) == expected


def test_printable_escapes_controls() -> None:
    assert terminal.printable("main\x1b[2J") == "main\\u001b[2J"
    assert terminal.printable("fix\u202eexe.txt") == "fix\\u202eexe.txt"
    assert terminal.printable("line\nbreak") == "line\\u000abreak"
    assert terminal.printable("[red]ok[/red] ✓") == "[red]ok[/red] ✓"


def test_stats_table_marks_estimates() -> None:
    statistics = {"count": 30000, "mean": 10.0, "min": 1.0, "max": 20.0, "total": 300000.0}
    statistics.update({"stddev": 2.0, "p50": 10.0, "p90": 15.0, "p95": 17.0, "p99": 19.0})
    output = Console(width=100, record=True, file=io.StringIO())

    output.print(
        terminal.stats_table(
            "queue_time", {**statistics, "percentiles_exact": False}, {}, seconds=True
        )
    )
    estimated = " ".join(output.export_text().split())
    output.print(
        terminal.stats_table(
            "queue_time", {**statistics, "percentiles_exact": True}, {}, seconds=True
        )
    )
    exact = " ".join(output.export_text().split())

    assert "percentiles estimated from histogram buckets" in estimated
    assert "percentiles estimated" not in exact
