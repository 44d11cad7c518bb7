"""An uninstalled App: the installation is marked deleted and its data is kept.

Later deliveries for the installation are still accepted and never make it active again.
"""

from __future__ import annotations

import copy
from typing import Any

from storage.models import Installation, Repository, WorkflowRun
from tests.conftest import BotClient
from tests.github.conftest import api_run, delivery_statuses, load_fixture, send_steps

RUN_BEFORE, DELETED, RUN_AFTER = range(3)


def installation_created(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Return an `installation.created` payload for the installation the scenario removes."""
    payload = copy.deepcopy(steps[DELETED]["payload"])
    payload["action"] = "created"
    return payload


def test_installation_deleted_keeps_data(bot: BotClient) -> None:
    steps = load_fixture("installation_removed.json")
    bot.send("installation", installation_created(steps))

    responses = send_steps(bot, steps)

    assert [response.status_code for response in responses] == [202, 202, 202]
    with bot.session() as session:
        assert set(delivery_statuses(session).values()) == {"done"}
        installation = session.get(Installation, 424242)
        assert installation is not None
        assert installation.status == "deleted"
        assert installation.account_login == "octo-org"
        repository = session.get(Repository, 1001)
        assert repository is not None
        assert repository.full_name == "octo-org/widget"
        assert repository.installation_id == 424242
        assert session.get(WorkflowRun, 30013) is not None
        assert session.get(WorkflowRun, 30014) is not None
    run = api_run(bot, 30013)
    assert run["conclusion"] == "failure"
    assert run["duration_s"] == 312.0


def test_late_delivery_keeps_installation_deleted(bot: BotClient) -> None:
    steps = load_fixture("installation_removed.json")
    send_steps(bot, steps[: DELETED + 1])

    bot.send(
        "workflow_run", steps[RUN_AFTER]["payload"], delivery_id=steps[RUN_AFTER]["delivery_id"]
    )

    with bot.session() as session:
        installation = session.get(Installation, 424242)
        assert installation is not None
        assert installation.status == "deleted"
    assert api_run(bot, 30014)["duration_s"] == 312.0


def test_installation_deleted_before_first_event(bot: BotClient) -> None:
    steps = load_fixture("installation_removed.json")

    send_steps(bot, [steps[DELETED], steps[RUN_AFTER]])

    with bot.session() as session:
        installation = session.get(Installation, 424242)
        assert installation is not None
        assert installation.status == "deleted"


def test_late_created_keeps_installation_deleted(bot: BotClient) -> None:
    # GitHub gives a reinstalled App a new installation id, so no event revives a deleted one.
    steps = load_fixture("installation_removed.json")
    send_steps(bot, [steps[DELETED]])

    bot.send("installation", installation_created(steps))

    with bot.session() as session:
        installation = session.get(Installation, 424242)
        assert installation is not None
        assert installation.status == "deleted"
