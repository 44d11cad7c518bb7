"""`/release silence`, `silences` and `unsilence`, and the buttons of alert messages (Re-run failed
jobs, Silence 1 h, Silence 1 day, Open run).

A silence holds back the failure alerts of a repository (optionally one workflow and branch)
in this workspace until it expires. The failures are still recorded and counted. Buttons are
acknowledged at once. Their work runs in a task, which replies to the presser ephemerally.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlmodel import Session

from bot.alert_render import (
    OPEN_RUN_ACTION,
    RERUN_ACTION,
    SILENCE_DAY_ACTION,
    SILENCE_HOUR_ACTION,
    render_note,
)
from bot.alert_settings import incident_key_fields
from bot.config import Settings
from bot.render.slack import SlackMessage, format_duration, inline, link
from bot.render.slack_messages import render_error, render_notice
from bot.silence_render import SilenceRow, render_silenced, render_silences, render_unsilenced
from handlers.slack.access import Refusal, check_access, resolve_repository
from handlers.slack.arguments import ArgumentError, parse_arguments
from handlers.slack.context import CommandContext
from storage import alert_rules, incidents, outbox, queries
from storage.models_alerts import AlertSilence

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.context.respond.async_respond import AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

logger = logging.getLogger(__name__)

SILENCE_USAGE = "/release silence OWNER/NAME [WORKFLOW] [--branch B] DURATION"
LIST_USAGE = "/release silences"
UNSILENCE_USAGE = "/release unsilence ID"
SILENCE_OPTIONS = {"branch": "a branch name or glob, such as main or release/*"}
DURATION_PART = re.compile(r"(\d+)([mhdw])")
DURATION_UNITS = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}
MAX_SILENCE = timedelta(days=30)
# Silences that ended this long ago are still listed, with what they held back.
LISTED_AFTER_END = timedelta(days=1)
BUTTON_HOURS = {SILENCE_HOUR_ACTION: 1, SILENCE_DAY_ACTION: 24}
FAILED_REPLY = "release-bot could not handle this button because of an internal error. The error is in the bot's log."


def parse_duration(word: str) -> timedelta:
    """Parse `30m`, `2h`, `1d`, `1w` or combinations such as `1h30m`, or raise ArgumentError."""
    text = word.strip().lower()
    parts = DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ArgumentError(
            f"invalid duration {word!r}: use a number and a unit (m, h, d or w), such as 30m, 2h or 1d",
            usage=SILENCE_USAGE,
        )
    duration = timedelta(seconds=sum(int(number) * DURATION_UNITS[unit] for number, unit in parts))
    if duration < timedelta(minutes=1) or duration > MAX_SILENCE:
        raise ArgumentError(f"invalid duration {word!r}: use from 1m to 30d", usage=SILENCE_USAGE)
    return duration


def glob_escape(name: str) -> str:
    """Make a name match only itself as a glob: `*`, `?` and `[` become bracketed literals."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def silence_row(session: Session, silence: AlertSilence) -> SilenceRow:
    """Build the listed form of a silence, with the last run it held back."""
    row = SilenceRow(
        silence_id=silence.id or 0,
        repo=silence.repo,
        workflow=silence.workflow,
        branch=silence.branch,
        created_by=silence.created_by,
        created_at=silence.created_at,
        expires_at=silence.expires_at,
        ended_at=silence.ended_at,
        suppressed_count=silence.suppressed_count,
        last_suppressed_at=silence.last_suppressed_at,
    )
    if silence.last_suppressed_run_id is not None:
        run = queries.get_run(session=session, run_id=silence.last_suppressed_run_id)
        if run is not None:
            row.last_run_url = run.html_url
            row.last_run_label = (
                f"{run.workflow_name or 'run'} #{run.run_number}"
                if run.run_number
                else f"run {run.id}"
            )
    return row


def create_silence(
    session: Session,
    *,
    settings: Settings,
    team_id: str,
    user_id: str,
    repo_word: str,
    workflow: str,
    branch: str,
    duration: timedelta,
) -> SilenceRow:
    """Check access and store a silence; return it as listed."""
    repo = resolve_repository(session, settings, team_id, repo_word, usage=SILENCE_USAGE)
    check_access(session, settings, team_id, repo)
    now = incidents.now()
    silence = alert_rules.add_silence(
        session=session,
        team_id=team_id,
        repo=repo,
        workflow=workflow,
        branch=branch,
        created_by=user_id,
        created_at=now,
        expires_at=now + duration,
    )
    return silence_row(session, silence)


async def run_silence(ctx: CommandContext, words: list[str]) -> SlackMessage:
    """Handle `/release silence` and return the reply."""
    arguments = parse_arguments(words, options=SILENCE_OPTIONS, usage=SILENCE_USAGE)
    if not 2 <= len(arguments.words) <= 3:
        raise ArgumentError(
            "give a repository, optionally a workflow (quoted if it has spaces), and a duration",
            usage=SILENCE_USAGE,
        )
    duration = parse_duration(arguments.words[-1])
    workflow = arguments.words[1] if len(arguments.words) == 3 else ""
    row = await ctx.write(
        create_silence,
        settings=ctx.settings,
        team_id=ctx.team_id,
        user_id=ctx.user_id,
        repo_word=arguments.words[0],
        workflow=workflow,
        branch=arguments.options.get("branch", ""),
        duration=duration,
    )
    logger.info("silence created", extra=ctx.log_extra(repo=row.repo, silence_id=row.silence_id))
    return render_silenced(row, duration.total_seconds())


def list_rows(session: Session, *, team_id: str) -> list[SilenceRow]:
    """Return a workspace's active silences and those that ended in the last day."""
    since = incidents.now() - LISTED_AFTER_END
    return [
        silence_row(session, silence)
        for silence in alert_rules.list_silences(session=session, team_id=team_id, since=since)
    ]


async def run_list(ctx: CommandContext, words: list[str]) -> SlackMessage:
    """Handle `/release silences` and return the reply."""
    if words:
        raise ArgumentError(f"unexpected arguments {' '.join(words)!r}", usage=LIST_USAGE)
    rows = await ctx.read(list_rows, team_id=ctx.team_id)
    return render_silences(rows, incidents.now())


def end_silence(session: Session, *, team_id: str, user_id: str, silence_id: int) -> SilenceRow:
    """End a silence of this workspace, or raise ArgumentError naming why not."""
    silence = alert_rules.get_silence(session=session, silence_id=silence_id)
    if silence is None or silence.team_id != team_id:
        raise ArgumentError(
            f"no silence {silence_id} in this workspace: `/release silences` lists them",
            usage=UNSILENCE_USAGE,
        )
    now = incidents.now()
    if not alert_rules.is_silence_active(silence, now):
        raise ArgumentError(f"silence {silence_id} has already ended", usage=UNSILENCE_USAGE)
    alert_rules.end_silence(session=session, silence=silence, ended_by=user_id, at=now)
    return silence_row(session, silence)


async def run_unsilence(ctx: CommandContext, words: list[str]) -> SlackMessage:
    """Handle `/release unsilence ID` and return the reply."""
    if len(words) != 1 or not words[0].isdigit():
        raise ArgumentError(
            "give the number of one silence, as `/release silences` lists it", usage=UNSILENCE_USAGE
        )
    row = await ctx.write(
        end_silence, team_id=ctx.team_id, user_id=ctx.user_id, silence_id=int(words[0])
    )
    logger.info("silence ended", extra=ctx.log_extra(silence_id=row.silence_id))
    return render_unsilenced(row)


# (name, usage, summary, handler) of each command, composed into handlers.slack.COMMANDS.
COMMAND_ENTRIES = (
    (
        "silence",
        SILENCE_USAGE,
        "Hold back a repository's failure alerts in this workspace for a while (30m, 2h, 1d).",
        run_silence,
    ),
    ("silences", LIST_USAGE, "List the silences, with the failures each one held back.", run_list),
    ("unsilence", UNSILENCE_USAGE, "End a silence early.", run_unsilence),
)


# --- buttons --------------------------------------------------------------------------------


class ButtonHost(Protocol):
    """The part of the Slack integration (bot.slack_app.SlackIntegration) that the buttons use."""

    bolt: AsyncApp

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None: ...

    def context(
        self,
        *,
        team_id: str,
        channel_id: str,
        user_id: str,
        text: str,
        client: AsyncWebClient | None,
        in_channel: bool = False,
    ) -> CommandContext: ...


def silence_incident(
    session: Session,
    *,
    settings: Settings,
    team_id: str,
    channel_id: str,
    user_id: str,
    incident_id: int,
    hours: int,
) -> str:
    """Silence the repository, workflow and branch of an incident and note it in the thread; return the
    reply in escaped mrkdwn."""
    incident = incidents.get_incident(session=session, incident_id=incident_id)
    if incident is None:
        raise ArgumentError(f"incident {incident_id} no longer exists")
    check_access(session, settings, team_id, incident.repo)
    fields = incident_key_fields(settings)
    now = incidents.now()
    duration = timedelta(hours=hours)
    silence = alert_rules.add_silence(
        session=session,
        team_id=team_id,
        repo=incident.repo,
        workflow=glob_escape(incident.workflow) if "workflow" in fields else "",
        branch=glob_escape(incident.branch) if "branch" in fields and incident.branch else "",
        created_by=user_id,
        created_at=now,
        expires_at=now + duration,
    )
    post = incidents.find_post(
        session=session, incident_id=incident_id, team_id=team_id, channel_id=channel_id
    )
    if post is not None and not incidents.is_post_dead(session=session, post=post):
        incidents.queue_post_message(
            session=session,
            post=post,
            action=incidents.REPLY,
            key=f"silenced:{silence.id}",
            note="silenced",
            user_id=user_id,
            duration=format_duration(duration.total_seconds()),
            until=silence.expires_at.isoformat(),
            silence_id=silence.id,
        )
    scope = (
        inline(incident.workflow)
        if "workflow" in fields and incident.workflow
        else "every workflow"
    )
    return (
        f"Silenced the alerts of *{inline(incident.repo)}* ({scope}) in this workspace for "
        f"{format_duration(duration.total_seconds())}. `/release unsilence {silence.id}` ends it early."
    )


def request_rerun(
    session: Session,
    *,
    settings: Settings,
    team_id: str,
    channel_id: str,
    user_id: str,
    failure_id: int,
) -> str:
    """Queue a re-run of a failure's failed jobs through the GitHub App; return the reply in escaped mrkdwn."""
    failure = incidents.get_failure(session=session, failure_id=failure_id)
    if failure is None or failure.run_id is None:
        raise ArgumentError(f"failure {failure_id} no longer exists or has no run to re-run")
    check_access(session, settings, team_id, failure.repo)
    if not settings.has_github_app:
        raise Refusal(
            "Re-running needs the GitHub App: the bot's admin sets GITHUB_APP_ID and GITHUB_PRIVATE_KEY.",
            summary="GitHub App not configured",
        )
    run = queries.get_run(session=session, run_id=failure.run_id)
    if run is None or run.installation_id is None:
        raise Refusal(
            "release-bot does not know which installation covers this run, so it cannot re-run it.",
            summary="unknown installation",
        )
    post = incidents.find_post(
        session=session,
        incident_id=failure.incident_id or 0,
        team_id=team_id,
        channel_id=channel_id,
    )
    outbox.enqueue(
        session=session,
        kind=incidents.RERUN_KIND,
        target=failure.repo,
        payload={
            "repo": failure.repo,
            "run_id": failure.run_id,
            "installation_id": run.installation_id,
            "failure_id": failure.id,
            "post_id": post.id if post is not None else None,
            "user_id": user_id,
        },
        # One re-run per failed attempt, however often the button is pressed.
        dedupe_key=f"{incidents.RERUN_KIND}:{failure.run_id}:{failure.run_attempt or 1}",
    )
    label = f"{run.workflow_name or 'run'} #{run.run_number}" if run.run_number else f"run {run.id}"
    return f"Asked GitHub to re-run the failed jobs of {link(run.html_url, label)}."


async def reply_to_button(
    ctx: CommandContext, respond: AsyncRespond, function: Any, **kwargs: Any
) -> None:
    """Run a button's work in a transaction and reply to the presser ephemerally."""
    try:
        text = await ctx.write(
            function,
            settings=ctx.settings,
            team_id=ctx.team_id,
            channel_id=ctx.channel_id,
            user_id=ctx.user_id,
            **kwargs,
        )
        message = render_note(f":information_source: {text}")
    except ArgumentError as exc:
        message = render_error(str(exc))
    except Refusal as refusal:
        message = render_notice(str(refusal))
    except Exception:  # Broad on purpose: the presser still gets a reply, and the error is logged
        logger.exception("alert button failed", extra=ctx.log_extra())
        message = render_error(FAILED_REPLY)
    try:
        await respond(response_type="ephemeral", replace_original=False, **message.as_kwargs())
    except Exception:  # Broad on purpose: the work is done, and a failed reply is only logged
        logger.exception("slack response_url post failed", extra=ctx.log_extra())


def register_actions(host: ButtonHost) -> None:
    """Register the handlers of the alert message buttons on the bolt app."""
    bolt = host.bolt

    def context_of(body: dict[str, Any], client: AsyncWebClient) -> CommandContext:
        return host.context(
            team_id=str((body.get("team") or {}).get("id", "")),
            channel_id=str((body.get("channel") or {}).get("id", "")),
            user_id=str((body.get("user") or {}).get("id", "")),
            text="",
            client=client,
        )

    @bolt.action(re.compile(f"^({SILENCE_HOUR_ACTION}|{SILENCE_DAY_ACTION})$"))
    async def on_silence(
        ack: Any,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        await ack()
        value = str(action.get("value") or "")
        if not value.isdigit():
            return
        hours = BUTTON_HOURS[str(action.get("action_id"))]
        host.spawn(
            reply_to_button(
                context_of(body, client),
                respond,
                silence_incident,
                incident_id=int(value),
                hours=hours,
            )
        )

    @bolt.action(RERUN_ACTION)
    async def on_rerun(
        ack: Any,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        await ack()
        value = str(action.get("value") or "")
        if not value.isdigit():
            return
        host.spawn(
            reply_to_button(context_of(body, client), respond, request_rerun, failure_id=int(value))
        )

    @bolt.action(OPEN_RUN_ACTION)
    async def on_open_run(ack: Any) -> None:
        # A link button opens its URL in the browser; Slack still sends the press, which needs an acknowledgement.
        await ack()
