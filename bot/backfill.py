"""Backfill of past workflow runs and jobs from GitHub's REST API, recorded as webhooks are.

The REST objects of runs and jobs have the fields of the `workflow_run` and `workflow_job`
webhook payloads, so each is wrapped in a payload of that shape and passed to the same
handlers. Facts are keyed by run id, attempt and job id, so a run already stored from
webhooks is merged, and metrics are upserted by the same source keys, never counted twice.

Progress is stored per run: the runs of a page are each recorded in one transaction, and the
page cursor moves once the whole page is done. A second invocation starts at that page and
skips the completed runs that a backfill recorded before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

from githubkit import AppInstallationAuthStrategy, GitHub, Response
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.config import Settings
from bot.errors import BotError, InvalidPayload
from bot.github_client import GitHubApp, GitHubUnavailable, RateLimited, split_repo
from handlers.github import workflow_job, workflow_run
from handlers.github.context import HandlerContext
from storage import backfill as progress_store
from storage.db import session_scope
from storage.models import Installation, Repository

logger = logging.getLogger(__name__)

PAGE_SIZE = 100
# GitHub returns at most 1000 runs for a query with the `created` filter (REST docs, "List
# workflow runs for a repository"); later pages come back empty.
# TODO: a window with more runs needs several queries (created=A..B); until then the oldest
# runs of such a window are not read, and the command prints a warning.
MAX_LISTED_RUNS = 1000
# A network error or 5xx is tried this many times in all, waiting 2, 4, 8 s in between.
MAX_TRIES = 4
FIRST_BACKOFF_SECONDS = 2.0
# Waiting for a rate limit more often than this in a row for one request stops the backfill.
MAX_RATE_LIMIT_WAITS = 5
# Below this share of the hourly budget, requests are spread over the time left until reset.
SLOW_DOWN_FRACTION = 0.1


class BackfillError(BotError):
    """The backfill cannot start or had to stop. The message names the next step."""


@dataclass
class Pacing:
    """The sleep and clock functions of a backfill, which tests replace with a fake clock."""

    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time


@dataclass
class BackfillReport:
    """Counts of a backfill so far. `done` adds recorded, skipped and invalid runs to the runs
    on the pages an earlier invocation finished."""

    repo: str
    since: str
    installation_id: int
    start_page: int = 1
    # Runs on the pages before `start_page`, done by an earlier invocation (an estimate for the bar).
    runs_before_start: int = 0
    total_count: int | None = None
    runs_recorded: int = 0
    runs_skipped: int = 0
    runs_invalid: int = 0
    jobs_recorded: int = 0
    finished: bool = False
    # The created_at of the oldest run listed, as GitHub wrote it.
    oldest_listed: str | None = None
    invalid_run_ids: list[int] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.runs_before_start + self.runs_recorded + self.runs_skipped + self.runs_invalid

    @property
    def is_truncated(self) -> bool:
        """Tell whether GitHub has more runs in the window than one listing returns."""
        return (self.total_count or 0) > MAX_LISTED_RUNS


def open_github_app(settings: Settings, pacing: Pacing) -> GitHubApp | None:
    """Build the GitHub App client from the settings; None without App credentials."""
    return GitHubApp.from_settings(settings, clock=pacing.clock)


def find_installation_id(engine: Engine, github: GitHubApp, repo: str) -> int:
    """Return the installation that covers a repository: the stored one, else the one GitHub returns."""
    with Session(engine) as session:
        stored = session.query(Repository).filter(Repository.full_name == repo).first()  # type: ignore[arg-type]
        if stored is not None and stored.installation_id is not None and not stored.removed:
            installation = session.get(Installation, stored.installation_id)
            if installation is None or installation.status == "active":
                return stored.installation_id
    installation_id = github.get_repo_installation_id(repo)
    if installation_id is None:
        raise BackfillError(
            f"the GitHub App {github.app_id} is not installed on {repo} (GitHub returned 404 for "
            f"GET /repos/{repo}/installation): install the App on the repository, or check the "
            "spelling of OWNER/NAME, then run the command again"
        )
    return installation_id


def page_after(response: Response[Any], page: int) -> int | None:
    """Return the page number of the Link header's rel="next" URL, or None on the last page.

    A next page that is not after `page` also ends the listing, so that a wrong Link header
    cannot make the backfill read the same page forever.
    """
    link = response.raw_response.links.get("next")
    if not link or "url" not in link:
        return None
    pages = parse_qs(urlsplit(link["url"]).query).get("page")
    if not pages or not pages[0].isdigit() or int(pages[0]) <= page:
        return None
    return int(pages[0])


def webhook_action(status: str | None, *, job: bool) -> str:
    """Return the webhook action GitHub sends for a run or job in this status."""
    if status in ("completed", "in_progress"):
        return status
    if job:
        return "waiting" if status == "waiting" else "queued"
    return "requested"


class Backfill:
    """Reads one repository's runs since a day and records them as webhooks would."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        github: GitHubApp,
        repo: str,
        since: date,
        installation_id: int,
        pacing: Pacing | None = None,
        on_progress: Callable[[BackfillReport], None] | None = None,
    ) -> None:
        self.engine = engine
        self.github = github
        self.repo = repo.lower()
        self.owner, self.name = split_repo(repo)
        self.since = since.isoformat()
        self.installation_id = installation_id
        self.pacing = pacing or Pacing()
        self.on_progress = on_progress or (lambda report: None)
        # Without App credentials the workflow_run handler queues no pull request comment:
        # a comment about a run from weeks ago would only be noise.
        self.handler_settings = settings.model_copy(update={"github_app_id": None})
        self.report = BackfillReport(repo=self.repo, since=self.since, installation_id=installation_id)

    def run(self, *, restart: bool = False) -> BackfillReport:
        """List the runs page by page and record each one not recorded before.

        A resumed backfill starts at the stored page. Runs created since then push older runs
        to later pages, so none is missed, and the new runs arrive as webhooks. NOTE: runs
        deleted on GitHub since then pull later runs forward, so a few may then be left out.
        """
        with session_scope(self.engine) as session:
            if restart:
                progress_store.reset_progress(session=session, repo=self.repo, since=self.since)
            progress = progress_store.start_progress(
                session=session, repo=self.repo, since=self.since, installation_id=self.installation_id
            )
            # A finished backfill run again lists every page, to pick up newer runs and attempts.
            page = 1 if progress.finished_at is not None else progress.next_page
            self.report.total_count = progress.total_count
        self.report.start_page = page
        self.report.runs_before_start = (page - 1) * PAGE_SIZE
        extra = {"repo": self.repo, "since": self.since, "installation_id": self.installation_id}
        logger.info("backfill started", extra={**extra, "page": page})

        next_page: int | None = page
        while next_page is not None:
            page = next_page
            runs, total_count, next_page = self.list_runs(page)
            self.report.total_count = total_count
            self.on_progress(self.report)
            self.record_page(runs)
            with session_scope(self.engine) as session:
                progress_store.save_cursor(
                    session=session, repo=self.repo, since=self.since, next_page=next_page, total_count=total_count
                )

        self.report.finished = True
        logger.info(
            "backfill finished",
            extra={**extra, "recorded": self.report.runs_recorded, "skipped": self.report.runs_skipped},
        )
        return self.report

    # --- reading GitHub ----------------------------------------------------------------------

    def list_runs(self, page: int) -> tuple[list[dict[str, Any]], int | None, int | None]:
        """Return one page of runs (newest first), GitHub's total_count and the next page number."""
        response = self.call(
            "list workflow runs",
            lambda github: github.rest.actions.list_workflow_runs_for_repo(
                self.owner, self.name, created=f">={self.since}", per_page=PAGE_SIZE, page=page
            ),
        )
        body = response.json()
        runs = [run for run in body.get("workflow_runs") or [] if isinstance(run, dict)]
        total_count = body.get("total_count") if isinstance(body.get("total_count"), int) else None
        created = [run["created_at"] for run in runs if isinstance(run.get("created_at"), str)]
        if created:
            self.report.oldest_listed = min([*created, self.report.oldest_listed or created[0]])
        return runs, total_count, page_after(response, page) if runs else None

    def list_attempts(self, run: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Return each attempt of a run as its run object, with the attempt's jobs."""
        run_id = int(run["id"])
        latest = run.get("run_attempt") if isinstance(run.get("run_attempt"), int) else 1
        attempts = []
        for number in range(1, latest + 1):
            if number == latest:
                attempt_run = run
            else:
                attempt_run = self.call(
                    "read a workflow run attempt",
                    lambda github, number=number: github.rest.actions.get_workflow_run_attempt(
                        self.owner, self.name, run_id, number
                    ),
                ).json()
            attempts.append((attempt_run, self.list_jobs(run_id, number)))
        return attempts

    def list_jobs(self, run_id: int, attempt: int) -> list[dict[str, Any]]:
        """Return every job of one run attempt, following the Link header's next pages."""
        jobs: list[dict[str, Any]] = []
        page: int | None = 1
        while page is not None:
            response = self.call(
                "list the jobs of a workflow run attempt",
                lambda github, page=page: github.rest.actions.list_jobs_for_workflow_run_attempt(
                    self.owner, self.name, run_id, attempt, per_page=PAGE_SIZE, page=page
                ),
            )
            batch = [job for job in response.json().get("jobs") or [] if isinstance(job, dict)]
            jobs.extend(batch)
            page = page_after(response, page) if batch else None
        return jobs

    def call(
        self, operation: str, request: Callable[[GitHub[AppInstallationAuthStrategy]], Response[Any]]
    ) -> Response[Any]:
        """Make one request, waiting out rate limits and retrying temporary failures."""
        rate_waits = 0
        tries = 0
        while True:
            self.slow_down()
            try:
                return self.github.call(self.installation_id, operation, request)
            except RateLimited as exc:
                rate_waits += 1
                if rate_waits > MAX_RATE_LIMIT_WAITS:
                    raise
                logger.warning(
                    "backfill waits for the rate limit",
                    extra={"repo": self.repo, "installation_id": self.installation_id, "seconds": exc.retry_after},
                )
                self.pacing.sleep(max(exc.retry_after, 1.0))
            except GitHubUnavailable:
                tries += 1
                if tries >= MAX_TRIES:
                    raise
                self.pacing.sleep(FIRST_BACKOFF_SECONDS * 2 ** (tries - 1))

    def slow_down(self) -> None:
        """Spread the requests left in a nearly spent budget over the time until GitHub's reset."""
        budget = self.github.budget(self.installation_id)
        if budget is None or budget.remaining >= budget.limit * SLOW_DOWN_FRACTION:
            return
        wait = budget.reset_at - self.pacing.clock()
        if wait > 0:
            self.pacing.sleep(wait / max(budget.remaining, 1))

    # --- recording ---------------------------------------------------------------------------

    def record_page(self, runs: list[dict[str, Any]]) -> None:
        """Record each run of a page that no backfill has recorded at its current attempt."""
        run_ids = [run["id"] for run in runs if isinstance(run.get("id"), int)]
        with Session(self.engine) as session:
            recorded = progress_store.recorded_attempts(session=session, repo=self.repo, run_ids=run_ids)
        for run in runs:
            run_id = run.get("id")
            attempt = run.get("run_attempt") if isinstance(run.get("run_attempt"), int) else 1
            if not isinstance(run_id, int):
                logger.warning("backfill skipped a run without an id", extra={"repo": self.repo, "id": run_id})
                self.report.runs_invalid += 1
            elif recorded.get(run_id, 0) >= attempt:
                self.report.runs_skipped += 1
            else:
                self.record_run(run, self.list_attempts(run))
            self.on_progress(self.report)

    def record_run(self, run: dict[str, Any], attempts: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
        """Pass a run's attempts and jobs to the webhook handlers in one transaction."""
        run_id = int(run["id"])
        extra = {"repo": self.repo, "run_id": run_id, "installation_id": self.installation_id}
        for try_number in (1, 2):
            try:
                with session_scope(self.engine) as session:
                    jobs = self.handle_attempts(session, attempts)
                    if run.get("status") == "completed":
                        progress_store.mark_run_recorded(
                            session=session, repo=self.repo, run_id=run_id, run_attempt=len(attempts)
                        )
            except IntegrityError as exc:
                # The webhook worker inserted the same fact meanwhile; the second try merges into it.
                if try_number == 2:
                    raise
                logger.info("backfill retries a run after a concurrent insert: %s", exc.orig, extra=extra)
                continue
            except (InvalidPayload, ValueError) as exc:
                logger.warning("backfill skipped an invalid run: %s", exc, extra=extra)
                self.report.runs_invalid += 1
                self.report.invalid_run_ids.append(run_id)
                return
            self.report.runs_recorded += 1
            self.report.jobs_recorded += jobs
            return

    def handle_attempts(
        self, session: Session, attempts: list[tuple[dict[str, Any], list[dict[str, Any]]]]
    ) -> int:
        """Call the workflow_run and workflow_job handlers; return the number of jobs."""
        installation = {"id": self.installation_id}
        count = 0
        for attempt_run, jobs in attempts:
            run_id = attempt_run.get("id")
            number = attempt_run.get("run_attempt")
            action = webhook_action(attempt_run.get("status"), job=False)
            payload = {
                "action": action,
                "workflow_run": attempt_run,
                "repository": attempt_run.get("repository"),
                "installation": installation,
            }
            workflow_run.handle(self.context(session, "workflow_run", action, f"run-{run_id}-{number}"), payload)
            for job in jobs:
                action = webhook_action(job.get("status"), job=True)
                payload = {
                    "action": action,
                    "workflow_job": job,
                    "repository": attempt_run.get("repository"),
                    "installation": installation,
                }
                workflow_job.handle(self.context(session, "workflow_job", action, f"job-{job.get('id')}"), payload)
                count += 1
        session.flush()
        return count

    def context(self, session: Session, event: str, action: str, key: str) -> HandlerContext:
        # The delivery id only labels log lines; no delivery row is stored for a backfill.
        return HandlerContext(
            session=session,
            settings=self.handler_settings,
            delivery_id=f"backfill-{key}",
            event=event,
            action=action,
        )
