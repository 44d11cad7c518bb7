"""A run from a fork's pull request: its `pull_requests` list is empty, so the run is linked to
its pull request by head SHA and head repository, never by branch name."""

from __future__ import annotations

import logging

import pytest

from storage import github as github_facts
from storage.models import WorkflowRun
from tests.conftest import BotClient
from tests.github.conftest import api_run, delivery_statuses, load_fixture, send_steps

DECOY_STEP, FORK_PR_STEP, RUN_STEP = range(3)


def test_fork_run_linked_by_head_sha(bot: BotClient) -> None:
    steps = load_fixture("fork_pull_request.json")

    responses = send_steps(bot, steps)

    assert [response.status_code for response in responses] == [202, 202, 202]
    run = api_run(bot, 30001)
    assert run["conclusion"] == "success"
    assert run["duration_s"] == 312.0
    assert len(run["attempts"]) == 1
    assert run["attempts"][0]["duration_s"] == 312.0
    assert run["pull_requests"] == []
    assert run["head_repository"] == "octo-contrib/widget"
    with bot.session() as session:
        assert set(delivery_statuses(session).values()) == {"done"}
        stored_run = session.get(WorkflowRun, 30001)
        assert stored_run is not None
        pulls = github_facts.find_pull_requests_for_run(session=session, run=stored_run)
    assert [pull.number for pull in pulls] == [42]
    assert pulls[0].head_repository == "octo-contrib/widget"


def test_fork_run_without_pull_request_event(
    bot: BotClient, caplog: pytest.LogCaptureFixture
) -> None:
    steps = load_fixture("fork_pull_request.json")
    del steps[FORK_PR_STEP]
    caplog.set_level(logging.INFO)

    responses = send_steps(bot, steps)

    assert [response.status_code for response in responses] == [202, 202]
    run = api_run(bot, 30001)
    assert run["conclusion"] == "success"
    assert run["duration_s"] == 312.0
    with bot.session() as session:
        assert set(delivery_statuses(session).values()) == {"done"}
        stored_run = session.get(WorkflowRun, 30001)
        assert stored_run is not None
        assert github_facts.find_pull_requests_for_run(session=session, run=stored_run) == []
    assert [
        record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING
    ] == []


def test_fork_run_ignores_same_sha_in_base_repo(bot: BotClient) -> None:
    # The same commit can sit on a branch of the base repository and on one of the fork. The
    # run belongs only to the pull request whose head is in the run's head repository.
    steps = load_fixture("fork_pull_request.json")
    decoy_head = steps[DECOY_STEP]["payload"]["pull_request"]["head"]
    decoy_head["sha"] = steps[FORK_PR_STEP]["payload"]["pull_request"]["head"]["sha"]

    send_steps(bot, steps)

    with bot.session() as session:
        stored_run = session.get(WorkflowRun, 30001)
        assert stored_run is not None
        pulls = github_facts.find_pull_requests_for_run(session=session, run=stored_run)
    assert [pull.number for pull in pulls] == [42]


def test_same_repo_run_linked_by_number(bot: BotClient) -> None:
    steps = load_fixture("fork_pull_request.json")
    run_payload = steps[RUN_STEP]["payload"]["workflow_run"]
    run_payload["pull_requests"] = [{"id": 880007, "number": 7, "head": {"ref": "patch-1"}}]
    run_payload["head_repository"] = steps[RUN_STEP]["payload"]["repository"]
    run_payload["head_sha"] = "e" * 40

    send_steps(bot, steps)

    assert api_run(bot, 30001)["pull_requests"] == [7]
    with bot.session() as session:
        stored_run = session.get(WorkflowRun, 30001)
        assert stored_run is not None
        pulls = github_facts.find_pull_requests_for_run(session=session, run=stored_run)
    assert [pull.number for pull in pulls] == [7]
