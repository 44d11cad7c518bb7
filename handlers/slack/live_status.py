"""Live release status: one Slack message per subscribed channel, edited in place as a release
run's jobs progress, ending with the run's profile.

`react` runs in the webhook worker's transaction after the GitHub handler has stored the
facts. It never calls Slack: it records a `slack_status_message` row per channel and queues
an outbox row, which bot.slack_delivery sends (chat.postMessage once, chat.update after).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from bot.config import Settings
from bot.render.slack import SlackMessage
from bot.render.slack_runs import render_live_status
from handlers.github.context import HandlerContext, classify_stage
from handlers.github.payload import optional_int, optional_object
from handlers.slack import run_data
from storage import alert_rules, queries, slack_queries
from storage import slack as slack_store
from storage.models import WorkflowRun

logger = logging.getLogger(__name__)

OUTBOX_KIND = "slack_live_status"
EVENTS = ("workflow_run", "workflow_job")
# Actions that mean the run has started; other actions only update an existing message.
START_ACTIONS = frozenset({"requested", "in_progress", "queued", "waiting"})
# A version tag such as v1.2.0 or 2024.06.1-rc1: a run on such a ref is a release run.
VERSION_TAG = re.compile(r"^v?\d+(\.\d+)+([-+][0-9A-Za-z.-]+)?$")


def is_slack_configured(settings: Settings) -> bool:
    """Tell whether the bot can post to Slack at all."""
    return settings.has_slack or settings.has_slack_oauth


def is_release_run(session: Session, settings: Settings, run: WorkflowRun) -> bool:
    """Tell whether a run publishes a release: a publish workflow, a release event, or a tag push."""
    if classify_stage(settings, run.workflow_name) == "publish":
        return True
    if run.event == "release":
        return True
    if not run.head_branch:
        return False
    if VERSION_TAG.match(run.head_branch):
        return True
    return slack_queries.get_tag(session=session, repo=run.repo, name=run.head_branch) is not None


def run_id_of(event: str, payload: dict[str, Any]) -> int | None:
    """Return the run a workflow_run or workflow_job delivery is about."""
    if event == "workflow_run":
        return optional_int(optional_object(payload, "workflow_run"), "id")
    return optional_int(optional_object(payload, "workflow_job"), "run_id")


def wants(ctx: HandlerContext) -> bool:
    """Tell whether `react` can do anything for this delivery."""
    return ctx.event in EVENTS and is_slack_configured(ctx.settings)


def react(ctx: HandlerContext, payload: dict[str, Any]) -> int:
    """Queue live status updates for the channels following a release run; return how many."""
    if not wants(ctx):
        return 0
    run_id = run_id_of(ctx.event, payload)
    run = queries.get_run(session=ctx.session, run_id=run_id) if run_id is not None else None
    if run is None or not is_release_run(ctx.session, ctx.settings, run):
        return 0

    starting = ctx.action in START_ACTIONS
    queued = 0
    for subscription in slack_store.subscriptions_for_repo(session=ctx.session, repo=run.repo):
        if "publishes" not in subscription.event_set:
            continue
        # Filters are glob patterns compared without case, as for failure alerts.
        if subscription.branch and not alert_rules.matches_glob(
            run.head_branch, subscription.branch
        ):
            continue
        if subscription.workflow and not alert_rules.matches_glob(
            run.workflow_name, subscription.workflow
        ):
            continue
        if not is_linked(ctx.session, ctx.settings, subscription.team_id, run.installation_id):
            continue
        keys = {
            "team_id": subscription.team_id,
            "channel_id": subscription.channel_id,
            "run_id": run.id,
        }
        message = slack_store.find_status_message(session=ctx.session, **keys)
        if message is None and not starting:
            # Only a start posts a new message, so the end of a run whose start the bot missed posts nothing.
            continue
        if message is None:
            message, _ = slack_store.ensure_status_message(session=ctx.session, **keys)
        if slack_store.queue_live_status_update(
            session=ctx.session, message=message, kind=OUTBOX_KIND
        ):
            queued += 1
    if queued:
        logger.info(
            "live status updates queued",
            extra=ctx.log_extra(run_id=run.id, repo=run.repo, messages=queued),
        )
    return queued


def is_linked(
    session: Session, settings: Settings, team_id: str, installation_id: int | None
) -> bool:
    """Tell whether a workspace may see the installation's runs."""
    if installation_id is None:
        return False
    configured = settings.slack_team_installations.get(team_id, frozenset())
    return installation_id in configured or installation_id in slack_store.linked_installation_ids(
        session=session, team_id=team_id
    )


def build_live_message(engine: Engine, run_id: int) -> tuple[SlackMessage, bool] | None:
    """Render a run's live status; return it and whether the run has finished, or None if the run is gone."""
    with Session(engine, expire_on_commit=False) as session:
        run = queries.get_run(session=session, run_id=run_id)
        if run is None:
            return None
        inputs = run_data.load_profile_inputs(session, run)
    finished = inputs.summary.status == "completed"
    # The final profile is built after the session is closed, because it opens its own.
    profile = run_data.build_profile(engine, inputs) if finished else None
    return render_live_status(inputs.summary, profile), finished
