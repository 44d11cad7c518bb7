"""The GitHub App's REST client: githubkit with App authentication, one client per installation.

githubkit's AppInstallationAuthStrategy signs an App JWT, exchanges it for an installation
token and caches the token until one minute before its `expires_at` (githubkit 0.16.1,
`githubkit/auth/app.py`). Nothing here sleeps or retries: failures are raised as
GitHubCallError subclasses, and the outbox senders turn them into a later retry or a final
failure. The rate-limit headers of every response are kept, so that calls stop while an
installation's budget is nearly spent.

githubkit is imported by the methods that call GitHub, so that a process without GitHub App
credentials never loads it. githubkit 0.16.1 and the packages it imports (httpx, PyJWT,
cryptography) add about 16 MB to the RSS of a Python 3.11 process.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bot.config import Settings
from bot.errors import BotError

if TYPE_CHECKING:
    import httpx
    from githubkit import AppInstallationAuthStrategy, GitHub, Response
    from githubkit.exception import GitHubException

logger = logging.getLogger(__name__)

USER_AGENT = "release-bot"
TIMEOUT_SECONDS = 30.0
# Stop calling as an installation while fewer requests than this share of its hourly
# budget remain (at least MIN_RESERVED_REQUESTS), until GitHub's reset time.
RESERVED_BUDGET_FRACTION = 0.02
MIN_RESERVED_REQUESTS = 10
# A pull request with more comments than this is searched for the bot's marker only this far.
MAX_COMMENT_PAGES = 10
PAGE_SIZE = 100

ResultT = TypeVar("ResultT")


class GitHubCallError(BotError):
    """A GitHub call failed; `operation` names the call in words people read."""

    def __init__(self, message: str, *, installation_id: int, operation: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.installation_id = installation_id
        self.operation = operation
        self.status_code = status_code


class InstallationUnavailable(GitHubCallError):
    """GitHub rejected an installation token request: the App was uninstalled or suspended (404, 403)."""


class AppCredentialsRejected(GitHubCallError):
    """GitHub rejected the App's JWT (401): GITHUB_APP_ID or the private key is wrong."""


class MissingPermission(GitHubCallError):
    """A 403 because the App lacks a permission; `accepted` lists the permission sets GitHub accepts."""

    def __init__(self, message: str, *, accepted: list[str], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.accepted = accepted


class RateLimited(GitHubCallError):
    """A rate limit was reached or nearly reached; call again after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float, secondary: bool, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.secondary = secondary


class GitHubUnavailable(GitHubCallError):
    """A temporary failure: a 5xx response, a time-out or a network error."""


class RequestRejected(GitHubCallError):
    """GitHub rejected the request with a 4xx that another attempt cannot fix."""


@dataclass
class RateBudget:
    """The rate-limit headers of an installation's latest response."""

    limit: int
    remaining: int
    reset_at: float


@dataclass
class RepoFile:
    """A file read through the contents API. When it could not be read, `text` is None and
    `problem` gives the reason."""

    path: str
    sha: str | None
    size: int
    text: str | None
    problem: str | None = None


def split_repo(repo: str) -> tuple[str, str]:
    """Split `owner/name` into its two parts."""
    owner, _, name = repo.partition("/")
    if not owner or not name:
        raise ValueError(f"expected a repository as owner/name, got {repo!r}")
    return owner, name


def parse_accepted_permissions(header: str | None) -> list[str]:
    """Split GitHub's `X-Accepted-GitHub-Permissions` header into its permission sets.

    GitHub separates alternative sets with `;` (such as `issues=write; pull_requests=write`),
    per the GitHub changelog of 2023-08-10.
    """
    if not header:
        return []
    return [part.strip() for part in header.split(";") if part.strip()]


def error_message(response: httpx.Response) -> str:
    """Return the `message` of a GitHub error body, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return str(body)[:200]


class GitHubApp:
    """Calls GitHub as the installations of one App; safe to share between threads."""

    def __init__(
        self,
        *,
        app_id: int,
        private_key: str,
        api_url: str = "https://api.github.com",
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from githubkit.cache import MemCacheStrategy

        self.app_id = app_id
        self._private_key = private_key
        self.api_url = api_url
        self._transport = transport
        # Seconds since the epoch; compared with GitHub's x-ratelimit-reset.
        self._clock = clock
        # One cache for all installations, which contains the App JWT and each installation token.
        self._token_cache = MemCacheStrategy()
        self._clients: dict[int, GitHub[AppInstallationAuthStrategy]] = {}
        self._budgets: dict[int, RateBudget] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> GitHubApp | None:
        """Build the client from GITHUB_APP_ID, the private key and GITHUB_API_URL; None if unset."""
        private_key = settings.github_private_key_pem()
        if settings.github_app_id is None or private_key is None:
            return None
        return cls(
            app_id=settings.github_app_id,
            private_key=private_key,
            api_url=settings.github_api_url,
            transport=transport,
            clock=clock,
        )

    def client(self, installation_id: int) -> GitHub[AppInstallationAuthStrategy]:
        """Return the githubkit client that acts as one installation."""
        from githubkit import AppInstallationAuthStrategy, GitHub

        with self._lock:
            github = self._clients.get(installation_id)
            if github is None:
                github = GitHub(
                    AppInstallationAuthStrategy(self.app_id, self._private_key, installation_id),
                    base_url=self.api_url,
                    user_agent=USER_AGENT,
                    timeout=TIMEOUT_SECONDS,
                    transport=self._transport,
                    cache_strategy=self._token_cache,
                    # Conditional-request caching and githubkit's own sleeping retries are off:
                    # the outbox decides when to try again.
                    http_cache=False,
                    auto_retry=False,
                )
                self._clients[installation_id] = github
            return github

    def budget(self, installation_id: int) -> RateBudget | None:
        """Return the rate-limit budget last reported for an installation."""
        return self._budgets.get(installation_id)

    def get_repo_installation_id(self, repo: str) -> int | None:
        """Return the id of the App's installation on a repository, as the App (JWT); None if not installed."""
        from githubkit import AppAuthStrategy, GitHub
        from githubkit.exception import GitHubException, RequestFailed

        owner, name = split_repo(repo)
        # This call is made as the App itself, so its errors carry installation id 0.
        github = GitHub(
            AppAuthStrategy(self.app_id, self._private_key),
            base_url=self.api_url,
            user_agent=USER_AGENT,
            timeout=TIMEOUT_SECONDS,
            transport=self._transport,
            cache_strategy=self._token_cache,
            http_cache=False,
            auto_retry=False,
        )
        try:
            response = github.rest.apps.get_repo_installation(owner, name)
        except RequestFailed as exc:
            status = exc.response.status_code
            if status == 404:
                return None
            if status == 401:
                raise AppCredentialsRejected(
                    f"GitHub rejected the App's JWT ({status}: {error_message(exc.response.raw_response)}); "
                    "check that GITHUB_APP_ID and GITHUB_PRIVATE_KEY belong to the same GitHub App",
                    installation_id=0,
                    operation="find the App's installation on a repository",
                    status_code=status,
                ) from exc
            raise self._translate(exc, 0, "find the App's installation on a repository") from exc
        except GitHubException as exc:
            raise self._translate(exc, 0, "find the App's installation on a repository") from exc
        installation_id = response.json().get("id")
        return installation_id if isinstance(installation_id, int) else None

    # --- the calls the bot makes -------------------------------------------------------------

    def list_issue_comments(self, installation_id: int, repo: str, number: int) -> list[dict[str, Any]]:
        """Return the comments of an issue or pull request, at most MAX_COMMENT_PAGES pages."""
        owner, name = split_repo(repo)
        comments: list[dict[str, Any]] = []
        for page in range(1, MAX_COMMENT_PAGES + 1):
            response = self.call(
                installation_id,
                "list pull request comments",
                lambda github, page=page: github.rest.issues.list_comments(
                    owner, name, number, per_page=PAGE_SIZE, page=page
                ),
            )
            batch = response.json()
            comments.extend(item for item in batch if isinstance(item, dict))
            if len(batch) < PAGE_SIZE:
                break
        return comments

    def create_issue_comment(self, installation_id: int, repo: str, number: int, body: str) -> dict[str, Any]:
        """Create a comment on an issue or pull request; return GitHub's comment object."""
        owner, name = split_repo(repo)
        response = self.call(
            installation_id,
            "create a pull request comment",
            lambda github: github.rest.issues.create_comment(owner, name, number, body=body),
        )
        return response.json()

    def update_issue_comment(self, installation_id: int, repo: str, comment_id: int, body: str) -> dict[str, Any] | None:
        """Replace a comment's body; return None if the comment no longer exists."""
        owner, name = split_repo(repo)
        try:
            response = self.call(
                installation_id,
                "update a pull request comment",
                lambda github: github.rest.issues.update_comment(owner, name, comment_id, body=body),
            )
        except RequestRejected as exc:
            if exc.status_code == 404:
                return None
            raise
        return response.json()

    def list_pulls_for_commit(self, installation_id: int, repo: str, sha: str) -> list[dict[str, Any]]:
        """Return the pull requests GitHub associates with a commit (open ones for an unmerged commit)."""
        owner, name = split_repo(repo)
        response = self.call(
            installation_id,
            "list pull requests of a commit",
            lambda github: github.rest.repos.list_pull_requests_associated_with_commit(
                owner, name, sha, per_page=PAGE_SIZE
            ),
        )
        return [item for item in response.json() if isinstance(item, dict)]

    def get_file(self, installation_id: int, repo: str, path: str) -> RepoFile | None:
        """Read a file of the default branch through the contents API; None if it does not exist."""
        owner, name = split_repo(repo)
        try:
            response = self.call(
                installation_id,
                "read a repository file",
                lambda github: github.rest.repos.get_content(owner, name, path),
            )
        except RequestRejected as exc:
            if exc.status_code == 404:
                return None
            raise
        content = response.json()
        if not isinstance(content, dict) or content.get("type") != "file":
            kind = "a directory" if isinstance(content, list) else f"a {content.get('type')!r} entry"
            raise RequestRejected(
                f"{path} in {repo} is {kind}, not a file",
                installation_id=installation_id,
                operation="read a repository file",
            )
        repo_file = RepoFile(path=path, sha=content.get("sha"), size=int(content.get("size") or 0), text=None)
        # Files over 1 MB come with `encoding: none` and no content.
        if content.get("encoding") != "base64" or not isinstance(content.get("content"), str):
            repo_file.problem = f"GitHub sent no content for the file ({repo_file.size} bytes; the limit is 1 MB)"
            return repo_file
        try:
            repo_file.text = base64.b64decode(content["content"]).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            repo_file.problem = f"the file's content could not be decoded as base64 UTF-8 text: {exc}"
        return repo_file

    # --- plumbing ----------------------------------------------------------------------------

    def call(
        self,
        installation_id: int,
        operation: str,
        request: Callable[[GitHub[AppInstallationAuthStrategy]], Response[Any]],
    ) -> Response[Any]:
        """Make one request as an installation, unless its rate budget is nearly spent."""
        from githubkit.exception import GitHubException, RequestFailed

        self._check_budget(installation_id, operation)
        try:
            response = request(self.client(installation_id))
        except GitHubException as exc:
            failed = exc.response.raw_response if isinstance(exc, RequestFailed) else None
            if failed is not None:
                self._note_budget(installation_id, failed.headers)
            raise self._translate(exc, installation_id, operation) from exc
        self._note_budget(installation_id, response.headers)
        return response

    def _check_budget(self, installation_id: int, operation: str) -> None:
        budget = self._budgets.get(installation_id)
        if budget is None:
            return
        reserved = max(MIN_RESERVED_REQUESTS, int(budget.limit * RESERVED_BUDGET_FRACTION))
        wait = budget.reset_at - self._clock()
        if budget.remaining < reserved and wait > 0:
            raise RateLimited(
                f"only {budget.remaining} of {budget.limit} requests are left for installation "
                f"{installation_id} until GitHub's reset in {wait:.0f} s",
                retry_after=wait,
                secondary=False,
                installation_id=installation_id,
                operation=operation,
            )

    def _note_budget(self, installation_id: int, headers: httpx.Headers) -> None:
        try:
            budget = RateBudget(
                limit=int(headers["x-ratelimit-limit"]),
                remaining=int(headers["x-ratelimit-remaining"]),
                reset_at=float(headers["x-ratelimit-reset"]),
            )
        except (KeyError, ValueError):
            return
        self._budgets[installation_id] = budget

    def _translate(self, exc: GitHubException, installation_id: int, operation: str) -> GitHubCallError:
        from githubkit.exception import (
            GitHubException,
            RateLimitExceeded,
            RequestError,
            RequestFailed,
            RequestTimeout,
            SecondaryRateLimitExceeded,
        )

        ids = {"installation_id": installation_id, "operation": operation}
        if isinstance(exc, RateLimitExceeded):
            secondary = isinstance(exc, SecondaryRateLimitExceeded)
            kind = "secondary rate limit" if secondary else "rate limit"
            return RateLimited(
                f"GitHub's {kind} was exceeded while trying to {operation}",
                retry_after=exc.retry_after.total_seconds(),
                secondary=secondary,
                status_code=exc.response.status_code,
                **ids,
            )
        if isinstance(exc, RequestFailed):
            return self._translate_status(exc.response.raw_response, installation_id, operation)
        if isinstance(exc, RequestTimeout):
            return GitHubUnavailable(f"GitHub did not answer in {TIMEOUT_SECONDS:.0f} s while trying to {operation}", **ids)
        if isinstance(exc, RequestError) and isinstance(exc.exc, GitHubException):
            # githubkit requests the installation token inside the httpx auth flow, so a
            # rejected token request arrives wrapped in RequestError.
            return self._translate_token_failure(exc.exc, installation_id, operation)
        if isinstance(exc, RequestError):
            return GitHubUnavailable(f"network error while trying to {operation}: {exc.exc!r}", **ids)
        return GitHubUnavailable(f"githubkit failed while trying to {operation}: {exc!r}", **ids)

    def _translate_token_failure(self, exc: GitHubException, installation_id: int, operation: str) -> GitHubCallError:
        from githubkit.exception import RateLimitExceeded, RequestFailed

        if isinstance(exc, RateLimitExceeded) or not isinstance(exc, RequestFailed):
            return self._translate(exc, installation_id, operation)
        response = exc.response.raw_response
        status = response.status_code
        ids = {"installation_id": installation_id, "operation": "request an installation token", "status_code": status}
        if status >= 500:
            return GitHubUnavailable(f"GitHub answered {status} to the installation token request", **ids)
        if status == 401:
            return AppCredentialsRejected(
                f"GitHub rejected the App's JWT ({status}: {error_message(response)}); check that "
                "GITHUB_APP_ID and GITHUB_PRIVATE_KEY belong to the same GitHub App",
                **ids,
            )
        return InstallationUnavailable(
            f"GitHub rejected the token request of installation {installation_id} ({status}: "
            f"{error_message(response)}); the App was probably uninstalled or suspended",
            **ids,
        )

    def _translate_status(self, response: httpx.Response, installation_id: int, operation: str) -> GitHubCallError:
        status = response.status_code
        message = error_message(response)
        ids = {"installation_id": installation_id, "operation": operation, "status_code": status}
        if status >= 500:
            return GitHubUnavailable(f"GitHub answered {status} while trying to {operation}: {message}", **ids)
        accepted = parse_accepted_permissions(response.headers.get("x-accepted-github-permissions"))
        if status == 403 and (accepted or "not accessible by integration" in message.lower()):
            return MissingPermission(
                f"the GitHub App may not {operation} ({message})", accepted=accepted, **ids
            )
        return RequestRejected(f"GitHub answered {status} while trying to {operation}: {message}", **ids)
