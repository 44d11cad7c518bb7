"""Which failures alert, how severe they are, and which Slack channels hear about them.

A failure alerts when it is a publish, release or deploy workflow, a failed deployment, or
any workflow that a subscription (events `failures`) or a routing rule names. The
channels are the subscriptions of the repository, the routing rules that match it, and the
`alerts.slack_channel` of the repository's `.github/release-bot.yml` for release failures.
Paused subscriptions and rules are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.config import Settings
from bot.repo_config import effective_config
from handlers.github.context import classify_stage
from storage import alert_rules, slack_queries
from storage import slack as slack_store
from storage.models_alerts import AlertRoute

FAILING_CONCLUSIONS = frozenset({"failure", "timed_out", "startup_failure"})
CANCELLED = "cancelled"
RELEASE_STAGES = frozenset({"publish", "deploy"})
SEVERITY_RANK = {"error": 1, "critical": 2}
SEVERITIES = tuple(SEVERITY_RANK)
# A version tag such as v1.2.0 or 2024.06.1-rc1, as the live status message recognises them.
VERSION_TAG = re.compile(r"^v?\d+(\.\d+)+([-+][0-9A-Za-z.-]+)?$")


@dataclass
class Facts:
    """The facts of one completed run attempt or deployment status that alerting uses. Text is raw."""

    kind: str
    source_key: str
    repo: str
    workflow: str
    branch: str
    conclusion: str
    occurred_at: datetime
    installation_id: int | None = None
    started_at: datetime | None = None
    head_sha: str | None = None
    run_id: int | None = None
    attempt: int | None = None
    deployment_id: int | None = None
    environment: str | None = None
    actor: str | None = None
    author_email: str | None = None
    stage: str | None = None
    is_tag: bool = False
    is_release: bool = False
    severity: str = "error"
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Destination:
    """A Slack channel that hears about a failure, and the subscription or rule that sent it there."""

    team_id: str
    channel_id: str
    subscription_id: int | None = None
    route_id: int | None = None


def is_slack_configured(settings: Settings) -> bool:
    """Tell whether the bot can post to Slack at all."""
    return settings.has_slack or settings.has_slack_oauth


def is_tag_ref(session: Session, repo: str, ref: str) -> bool:
    """Tell whether a ref names a tag: a version-like name, or a tag the bot saw pushed."""
    if not ref:
        return False
    if VERSION_TAG.match(ref):
        return True
    tag = slack_queries.get_tag(session=session, repo=repo, name=ref)
    return tag is not None and not tag.deleted


def stage_of_workflow(session: Session, settings: Settings, repo: str, workflow: str) -> str | None:
    """Return a workflow's stage: from the repository's configuration file, else the settings' patterns."""
    config = effective_config(session=session, repo=repo).config
    return config.stage_of_job(workflow, None) or classify_stage(settings, workflow)


def classify(
    session: Session, settings: Settings, facts: Facts, *, event: str | None = None
) -> None:
    """Fill in a failure's stage, whether it is a release, and its severity from the stage.

    Publish and deploy failures on the default branch or a tag are critical; every other
    failure is an error. Routing rules may override the severity (see `route`).
    """
    if facts.kind == "deployment":
        facts.stage = "deploy"
    else:
        facts.stage = stage_of_workflow(session, settings, facts.repo, facts.workflow)
    facts.is_tag = is_tag_ref(session, facts.repo, facts.branch)
    facts.is_release = facts.stage in RELEASE_STAGES or event == "release" or facts.is_tag
    repository = slack_store.find_repository(session=session, full_name=facts.repo)
    on_default = bool(
        repository and repository.default_branch and facts.branch == repository.default_branch
    )
    facts.severity = "critical" if facts.is_release and (on_default or facts.is_tag) else "error"


def route_matches(route: AlertRoute, facts: Facts) -> bool:
    """Tell whether a rule's include and exclude globs match a failure's repository, workflow and branch."""
    checks = (
        (facts.repo, route.repos, route.exclude_repos),
        (facts.workflow, route.workflows, route.exclude_workflows),
        (facts.branch, route.branches, route.exclude_branches),
    )
    for value, include, exclude in checks:
        included = alert_rules.split_globs(include)
        if included and not alert_rules.matches_any_glob(value, included):
            return False
        if alert_rules.matches_any_glob(value, alert_rules.split_globs(exclude)):
            return False
    return True


def route_accepts(route: AlertRoute, facts: Facts) -> bool:
    """Tell whether a rule sends a failure to its channel."""
    if route.paused_reason is not None or not route_matches(route, facts):
        return False
    if not route.workflows.strip() and not facts.is_release:
        return False
    if facts.conclusion == CANCELLED and not route.include_cancelled:
        return False
    return SEVERITY_RANK.get(facts.severity, 1) >= SEVERITY_RANK.get(route.min_severity, 1)


def visible_installations(session: Session, settings: Settings, team_id: str) -> set[int]:
    """Return the installations a workspace may see: linked ones and configured ones."""
    linked = slack_store.linked_installation_ids(session=session, team_id=team_id)
    return linked | set(settings.slack_team_installations.get(team_id, frozenset()))


def teams_for_installation(
    session: Session, settings: Settings, installation_id: int | None
) -> set[str]:
    """Return the workspaces that may see an installation's repositories."""
    if installation_id is None:
        return set()
    teams = slack_store.teams_linked_to(session=session, installation_id=installation_id)
    configured = {
        team for team, ids in settings.slack_team_installations.items() if installation_id in ids
    }
    return teams | configured


def subscription_destinations(
    session: Session, settings: Settings, facts: Facts
) -> list[Destination]:
    """Return the channels whose subscriptions ask for this failure."""
    groups = {"failures", "deployments"} if facts.kind == "deployment" else {"failures"}
    subscriptions = [
        subscription
        for subscription in slack_store.subscriptions_for_repo(session=session, repo=facts.repo)
        if subscription.event_set & groups
        and (not subscription.branch or alert_rules.matches_glob(facts.branch, subscription.branch))
        and (
            not subscription.workflow
            or alert_rules.matches_glob(facts.workflow, subscription.workflow)
        )
        and facts.installation_id is not None
        and facts.installation_id in visible_installations(session, settings, subscription.team_id)
    ]
    paused = alert_rules.paused_subscriptions(
        session=session, subscription_ids=[subscription.id or 0 for subscription in subscriptions]
    )
    return [
        Destination(subscription.team_id, subscription.channel_id, subscription_id=subscription.id)
        for subscription in subscriptions
        if subscription.id not in paused
    ]


def config_destinations(session: Session, settings: Settings, facts: Facts) -> list[Destination]:
    """Return the repository file's `alerts.slack_channel` in each workspace that may see the repository."""
    routing = effective_config(session=session, repo=facts.repo).config.alerts
    if routing.slack_channel is None or "failure" not in routing.notify_on:
        return []
    teams = teams_for_installation(session, settings, facts.installation_id)
    return [Destination(team, routing.slack_channel) for team in sorted(teams)]


def route(session: Session, settings: Settings, facts: Facts) -> list[Destination]:
    """Return the channels that hear about a failure, once each; apply a rule's severity override first."""
    routes = alert_rules.list_routes(session=session)
    for rule in routes:
        if rule.severity in SEVERITY_RANK and route_matches(rule, facts):
            facts.severity = rule.severity
            break
    if not is_slack_configured(settings):
        return []

    found: list[Destination] = []
    if facts.conclusion != CANCELLED:
        found += subscription_destinations(session, settings, facts)
    found += [
        Destination(rule.team_id, rule.channel_id, route_id=rule.id)
        for rule in routes
        if route_accepts(rule, facts)
    ]
    if facts.conclusion != CANCELLED and facts.is_release:
        found += config_destinations(session, settings, facts)

    unique: dict[tuple[str, str], Destination] = {}
    for destination in found:
        unique.setdefault((destination.team_id, destination.channel_id), destination)
    return list(unique.values())


def mentions_of(session: Session, repo: str) -> list[str]:
    """Return the `alerts.mentions` of the repository's configuration file, as written there."""
    return list(effective_config(session=session, repo=repo).config.alerts.mentions)
