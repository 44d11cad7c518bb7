"""Who sees what: a Slack workspace sees only the repositories of GitHub installations linked to it.

A link is made by the first `/release subscribe` of one of the installation's repositories
in the workspace (the link records who made it), or by the SLACK_TEAM_INSTALLATIONS setting.
An installation already linked to another workspace is not linked again by `subscribe`,
because any member of any workspace could otherwise read its runs; the bot's admin links it
through the setting instead.
"""

from __future__ import annotations

from sqlmodel import Session

from bot.config import Settings
from bot.errors import BotError
from handlers.slack.arguments import (
    ArgumentError,
    is_repository_word,
    is_short_name,
    parse_repository,
)
from storage import slack as slack_store
from storage.models import Installation, Repository


class Refusal(BotError):
    """A command this workspace may not run, or one the bot has no data for. The message says why and what to do.

    `summary` is a few words for lists, such as "not linked to this workspace".
    """

    def __init__(self, message: str, *, summary: str) -> None:
        super().__init__(message)
        self.summary = summary


def visible_installations(session: Session, settings: Settings, team_id: str) -> set[int]:
    """Return the installations a workspace may see: linked ones and configured ones."""
    linked = slack_store.linked_installation_ids(session=session, team_id=team_id)
    return linked | set(settings.slack_team_installations.get(team_id, frozenset()))


def visible_repositories(session: Session, settings: Settings, team_id: str) -> list[str]:
    """Return the names of the repositories a workspace may see."""
    installations = visible_installations(session, settings, team_id)
    return [
        repo.full_name
        for repo in slack_store.list_repositories(session=session, installation_ids=installations)
    ]


def resolve_repository(
    session: Session, settings: Settings, team_id: str, word: str, *, usage: str
) -> str:
    """Return the OWNER/NAME a word names: itself, or the one visible repository with that name."""
    if is_repository_word(word):
        return parse_repository(word, usage=usage)
    if not is_short_name(word):
        raise ArgumentError(
            f"invalid repository {word!r}: use OWNER/NAME, such as octo-org/widget", usage=usage
        )

    name = word.lower()
    matches = [
        repo
        for repo in visible_repositories(session, settings, team_id)
        if repo.split("/", 1)[1] == name
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ArgumentError(
            f"no repository named {word!r} is linked to this workspace: give it as OWNER/NAME",
            usage=usage,
        )
    raise ArgumentError(
        f"{word!r} matches several repositories ({', '.join(matches)}): give it as OWNER/NAME",
        usage=usage,
    )


def account_of(repository: Repository, installation: Installation | None) -> str:
    """Return the GitHub account an installation belongs to, from the repository owner if unknown."""
    if installation is not None and installation.account_login:
        return installation.account_login
    return repository.full_name.split("/", 1)[0]


def load_repository(session: Session, repo: str) -> tuple[Repository, Installation | None]:
    """Return a stored repository and its installation, or raise Refusal if the bot never saw it."""
    repository = slack_store.find_repository(session=session, full_name=repo)
    if repository is None:
        raise Refusal(
            f"release-bot has no record of {repo}. Check the name, and that the GitHub App is installed "
            "on the repository.",
            summary="unknown to release-bot",
        )
    installation = None
    if repository.installation_id is not None:
        installation = slack_store.get_installation(
            session=session, installation_id=repository.installation_id
        )
    return repository, installation


def check_installed(repository: Repository, installation: Installation | None) -> None:
    """Raise Refusal if the GitHub App was uninstalled or suspended, or the repository removed from it."""
    account = account_of(repository, installation)
    if installation is not None and installation.status == "deleted":
        raise Refusal(
            f"The GitHub App is no longer installed for {account}, so release-bot gets no new data for "
            f"{repository.full_name}. Install the App on {account} again to follow it.",
            summary=f"the GitHub App is no longer installed for {account}",
        )
    if installation is not None and installation.status == "suspended":
        raise Refusal(
            f"The GitHub App installation for {account} is suspended, so release-bot gets no new data for "
            f"{repository.full_name}. Unsuspend it in {account}'s GitHub settings.",
            summary=f"the GitHub App installation for {account} is suspended",
        )
    if repository.removed:
        raise Refusal(
            f"{repository.full_name} was removed from the GitHub App installation of {account}. "
            "Add it back in the installation's settings to follow it.",
            summary="removed from the GitHub App installation",
        )


def check_access(session: Session, settings: Settings, team_id: str, repo: str) -> Repository:
    """Return the repository if the workspace may see it, else raise Refusal saying how to link it."""
    repository, installation = load_repository(session, repo)
    if repository.installation_id not in visible_installations(session, settings, team_id):
        target = (
            repository.installation_id
            if repository.installation_id is not None
            else "INSTALLATION_ID"
        )
        raise Refusal(
            f"{repo} is not linked to this Slack workspace. Link it by running `/release subscribe {repo}` "
            f"in a channel, or ask the bot's admin to add {team_id}={target} to SLACK_TEAM_INSTALLATIONS.",
            summary="not linked to this workspace",
        )
    check_installed(repository, installation)
    return repository


def link_for_subscription(
    session: Session, settings: Settings, team_id: str, user_id: str, repo: str
) -> tuple[Repository, bool]:
    """Make sure the workspace may see the repository, linking its installation if no other
    workspace has. Return the repository and whether a link was made now."""
    repository, installation = load_repository(session, repo)
    check_installed(repository, installation)
    installation_id = repository.installation_id
    if installation_id is None:
        raise Refusal(
            f"release-bot does not know which GitHub App installation covers {repo} yet. It learns this "
            "from the App's next webhook for the repository; try again after the next workflow run.",
            summary="installation not known yet",
        )
    if installation_id in visible_installations(session, settings, team_id):
        return repository, False

    others = slack_store.teams_linked_to(session=session, installation_id=installation_id) - {
        team_id
    }
    if others:
        account = account_of(repository, installation)
        raise Refusal(
            f"The GitHub App installation of {account} is already linked to another Slack workspace. "
            f"The bot's admin can link this workspace too by adding {team_id}={installation_id} to "
            "SLACK_TEAM_INSTALLATIONS.",
            summary="linked to another workspace",
        )
    slack_store.link_workspace(
        session=session, team_id=team_id, installation_id=installation_id, created_by=user_id
    )
    return repository, True
