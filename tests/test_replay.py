"""`release-bot replay`: the examples give the runs, jobs, steps and statistics that
examples/README.md documents, in-process and over HTTP, and replaying twice changes nothing."""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session
from typer.testing import CliRunner

from bot.cli import app
from bot.views import run_views
from storage import deliveries, github, metrics, queries
from storage.db import create_db_engine
from storage.models import Delivery, Deployment, Metric, Release, Tag
from tests.cli_support import (
    clean_environment,
    free_port,
    isolate_settings,
    restored_logging,
    run_server,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_DELIVERIES = 69
DELIVERY_ID = re.compile(r"^replay-[0-9a-f]{32}$")

# (name, stage, conclusion, queue_s, duration_s, step durations in step order)
CI_MAIN_JOBS = [
    ("lint", "test", "success", 6.0, 42.0, [2, 1, 6, 5, 26, 1, 1]),
    ("test (3.11)", "test", "success", 9.0, 180.0, [2, 1, 8, 39, 128, 1, 1]),
    ("test (3.12)", "test", "success", 12.0, 204.0, [2, 1, 9, 41, 149, 1, 1]),
    ("build", "build", "success", 7.0, 296.0, [2, 1, 7, 4, 261, 19, 1, 1]),
]
FORK_JOBS = [
    ("lint", "test", "success", 5.0, 38.0, [2, 1, 5, 5, 23, 1, 1]),
    ("test (3.11)", "test", "success", 8.0, 171.0, [2, 1, 8, 37, 121, 1, 1]),
    ("test (3.12)", "test", "success", 10.0, 188.0, [2, 1, 8, 40, 135, 1, 1]),
    ("build", "build", "success", 6.0, 262.0, [2, 1, 7, 4, 229, 17, 1, 1]),
]
RERUN_ATTEMPT_1_JOBS = [
    ("lint", "test", "success", 5.0, 40.0, [2, 1, 6, 5, 24, 1, 1]),
    ("test (3.11)", "test", "success", 7.0, 176.0, [2, 1, 8, 38, 125, 1, 1]),
    ("test (3.12)", "test", "failure", 9.0, 180.0, [2, 1, 8, 40, 127, 1, 1]),
    ("build", "build", "success", 6.0, 186.0, [2, 1, 7, 4, 152, 18, 1, 1]),
]
RERUN_ATTEMPT_2_JOBS = [
    ("test (3.12)", "test", "success", 7.0, 209.0, [2, 1, 8, 39, 157, 1, 1]),
]
PUBLISH_JOBS = [
    ("build distributions", "publish", "success", 5.0, 48.0, [2, 1, 6, 30, 7, 1, 1]),
    ("publish to PyPI", "publish", "success", 8.0, 78.0, [2, 4, 70, 2]),
]
# Newest first, as `release-bot runs` and GET /api/v1/runs list them:
# run id -> (workflow, branch, event, [(attempt, conclusion, duration_s, jobs)])
EXPECTED_RUNS: dict[int, tuple[str, str, str, list[tuple[int, str, float, list[Any]]]]] = {
    14957730904: ("Publish", "v1.4.0", "release", [(1, "success", 150.0, PUBLISH_JOBS)]),
    14955012403: (
        "CI",
        "main",
        "push",
        [(1, "failure", 198.0, RERUN_ATTEMPT_1_JOBS), (2, "success", 224.0, RERUN_ATTEMPT_2_JOBS)],
    ),
    14954487702: ("CI", "fix-typo", "pull_request", [(1, "success", 276.0, FORK_JOBS)]),
    14954120301: ("CI", "main", "push", [(1, "success", 312.0, CI_MAIN_JOBS)]),
}
# The points each metric gets from the examples.
BUILD_TIMES = [312, 276, 198, 224, 150]
QUEUE_TIMES = [6, 9, 12, 7, 5, 8, 10, 6, 5, 7, 9, 6, 7, 5, 8]
TEST_DURATIONS = [42, 180, 204, 38, 171, 188, 40, 176, 180, 209]
# metric -> (count, total, min, max, mean, p50, p90, p95, p99, population stddev)
EXPECTED_STATISTICS = {
    "build_time": (
        5,
        1160.0,
        150.0,
        312.0,
        232.0,
        224.0,
        297.6,
        304.8,
        310.56,
        statistics.pstdev(BUILD_TIMES),
    ),
    "queue_time": (
        15,
        110.0,
        5.0,
        12.0,
        110 / 15,
        7.0,
        9.6,
        10.6,
        11.72,
        statistics.pstdev(QUEUE_TIMES),
    ),
    "test_duration": (
        10,
        1428.0,
        38.0,
        209.0,
        142.8,
        178.0,
        204.5,
        206.75,
        208.55,
        statistics.pstdev(TEST_DURATIONS),
    ),
    "publish_time": (1, 150.0, 150.0, 150.0, 150.0, 150.0, 150.0, 150.0, 150.0, 0.0),
    "deployment_time": (1, 86.0, 86.0, 86.0, 86.0, 86.0, 86.0, 86.0, 86.0, 0.0),
}


@pytest.fixture
def cli_database(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The test database as DATABASE_URL of an isolated CLI run in an empty directory."""
    isolate_settings(monkeypatch, tmp_path, DATABASE_URL=database_url)
    with restored_logging():
        yield database_url


@pytest.fixture
def engine(cli_database: str) -> Iterator[Engine]:
    engine = create_db_engine(cli_database, pool_size=2)
    yield engine
    engine.dispose()


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def stored_views(engine: Engine) -> list[dict[str, Any]]:
    with Session(engine) as session:
        return run_views(session, list(queries.list_runs(session=session)))


def stored_statistics(engine: Engine, metric: str) -> dict[str, Any]:
    with Session(engine) as session:
        return metrics.calculate_statistics(
            session=session, metric_filter=metrics.MetricFilter(metric_type=metric)
        )


def assert_example_runs(views: list[dict[str, Any]]) -> None:
    """Check every run, attempt, job and step of the examples against the documented values."""
    assert [view["run_id"] for view in views] == list(EXPECTED_RUNS)
    for view in views:
        workflow, branch, event, attempts = EXPECTED_RUNS[view["run_id"]]
        assert view["repo"] == "octo-org/widget"
        assert (view["workflow"], view["branch"], view["event"]) == (workflow, branch, event)
        assert view["status"] == "completed"
        assert view["duration_s"] == attempts[-1][2]
        assert [attempt["attempt"] for attempt in view["attempts"]] == [
            number for number, *_ in attempts
        ]
        for attempt, (number, conclusion, duration, jobs) in zip(
            view["attempts"], attempts, strict=True
        ):
            assert (attempt["attempt"], attempt["conclusion"], attempt["duration_s"]) == (
                number,
                conclusion,
                duration,
            )
            actual_jobs = [
                (
                    job["name"],
                    job["stage"],
                    job["conclusion"],
                    job["queue_s"],
                    job["duration_s"],
                    [step["duration_s"] for step in job["steps"]],
                )
                for job in attempt["jobs"]
            ]
            assert actual_jobs == jobs, f"run {view['run_id']} attempt {number}"


def assert_example_statistics(by_metric: dict[str, dict[str, Any]]) -> None:
    for metric, expected in EXPECTED_STATISTICS.items():
        count, total, minimum, maximum, mean, p50, p90, p95, p99, stddev = expected
        actual = by_metric[metric]
        assert actual["count"] == count, metric
        assert actual["total"] == total, metric
        assert actual["min"] == minimum, metric
        assert actual["max"] == maximum, metric
        assert actual["mean"] == pytest.approx(mean, rel=1e-12), metric
        assert actual["p50"] == pytest.approx(p50, rel=1e-12), metric
        assert actual["p90"] == pytest.approx(p90, rel=1e-12), metric
        assert actual["p95"] == pytest.approx(p95, rel=1e-12), metric
        assert actual["p99"] == pytest.approx(p99, rel=1e-12), metric
        assert actual["stddev"] == pytest.approx(stddev, rel=1e-9, abs=1e-9), metric


def write_json(path: Path, value: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return path


def count_deliveries(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Delivery)) or 0


def test_examples_in_process(engine: Engine) -> None:
    result = invoke("replay", str(EXAMPLES))

    assert result.exit_code == 0, result.output
    assert (
        result.stdout.splitlines()[-1]
        == f"replayed {EXAMPLE_DELIVERIES} deliveries: {EXAMPLE_DELIVERIES} done"
    )
    assert_example_runs(stored_views(engine))
    assert_example_statistics(
        {metric: stored_statistics(engine, metric) for metric in EXPECTED_STATISTICS}
    )


def test_examples_other_facts(engine: Engine) -> None:
    assert invoke("replay", str(EXAMPLES)).exit_code == 0

    with Session(engine) as session:
        fork_run = queries.get_run(session=session, run_id=14954487702)
        assert fork_run is not None
        assert fork_run.head_repository == "contrib-user/widget"
        assert fork_run.pull_request_numbers == []
        assert [
            pr.number for pr in github.find_pull_requests_for_run(session=session, run=fork_run)
        ] == [58]

        release = session.scalars(select(Release)).one()
        assert (release.tag_name, release.state, release.name) == (
            "v1.4.0",
            "published",
            "widget 1.4.0",
        )
        tag = session.scalars(select(Tag)).one()
        assert (tag.name, tag.sha) == ("v1.4.0", "c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0")
        deployment = session.scalars(select(Deployment)).one()
        assert (deployment.environment, deployment.state, deployment.duration_s) == (
            "pypi",
            "success",
            86.0,
        )


def test_examples_replayed_twice_unchanged(engine: Engine) -> None:
    assert invoke("replay", str(EXAMPLES)).exit_code == 0
    views = stored_views(engine)
    first_statistics = {metric: stored_statistics(engine, metric) for metric in EXPECTED_STATISTICS}
    with Session(engine) as session:
        metric_points = session.scalar(select(func.count()).select_from(Metric))

    second = invoke("replay", str(EXAMPLES))

    assert second.exit_code == 0, second.output
    assert (
        second.stdout.splitlines()[-1]
        == f"replayed {EXAMPLE_DELIVERIES} deliveries: {EXAMPLE_DELIVERIES} duplicate"
    )
    assert "already stored as done; --force processes it again" in second.stdout
    assert count_deliveries(engine) == EXAMPLE_DELIVERIES
    assert stored_views(engine) == views
    assert {
        metric: stored_statistics(engine, metric) for metric in EXPECTED_STATISTICS
    } == first_statistics
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Metric)) == metric_points


def test_force_reprocesses_without_duplicates(engine: Engine) -> None:
    assert invoke("replay", str(EXAMPLES)).exit_code == 0
    with Session(engine) as session:
        metric_points = session.scalar(select(func.count()).select_from(Metric))

    result = invoke("replay", "--force", str(EXAMPLES / "3-rerun"))

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "replayed 21 deliveries: 21 done"
    with Session(engine) as session:
        rows = session.scalars(select(Delivery).where(Delivery.attempts == 2)).all()
        assert len(rows) == 21
        assert session.scalar(select(func.count()).select_from(Metric)) == metric_points
    assert_example_runs(stored_views(engine))


def test_line_names_id_event_outcome(engine: Engine) -> None:
    file = EXAMPLES / "1-ci-main" / "16-workflow_run.completed.json"
    delivery_id = json.loads(file.read_text())["headers"]["X-GitHub-Delivery"]

    result = invoke("replay", str(file))

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{delivery_id}  workflow_run.completed  done",
        "replayed 1 deliveries: 1 done",
    ]


def delivery_record(guid: str, event: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A delivery as GET /app/hook/deliveries/{id} returns it, with a stale signature."""
    return {
        "id": 912345678901,
        "guid": guid,
        "delivered_at": "2025-05-12T09:05:13Z",
        "redelivery": False,
        "duration": 0.21,
        "status": "OK",
        "status_code": 202,
        "event": event,
        "action": payload.get("action"),
        "installation_id": 424242,
        "repository_id": 702341189,
        "url": "https://bot.example.com/github/webhooks",
        "request": {
            "headers": {
                "Accept": "*/*",
                "content-type": "application/json",
                "User-Agent": "GitHub-Hookshot/7e2b1c9",
                "X-GitHub-Delivery": guid,
                "X-GitHub-Event": event,
                "X-Hub-Signature-256": "sha256=" + "0" * 64,
            },
            "payload": payload,
        },
        "response": {
            "headers": {"content-type": "application/json"},
            "payload": '{"status":"accepted"}',
        },
    }


def run_payload(run_id: int, branch: str = "main") -> dict[str, Any]:
    return {
        "action": "completed",
        "workflow_run": {
            "id": run_id,
            "name": "CI",
            "run_attempt": 1,
            "status": "completed",
            "conclusion": "success",
            "head_branch": branch,
            "run_started_at": "2025-05-12T09:00:00Z",
            "updated_at": "2025-05-12T09:05:12Z",
        },
        "repository": {"id": 702341189, "full_name": "octo-org/widget"},
        "installation": {"id": 424242},
    }


def test_delivery_record_format(engine: Engine, tmp_path: Path) -> None:
    guid = "0b989ba4-242f-11e5-81e1-c7b6966d2516"
    file = write_json(
        tmp_path / "delivery.json", delivery_record(guid, "workflow_run", run_payload(501))
    )

    result = invoke("replay", str(file))

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split() == [guid, "workflow_run.completed", "done"]
    with Session(engine) as session:
        stored = deliveries.get_delivery(session=session, delivery_id=guid)
        assert stored is not None
        assert stored.headers["x-github-event"] == "workflow_run"
        assert "x-hub-signature-256" not in stored.headers
        assert stored.installation_id == 424242
        assert stored.repository == "octo-org/widget"
    assert stored_views(engine)[0]["duration_s"] == 312.0


def test_list_of_both_formats(engine: Engine, tmp_path: Path) -> None:
    entries = [
        delivery_record("guid-list-1", "workflow_run", run_payload(601)),
        {
            "headers": {"X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": "guid-list-2"},
            "payload": run_payload(602),
        },
    ]
    file = write_json(tmp_path / "list.json", entries)

    result = invoke("replay", str(file))

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "replayed 2 deliveries: 2 done"
    assert [view["run_id"] for view in stored_views(engine)] == [602, 601]


def test_directory_in_path_order(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "recorded"
    write_json(
        folder / "b" / "01.json",
        {
            "headers": {"X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": "third"},
            "payload": run_payload(703),
        },
    )
    write_json(
        folder / "a-02.json",
        {
            "headers": {"X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": "second"},
            "payload": run_payload(702),
        },
    )
    write_json(
        folder / "a-01.json",
        {
            "headers": {"X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": "first"},
            "payload": run_payload(701),
        },
    )
    (folder / "notes.txt").write_text("not a delivery")

    result = invoke("replay", str(folder))

    assert result.exit_code == 0, result.output
    with Session(engine) as session:
        order = session.scalars(select(Delivery.delivery_id).order_by(Delivery.id)).all()
    assert order == ["first", "second", "third"]


def test_derived_id_stable(engine: Engine, tmp_path: Path) -> None:
    file = write_json(
        tmp_path / "no-id.json",
        {"headers": {"X-GitHub-Event": "workflow_run"}, "payload": run_payload(801)},
    )
    other = write_json(
        tmp_path / "other.json",
        {"headers": {"X-GitHub-Event": "workflow_run"}, "payload": run_payload(802)},
    )

    first = invoke("replay", str(file))
    second = invoke("replay", str(file))
    third = invoke("replay", str(other))

    first_id = first.stdout.split()[0]
    assert DELIVERY_ID.match(first_id)
    assert second.stdout.split()[0] == first_id
    assert second.stdout.splitlines()[-1] == "replayed 1 deliveries: 1 duplicate"
    assert third.stdout.split()[0] != first_id
    assert count_deliveries(engine) == 2


def test_unhandled_event_ignored(engine: Engine, tmp_path: Path) -> None:
    file = write_json(
        tmp_path / "star.json",
        {
            "headers": {"X-GitHub-Event": "star", "X-GitHub-Delivery": "star-1"},
            "payload": {"action": "created", "starred_at": "2025-05-12T09:00:00Z"},
        },
    )

    result = invoke("replay", str(file))

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split()[:3] == ["star-1", "star.created", "ignored:"]
    with Session(engine) as session:
        stored = deliveries.get_delivery(session=session, delivery_id="star-1")
        assert stored is not None
        assert stored.status == "ignored"
        assert stored.body == b""


def test_ping_not_stored(engine: Engine, tmp_path: Path) -> None:
    file = write_json(
        tmp_path / "ping.json",
        {
            "headers": {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "ping-1"},
            "payload": {"zen": "Keep it logically awesome.", "hook_id": 481516230},
        },
    )

    result = invoke("replay", str(file))

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split()[:3] == ["ping-1", "ping", "ping:"]
    assert count_deliveries(engine) == 0


def test_invalid_payload_exit_1(engine: Engine, tmp_path: Path) -> None:
    file = write_json(
        tmp_path / "broken-run.json",
        {
            "headers": {"X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": "broken-1"},
            "payload": {"action": "completed", "workflow_run": None},
        },
    )

    result = invoke("replay", str(file))

    assert result.exit_code == 1
    line = result.stdout.splitlines()[0]
    assert line.startswith(
        "broken-1  workflow_run.completed  invalid: `workflow_run` must be an object"
    )
    assert line.endswith(f"({file})")


UNREADABLE = [
    ("not-json.json", "{not json", "not valid JSON"),
    ("empty-list.json", "[]", "the list is empty"),
    ("number.json", "42", "expected a delivery object, got int"),
    (
        "bare-payload.json",
        json.dumps({"action": "completed", "workflow_run": {"id": 1}}),
        "neither GitHub's delivery record",
    ),
    (
        "no-event.json",
        json.dumps({"headers": {"X-GitHub-Delivery": "x"}, "payload": {"action": "completed"}}),
        "the event name is missing; add an `X-GitHub-Event` header",
    ),
    (
        "list-payload.json",
        json.dumps({"headers": {"X-GitHub-Event": "push"}, "payload": [1, 2]}),
        "`payload` must be a JSON object, got list",
    ),
    (
        "string-headers.json",
        json.dumps({"headers": "X-GitHub-Event: push", "payload": {}}),
        "`headers` must be an object",
    ),
    (
        "null-payload.json",
        json.dumps({"guid": "g", "event": "push", "request": {"headers": {}, "payload": None}}),
        "`payload` must be a JSON object, got NoneType",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "problem"), UNREADABLE, ids=[case[0] for case in UNREADABLE]
)
def test_unreadable_file_replays_nothing(
    engine: Engine, tmp_path: Path, name: str, content: str, problem: str
) -> None:
    good = write_json(
        tmp_path / "good.json",
        {"headers": {"X-GitHub-Event": "workflow_run"}, "payload": run_payload(901)},
    )
    bad = tmp_path / name
    bad.write_text(content)

    result = invoke("replay", str(good), str(bad))

    assert result.exit_code == 1
    assert f"{bad}" in result.stderr
    assert problem in result.stderr
    assert "nothing was replayed: 1 unreadable path(s)" in result.stderr
    assert count_deliveries(engine) == 0


def test_list_entry_named_by_index(engine: Engine, tmp_path: Path) -> None:
    file = write_json(
        tmp_path / "mixed.json",
        [{"headers": {"X-GitHub-Event": "workflow_run"}, "payload": run_payload(1001)}, "oops"],
    )

    result = invoke("replay", str(file))

    assert result.exit_code == 1
    assert f"{file}[1]: expected a delivery object, got str" in result.stderr


def test_missing_path_and_empty_directory(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    result = invoke("replay", str(tmp_path / "absent.json"), str(tmp_path / "empty"))

    assert result.exit_code == 1
    assert f"{tmp_path / 'absent.json'}: no such file or directory" in result.stderr
    assert f"{tmp_path / 'empty'}: the directory contains no *.json files" in result.stderr
    assert "nothing was replayed: 2 unreadable path(s)" in result.stderr


def test_force_with_url_rejected(cli_database: str) -> None:
    result = invoke("replay", "--force", "--url", "http://127.0.0.1:9", str(EXAMPLES))

    assert result.exit_code == 2
    assert "--force works only without --url" in result.stderr


def test_url_without_secret_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_settings(monkeypatch, tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'absent.db'}")
    with restored_logging():
        result = invoke("replay", "--url", "http://127.0.0.1:9", str(EXAMPLES))

    assert result.exit_code == 2
    assert (
        "no webhook secret to sign the deliveries with: pass --secret, set GITHUB_WEBHOOK_SECRET"
        in result.stderr
    )
    assert not (tmp_path / "absent.db").exists()


def test_url_unreachable(cli_database: str) -> None:
    port = free_port()

    result = invoke(
        "replay",
        "--url",
        f"http://127.0.0.1:{port}",
        "--secret",
        "a-secret-for-this-test",
        str(EXAMPLES),
    )

    assert result.exit_code == 1
    assert f"cannot reach http://127.0.0.1:{port}/github/webhooks" in result.stderr


def wait_until_processed(engine: Engine, expected: int) -> dict[str, int]:
    """Poll the inbox until the server's worker has processed every delivery."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with Session(engine) as session:
            counts = deliveries.count_by_status(session=session)
        if sum(counts.values()) == expected and not counts.get("pending"):
            return counts
        time.sleep(0.1)
    raise AssertionError(f"the server did not process {expected} deliveries in 60 s: {counts}")


def test_examples_over_http(engine: Engine, cli_database: str, tmp_path: Path) -> None:
    # No GITHUB_WEBHOOK_SECRET: the server generates one and replay reads it from the database.
    with run_server(tmp_path, clean_environment(DATABASE_URL=cli_database)) as server:
        result = invoke("replay", "--url", server.base_url, str(EXAMPLES))

        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[-1] == (
            f"sent {EXAMPLE_DELIVERIES} of {EXAMPLE_DELIVERIES} deliveries to "
            f"{server.base_url}/github/webhooks: {EXAMPLE_DELIVERIES} accepted"
        )
        assert wait_until_processed(engine, EXAMPLE_DELIVERIES) == {"done": EXAMPLE_DELIVERIES}

        runs = httpx.get(f"{server.base_url}/api/v1/runs").json()["runs"]
        served_statistics = {
            metric: httpx.get(f"{server.base_url}/api/v1/stats", params={"metric": metric}).json()
            for metric in EXPECTED_STATISTICS
        }
        rerun = httpx.get(f"{server.base_url}/api/v1/runs/14955012403").json()
        again = invoke("replay", "--url", server.base_url, str(EXAMPLES / "3-rerun"))

    assert_example_runs(runs)
    assert_example_statistics(served_statistics)
    assert rerun == runs[1]
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[-1].endswith(": 21 duplicate")
    assert count_deliveries(engine) == EXAMPLE_DELIVERIES


def test_wrong_secret_rejected_over_http(engine: Engine, cli_database: str, tmp_path: Path) -> None:
    environment = clean_environment(
        DATABASE_URL=cli_database, GITHUB_WEBHOOK_SECRET="the-secret-the-server-checks"
    )
    with run_server(tmp_path, environment) as server:
        wrong = invoke(
            "replay",
            "--url",
            server.base_url,
            "--secret",
            "not-the-server-secret",
            str(EXAMPLES / "4-release"),
        )
        right = invoke(
            "replay",
            "--url",
            server.base_url,
            "--secret",
            "the-secret-the-server-checks",
            str(EXAMPLES / "4-release"),
        )
        wait_until_processed(engine, 16)

    assert wrong.exit_code == 1
    assert wrong.stdout.splitlines()[-1].endswith(": 16 rejected (401)")
    assert "X-Hub-Signature-256 is missing or does not match the body" in wrong.stdout
    assert right.exit_code == 0, right.output
    assert right.stdout.splitlines()[-1].endswith(": 16 accepted")
