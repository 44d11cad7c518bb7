"""Slack messages of failure alerts: the incident's root message (open, then resolved) and the
replies in its thread, built through bot.render.slack so every piece of GitHub text is escaped
and every message fits Block Kit's limits.

Views hold raw text as GitHub sent it; only this module turns it into mrkdwn. The bot's own
constructs (links, `<@U…>` mentions of mapped users) are the only `<…>` sequences produced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.render.slack import (
    MAX_BUTTON_TEXT,
    USER_ID,
    BlockBuilder,
    SlackMessage,
    clean_url,
    count_of,
    escape,
    format_duration,
    format_time,
    inline,
    link,
    plain_text,
    url_segment,
)

GITHUB = "https://github.com"
RERUN_ACTION = "alert_rerun"
SILENCE_HOUR_ACTION = "alert_silence_1h"
SILENCE_DAY_ACTION = "alert_silence_1d"
OPEN_RUN_ACTION = "alert_open_run"
SEVERITY_ICONS = {"critical": ":rotating_light:", "error": ":x:"}
# Section blocks for the failing job list; the rest of a root message needs about eight.
JOB_LIST_BLOCKS = 20
SHORT_SHA = 7
# Statuses a stuck run's jobs show in place of a conclusion.
UNFINISHED_JOB_STATUSES = frozenset({"queued", "in_progress", "waiting", "pending", "requested"})


@dataclass
class StepLine:
    """A failed step of a job."""

    name: str
    conclusion: str | None
    duration_s: float | None


@dataclass
class JobLine:
    """A failed job of the failing attempt, with its failed steps."""

    name: str
    conclusion: str | None
    duration_s: float | None
    html_url: str | None
    steps: list[StepLine] = field(default_factory=list)


@dataclass
class FailureView:
    """The data one failure's messages show; text is raw, as GitHub sent it."""

    failure_id: int
    kind: str
    repo: str
    workflow: str
    branch: str
    conclusion: str
    severity: str
    occurred_at: datetime
    is_tag: bool = False
    run_id: int | None = None
    run_number: int | None = None
    attempt: int | None = None
    run_url: str | None = None
    duration_s: float | None = None
    title: str | None = None
    head_sha: str | None = None
    actor: str | None = None
    mention: str | None = None
    environment: str | None = None
    description: str | None = None
    log_url: str | None = None
    cc: list[str] = field(default_factory=list)
    jobs: list[JobLine] = field(default_factory=list)


@dataclass
class IncidentView:
    """The incident a root message stands for."""

    incident_id: int
    status: str
    failure_count: int
    opened_at: datetime
    resolved_at: datetime | None = None
    recovery_s: float | None = None
    resolved_run_url: str | None = None
    resolved_label: str | None = None


def run_label(view: FailureView) -> str:
    """Return `CI #100` (raw text), or the run id when the run number is unknown."""
    if view.kind == "deployment":
        return f"deployment to {view.environment or 'an environment'}"
    return (
        f"{view.workflow} #{view.run_number}"
        if view.run_number
        else f"{view.workflow} {view.run_id}"
    )


def run_link(view: FailureView) -> str:
    """Link the failing run (or a deployment's log) with an escaped label."""
    return link(view.run_url or view.log_url, run_label(view))


def ref_link(view: FailureView) -> str:
    """Link the branch or tag; its name is percent-encoded in the URL and escaped in the label."""
    if not view.branch:
        return "-"
    return link(f"{GITHUB}/{url_segment(view.repo)}/tree/{url_segment(view.branch)}", view.branch)


def mention_or_login(user_id: str | None, login: str | None) -> str:
    """Mention a mapped Slack user, or show the GitHub login as text."""
    if user_id and USER_ID.match(user_id):
        return f"<@{user_id}> ({inline(login)})" if login else f"<@{user_id}>"
    return inline(login) if login else "-"


def commit_text(view: FailureView) -> str:
    """Show the short commit SHA and the commit title."""
    sha = f"`{escape(view.head_sha[:SHORT_SHA])}`" if view.head_sha else ""
    title = inline(view.title) if view.title else ""
    return " ".join(part for part in (sha, title) if part) or "-"


def subject(view: FailureView) -> str:
    """Return what failed and where as plain text, which is not escaped because Slack does not parse headers."""
    if view.kind == "deployment":
        return f"Deployment to {view.environment or 'an environment'} failed in {view.repo}"
    if view.kind == "stuck":
        return f"{view.workflow} is stuck in {view.repo}"
    return f"{view.workflow} failed in {view.repo}"


def fallback(view: FailureView, prefix: str = "") -> str:
    """Return the notification text: escaped mrkdwn naming the workflow, repository and ref."""
    what = "Deployment" if view.kind == "deployment" else inline(view.workflow)
    ref = f" on {inline(view.branch)}" if view.branch else ""
    return f"{prefix}{what} {escape(view.conclusion.replace('_', ' '))} in {inline(view.repo)}{ref}"


def detail_fields(view: FailureView) -> list[str]:
    """Return the two-column facts of a failure."""
    attempt = f" · attempt {view.attempt}" if view.attempt and view.attempt > 1 else ""
    items = [
        f"*Repository*\n{link(f'{GITHUB}/{url_segment(view.repo)}', view.repo)}",
        f"*{'Deployment' if view.kind == 'deployment' else 'Workflow'}*\n{run_link(view)}{attempt}",
        f"*{'Tag' if view.is_tag else 'Branch'}*\n{ref_link(view)}",
    ]
    if view.is_tag:
        items.append(f"*Version*\n`{escape(view.branch)}`")
    items += [
        f"*Commit*\n{commit_text(view)}",
        f"*Triggered by*\n{mention_or_login(view.mention, view.actor)}",
        f"*Severity*\n{escape(view.severity)}",
        f"*Conclusion*\n{escape(view.conclusion.replace('_', ' '))} · {format_duration(view.duration_s)}",
    ]
    if view.description:
        items.append(f"*Description*\n{inline(view.description)}")
    return items


def job_lines(jobs: Sequence[JobLine]) -> list[str]:
    """Return one line per failed job, with its failed steps below it."""
    lines = []
    for job in jobs:
        outcome = escape((job.conclusion or "failure").replace("_", " "))
        icon = ":hourglass_flowing_sand:" if job.conclusion in UNFINISHED_JOB_STATUSES else ":x:"
        line = (
            f"{icon} {link(job.html_url, job.name)} · {outcome} · {format_duration(job.duration_s)}"
        )
        for step in job.steps:
            line += f"\n      ↳ {inline(step.name)} · {format_duration(step.duration_s)}"
        lines.append(line)
    return lines


def add_jobs(builder: BlockBuilder, view: FailureView) -> None:
    """Add the failing jobs, or a link to the run when none are stored yet."""
    if view.kind == "deployment":
        if view.log_url:
            builder.section(f"Deployment log: {link(view.log_url, 'open the log')}")
        return
    stuck = view.kind == "stuck"
    if not view.jobs:
        missing = (
            "No job of the run has started yet" if stuck else "The failing jobs are not known yet"
        )
        builder.section(f"{missing}; {link(view.run_url, 'open the run')} for its logs.")
        return
    builder.lines(
        job_lines(view.jobs),
        max_blocks=JOB_LIST_BLOCKS,
        more=lambda count: f"and {count} more {'unfinished' if stuck else 'failed'} jobs",
    )


def url_button(text: str, url: str | None, action_id: str) -> dict[str, Any] | None:
    """Build a link button; Slack still sends its press to the app, which only acknowledges it."""
    cleaned = clean_url(url)
    if cleaned is None:
        return None
    return {
        "type": "button",
        "text": plain_text(text, MAX_BUTTON_TEXT),
        "action_id": action_id,
        "url": cleaned,
    }


def action_button(
    text: str, action_id: str, value: str, style: str | None = None
) -> dict[str, Any]:
    """Build a button whose press the app handles; `value` carries an id."""
    element: dict[str, Any] = {
        "type": "button",
        "text": plain_text(text, MAX_BUTTON_TEXT),
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    return element


def render_root(view: FailureView, incident: IncidentView) -> SlackMessage:
    """Build the incident's root message: open with buttons, or resolved with the time to recover."""
    builder = BlockBuilder()
    resolved = incident.status == "resolved"
    if resolved:
        builder.header(f":white_check_mark: Resolved: {subject(view)}")
        by = link(incident.resolved_run_url, incident.resolved_label or "a later run")
        builder.section(
            f"Recovered {format_time(incident.resolved_at)} by {by} after "
            f"{format_duration(incident.recovery_s)} (time to recover) · "
            f"{count_of(incident.failure_count, 'failure')}"
        )
    else:
        builder.header(f"{SEVERITY_ICONS.get(view.severity, ':x:')} {subject(view)}")
    builder.fields(detail_fields(view))
    if not resolved:
        add_jobs(builder, view)
    context = [f"Incident {incident.incident_id} · first failure {format_time(incident.opened_at)}"]
    if view.cc and not resolved:
        context.append("cc " + " ".join(view.cc))
    builder.context(context)

    buttons: list[dict[str, Any] | None] = []
    if not resolved:
        if view.kind == "workflow_run" and view.run_id is not None:
            buttons.append(
                action_button(
                    "Re-run failed jobs", RERUN_ACTION, str(view.failure_id), style="primary"
                )
            )
        buttons.append(action_button("Silence 1 h", SILENCE_HOUR_ACTION, str(incident.incident_id)))
        buttons.append(
            action_button("Silence 1 day", SILENCE_DAY_ACTION, str(incident.incident_id))
        )
    buttons.append(
        url_button(
            "Open log" if view.kind == "deployment" else "Open run",
            view.run_url or view.log_url,
            OPEN_RUN_ACTION,
        )
    )
    builder.actions(buttons)
    prefix = "Resolved: " if resolved else ""
    return builder.build(fallback(view, prefix))


def render_failed_again(view: FailureView, failure_number: int) -> SlackMessage:
    """Build the thread reply for a later failure of an open incident."""
    builder = BlockBuilder()
    attempt = f" (attempt {view.attempt})" if view.attempt and view.attempt > 1 else ""
    again = ":hourglass_flowing_sand: Also stuck" if view.kind == "stuck" else ":x: Failed again"
    builder.section(
        f"{again}: {run_link(view)}{attempt} · {ref_link(view)} · {commit_text(view)} · "
        f"triggered by {mention_or_login(view.mention, view.actor)} · "
        f"failure {failure_number} of this incident"
    )
    add_jobs(builder, view)
    return builder.build(fallback(view, "Failed again: "))


def render_resolved_reply(view: FailureView, incident: IncidentView) -> SlackMessage:
    """Build the thread reply that announces the recovery."""
    by = link(incident.resolved_run_url, incident.resolved_label or "a later run")
    text = (
        f":white_check_mark: Resolved: {by} passed {format_time(incident.resolved_at)}, "
        f"{format_duration(incident.recovery_s)} after the first failure."
    )
    if view.kind == "stuck":
        text = (
            f":white_check_mark: Resolved: the stuck runs finished by {format_time(incident.resolved_at)}, "
            f"{format_duration(incident.recovery_s)} after the alert."
        )
    builder = BlockBuilder()
    builder.section(text)
    return builder.build(f"Resolved: {inline(view.workflow or view.repo)} in {inline(view.repo)}")


def render_flaky_reply(
    view: FailureView, passed_label: str, passed_url: str | None
) -> SlackMessage:
    """Build the thread reply that marks a failure flaky: the same commit passed later.

    `passed_label` names what passed (raw text): `attempt 2` of the same run, or another run.
    """
    passed = link(passed_url, passed_label)
    sha = f"`{escape((view.head_sha or '')[:SHORT_SHA])}`"
    text = (
        f":game_die: Marked flaky: {run_link(view)} attempt {view.attempt or 1} failed, "
        f"and {passed} passed on the same commit {sha}."
    )
    builder = BlockBuilder()
    builder.section(text)
    return builder.build(f"Marked flaky: {inline(run_label(view))}")


def render_reminder(view: FailureView, incident: IncidentView, now: datetime) -> SlackMessage:
    """Build the reminder that an incident is still failing."""
    elapsed = max(0.0, (now - incident.opened_at).total_seconds())
    still = "Still stuck" if view.kind == "stuck" else "Still failing"
    text = (
        f":alarm_clock: {still} after {format_duration(elapsed)}: "
        f"{count_of(incident.failure_count, 'failure')} since {format_time(incident.opened_at)}, "
        f"the last {run_link(view)} at {format_time(view.occurred_at)}."
    )
    builder = BlockBuilder()
    builder.section(text)
    return builder.build(f"{still}: {inline(view.workflow or view.repo)} in {inline(view.repo)}")


def render_note(text: str) -> SlackMessage:
    """Build a one-line thread reply from already escaped mrkdwn."""
    builder = BlockBuilder()
    builder.section(text)
    return builder.build(text)


def render_silenced_note(
    user_id: str, duration: str, until: datetime | None, silence_id: int | None
) -> SlackMessage:
    """Build the thread reply saying who silenced the incident's alerts, and until when."""
    who = f"<@{user_id}>" if USER_ID.match(user_id) else "Someone"
    end = (
        f" (silence {silence_id}; `/release unsilence {silence_id}` ends it early)"
        if silence_id
        else ""
    )
    return render_note(
        f":mute: {who} silenced these alerts for {escape(duration)}, until {format_time(until)}{end}."
    )


def render_rerun_note(user_id: str, view: FailureView) -> SlackMessage:
    """Build the thread reply saying who re-ran the failed jobs."""
    who = f"<@{user_id}>" if USER_ID.match(user_id) else "Someone"
    return render_note(f":repeat: {who} re-ran the failed jobs of {run_link(view)}.")
