"""Subscriptions and workspace links: channel references, lower-case repositories, duplicates,
and who may see which repository."""

from __future__ import annotations

from sqlalchemy import select

from storage.models_slack import SlackLink, SlackSubscription
from tests.slack import payloads
from tests.slack.conftest import USER_ID, SlackDriver, all_text


def stored_subscriptions(slack: SlackDriver) -> list[tuple[str, str]]:
    with slack.bot.session() as session:
        rows = session.scalars(select(SlackSubscription).order_by(SlackSubscription.id)).all()
        return [(row.repo, row.channel_id) for row in rows]


def test_subscribe_channel_references(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget", "gadget", "gizmo")

    first = slack.ask("subscribe Octo-Org/Widget <#C0ALERTS01|ci-alerts>", channel_id="C0OTHER001")
    second = slack.ask("subscribe octo-org/gadget <#C0ALERTS01|>", channel_id="C0OTHER001")
    third = slack.ask("subscribe octo-org/gizmo", channel_id="C0OTHER001")
    fourth = slack.ask("subscribe octo-org/widget #ci-alerts", channel_id="C0OTHER001")

    assert stored_subscriptions(slack) == [
        ("octo-org/widget", "C0ALERTS01"),
        ("octo-org/gadget", "C0ALERTS01"),
        ("octo-org/gizmo", "C0OTHER001"),
    ]
    assert "Subscribed <#C0ALERTS01> to *octo-org/widget*" in all_text(first)
    assert first["response_type"] == "ephemeral"
    assert "Subscribed <#C0ALERTS01> to *octo-org/gadget*" in all_text(second)
    assert "Subscribed <#C0OTHER001> to *octo-org/gizmo*" in all_text(third)
    assert "<#C0ALERTS01> is already subscribed to *octo-org/widget*" in all_text(fourth)
    assert len(slack.fake.calls_of("conversations.list")) == 1


def test_stored_channels_are_bare_ids(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget", "gadget")
    slack.ask("subscribe octo-org/widget <#C0ALERTS01|ci-alerts>")
    slack.ask("subscribe octo-org/gadget #random")
    for _, channel in stored_subscriptions(slack):
        assert "<" not in channel
        assert "#" not in channel
        assert "|" not in channel


def test_subscribe_links_workspace_with_author(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    answer = slack.ask("subscribe octo-org/widget")
    with slack.bot.session() as session:
        links = session.scalars(select(SlackLink)).all()
    assert [(link.team_id, link.installation_id, link.created_by) for link in links] == [
        ("T0TEAM0001", payloads.INSTALLATION_ID, USER_ID)
    ]
    assert "can now see the repositories" in all_text(answer)


def test_subscribe_short_name_after_link(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget", "gadget")
    slack.ask("subscribe octo-org/widget")
    answer = slack.ask("subscribe gadget #ci-alerts")
    assert "Subscribed <#C0ALERTS01> to *octo-org/gadget*" in all_text(answer)


def test_subscribe_events_and_filters(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    answer = slack.ask(
        'subscribe octo-org/widget --events publishes,failures --branch main --workflow "Release & ship"'
    )
    with slack.bot.session() as session:
        row = session.scalars(select(SlackSubscription)).one()
    assert (row.events, row.branch, row.workflow) == (
        "failures,publishes",
        "main",
        "Release & ship",
    )
    assert "workflow Release &amp; ship" in all_text(answer)


def test_subscribe_changed_events_updates(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    slack.ask("subscribe octo-org/widget --events failures")
    answer = slack.ask("subscribe octo-org/widget --events deployments")
    assert "Updated the subscription" in all_text(answer)
    assert len(stored_subscriptions(slack)) == 1


def test_subscribe_bad_events_named(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    text = all_text(slack.ask("subscribe octo-org/widget --events failures,releases"))
    assert "invalid --events 'failures,releases'" in text
    assert "failures, publishes, deployments, all" in text
    assert stored_subscriptions(slack) == []


def test_subscribe_unknown_channel_name(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    text = all_text(slack.ask("subscribe octo-org/widget #nowhere"))
    assert "no channel named #nowhere is visible to release-bot" in text
    assert stored_subscriptions(slack) == []


def test_subscribe_unknown_repository_refused(slack: SlackDriver) -> None:
    text = all_text(slack.ask("subscribe octo-org/unknown"))
    assert "release-bot has no record of octo-org/unknown" in text
    assert stored_subscriptions(slack) == []


def test_subscribe_missing_repository(slack: SlackDriver) -> None:
    text = all_text(slack.ask("subscribe #ci-alerts"))
    assert "missing repository: give it as OWNER/NAME" in text


def test_unsubscribe_removes(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    slack.ask("subscribe octo-org/widget")
    answer = slack.ask("unsubscribe octo-org/widget")
    assert "Removed 1 subscription of <#C0ALERTS01> to *octo-org/widget*" in all_text(answer)
    assert stored_subscriptions(slack) == []
    again = slack.ask("unsubscribe octo-org/widget")
    assert "is not subscribed" in all_text(again)


def test_subscriptions_lists_channel_and_workspace(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget", "gadget")
    slack.ask("subscribe octo-org/widget")
    slack.ask("subscribe octo-org/gadget #random")
    here = all_text(slack.ask("subscriptions"))
    everywhere = all_text(slack.ask("subscriptions all"))
    assert "Subscriptions in this channel (1)" in here
    assert "octo-org/gadget" not in here
    assert "Subscriptions in this workspace (2)" in everywhere
    assert "<#C0OTHER001> · *octo-org/gadget*" in everywhere


def test_unlinked_repository_refused(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    text = all_text(slack.ask("status octo-org/widget"))
    assert "octo-org/widget is not linked to this Slack workspace" in text
    assert "`/release subscribe octo-org/widget`" in text
    assert "T0TEAM0001=424242" in text


def test_other_workspace_cannot_claim_installation(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    slack.ask("subscribe octo-org/widget")
    text = all_text(slack.ask("subscribe octo-org/widget", team_id="T0TEAM0009"))
    assert "already linked to another Slack workspace" in text
    assert "T0TEAM0009=424242" in text
    refused = all_text(slack.ask("status octo-org/widget", team_id="T0TEAM0009"))
    assert "not linked to this Slack workspace" in refused


def test_deleted_installation_notice(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    slack.ask("subscribe octo-org/widget")
    slack.bot.send("installation", payloads.installation_deleted())
    answer = slack.ask("status octo-org/widget")
    text = all_text(answer)
    assert "The GitHub App is no longer installed for octo-org" in text
    assert len(answer["blocks"]) == 1
