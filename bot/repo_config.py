"""Per-repository configuration from `.github/release-bot.yml` on the default branch.

The file is read through the contents API by an outbox sender, never on the webhook path,
and the parsed result is kept in the database. A push to the default branch that touches the
file marks it stale, so the refresh message queued by the push (or the next PR comment,
whichever is sent first) reads it again. An invalid file leaves the last valid configuration, or the defaults, in force;
its problems are stored so the PR comment and `/release status` can show them.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)
from sqlalchemy import Engine

from bot.github_client import GitHubApp, GitHubCallError
from bot.github_outbox import blocked_reason, outbox_error
from bot.outbox import PermanentFailure
from storage import github_app, outbox
from storage.db import session_scope
from storage.outbox import OutboxMessage

logger = logging.getLogger(__name__)

CONFIG_PATH = ".github/release-bot.yml"
MAX_CONFIG_BYTES = 64 * 1024
REFRESH_KIND = "github_repo_config"
STAGES = ("build", "test", "publish", "deploy")
# Stage precedence when several stages match a name, as in handlers/github/context.py.
STAGE_PRECEDENCE = ("publish", "deploy", "test", "build")
ALERT_EVENTS = ("failure", "regression", "recovery", "publish", "deployment")
# A Slack channel as `#name` (lower case, as Slack names channels) or as a channel id.
SLACK_CHANNEL = re.compile(r"^(#[a-z0-9][a-z0-9._-]{0,79}|[CG][A-Z0-9]{8,})$")

Pattern = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
PatternList = Annotated[list[Pattern], Field(max_length=50)]


class ConfigModel(BaseModel):
    """Strict parsing: unknown keys and values of the wrong type are errors, not guesses."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StagePatterns(ConfigModel):
    """Glob patterns (case-insensitive) naming the workflows, jobs and steps of one stage."""

    workflows: PatternList = []
    jobs: PatternList = []
    steps: PatternList = []


class StageConfig(ConfigModel):
    """The build, test, publish and deploy stages."""

    build: StagePatterns = StagePatterns()
    test: StagePatterns = StagePatterns()
    publish: StagePatterns = StagePatterns()
    deploy: StagePatterns = StagePatterns()


class PullRequestComments(ConfigModel):
    """The build-profile comment on pull requests."""

    enabled: bool = True
    timeline: bool = True


class Regressions(ConfigModel):
    """When a job counts as slower or faster than on the base branch: both margins must be passed."""

    relative_threshold_percent: float = Field(default=20.0, ge=0, le=1000)
    absolute_threshold_seconds: float = Field(default=30.0, ge=0, le=86_400)
    baseline_runs: int = Field(default=10, ge=1, le=100)


class AlertRouting(ConfigModel):
    """Defaults for alerts about this repository (read by the alerting feature)."""

    slack_channel: str | None = None
    mentions: Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=100)]], Field(max_length=20)] = []
    notify_on: list[Literal["failure", "regression", "recovery", "publish", "deployment"]] = ["failure", "regression"]

    @field_validator("slack_channel")
    @classmethod
    def _check_channel(cls, value: str | None) -> str | None:
        if value is not None and not SLACK_CHANNEL.match(value):
            raise ValueError(f"{value!r} is not a Slack channel: use #channel-name or a channel id such as C0123ABCD")
        return value


class RepoConfig(ConfigModel):
    """The whole `.github/release-bot.yml`."""

    version: Literal[1] = 1
    pr_comments: PullRequestComments = PullRequestComments()
    stages: StageConfig = StageConfig()
    regressions: Regressions = Regressions()
    alerts: AlertRouting = AlertRouting()

    def stage_of_job(self, workflow_name: str | None, job_name: str | None) -> str | None:
        """Return the stage the file gives a job (by its name, then its workflow's), or None."""
        for attribute, name in (("jobs", job_name), ("workflows", workflow_name)):
            for stage in STAGE_PRECEDENCE:
                patterns = getattr(getattr(self.stages, stage), attribute)
                if matches_any(name, patterns):
                    return stage
        return None

    def stage_of_step(self, step_name: str | None) -> str | None:
        """Return the stage the file gives a step, or None."""
        for stage in STAGE_PRECEDENCE:
            if matches_any(step_name, getattr(self.stages, stage).steps):
                return stage
        return None


DEFAULT_CONFIG = RepoConfig()


def matches_any(name: str | None, patterns: list[str]) -> bool:
    """Tell whether a name matches one of the glob patterns, ignoring case."""
    if not name:
        return False
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


@dataclass(frozen=True)
class ConfigProblem:
    """One reason a configuration file is invalid."""

    file: str
    key: str
    reason: str


@dataclass
class EffectiveConfig:
    """The configuration in force for a repository, and the problems of the newest file read."""

    config: RepoConfig
    source: str = "default"
    problems: list[ConfigProblem] = field(default_factory=list)
    needs_fetch: bool = True


def key_path(location: tuple[int | str, ...]) -> str:
    """Turn a pydantic error location into `regressions.baseline_runs` or `stages.test.jobs[2]`."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif path:
            path += f".{part}"
        else:
            path = str(part)
    return path or "(top level)"


def parse_config(text: str, *, path: str = CONFIG_PATH) -> tuple[RepoConfig | None, list[ConfigProblem]]:
    """Parse and validate the file's text; return the configuration or the problems found."""
    if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
        return None, [ConfigProblem(path, "(file)", f"the file is larger than {MAX_CONFIG_BYTES // 1024} KiB")]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [ConfigProblem(path, "(file)", f"invalid YAML{where}: {problem}")]
    if data is None:
        return RepoConfig(), []
    if not isinstance(data, dict):
        return None, [ConfigProblem(path, "(top level)", f"expected a mapping of keys, got {type(data).__name__}")]
    try:
        return RepoConfig.model_validate(data), []
    except ValidationError as exc:
        problems = [
            ConfigProblem(path, key_path(error["loc"]), describe_error(error))
            for error in exc.errors(include_url=False)
        ]
        return None, problems


def describe_error(error: Any) -> str:
    """Word one pydantic error for people editing the file."""
    if error["type"] == "extra_forbidden":
        return "unknown key; check its spelling against docs/repo-config.md"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{message} (got {error['input']!r})" if "input" in error and not isinstance(error["input"], dict) else message


def effective_config(*, session: Any, repo: str) -> EffectiveConfig:
    """Return the configuration in force for a repository, from the stored state."""
    state = github_app.get_repo_config_state(session=session, repo=repo)
    if state is None:
        return EffectiveConfig(config=DEFAULT_CONFIG, needs_fetch=True)
    config = DEFAULT_CONFIG
    if state.config is not None:
        try:
            config = RepoConfig.model_validate(state.config)
        except ValidationError:
            # Stored by an older version with other keys: the defaults are safer than a guess.
            logger.warning("stored configuration no longer valid, using defaults", extra={"repo": repo})
    problems = [ConfigProblem(**problem) for problem in state.error or []]
    return EffectiveConfig(config=config, source=state.source, problems=problems, needs_fetch=state.stale)


def refresh_repo_config(engine: Engine, github: GitHubApp, *, installation_id: int, repo: str) -> EffectiveConfig:
    """Read the file from GitHub, store the outcome and return the configuration in force.

    Call it outside any transaction; GitHubCallError propagates to the caller.
    """
    repo_file = github.get_file(installation_id, repo, CONFIG_PATH)
    problems: list[ConfigProblem] = []
    config: RepoConfig | None = None
    if repo_file is not None and repo_file.text is None:
        problems = [ConfigProblem(CONFIG_PATH, "(file)", repo_file.problem or "the file could not be read")]
    elif repo_file is not None and repo_file.text is not None:
        config, problems = parse_config(repo_file.text)

    with session_scope(engine) as session:
        if repo_file is None:
            github_app.store_repo_config(
                session=session, repo=repo, installation_id=installation_id, source="default", config=None, blob_sha=None
            )
        elif problems:
            github_app.store_repo_config_error(
                session=session,
                repo=repo,
                installation_id=installation_id,
                problems=[asdict(problem) for problem in problems],
                blob_sha=repo_file.sha,
            )
        else:
            assert config is not None
            github_app.store_repo_config(
                session=session,
                repo=repo,
                installation_id=installation_id,
                source="file",
                config=config.model_dump(mode="json"),
                blob_sha=repo_file.sha,
            )
        result = effective_config(session=session, repo=repo)

    if problems:
        logger.warning(
            "invalid %s, the previous configuration stays in force: %s",
            CONFIG_PATH,
            "; ".join(f"{problem.key}: {problem.reason}" for problem in problems),
            extra={"repo": repo, "installation_id": installation_id},
        )
    else:
        logger.info("repository configuration read", extra={"repo": repo, "source": result.source})
    return result


def ensure_config(engine: Engine, github: GitHubApp, *, installation_id: int, repo: str) -> EffectiveConfig:
    """Return the configuration in force, reading the file first if it was never read or is stale."""
    with session_scope(engine) as session:
        current = effective_config(session=session, repo=repo)
    if not current.needs_fetch:
        return current
    return refresh_repo_config(engine, github, installation_id=installation_id, repo=repo)


def queue_config_refresh(*, session: Any, repo: str, installation_id: int, dedupe_key: str | None = None) -> None:
    """Queue a read of the repository's configuration file, unless one already waits."""
    if github_app.has_pending_message(session=session, kind=REFRESH_KIND, target=repo):
        return
    outbox.enqueue(
        session=session,
        kind=REFRESH_KIND,
        target=repo,
        payload={"repo": repo, "installation_id": installation_id},
        dedupe_key=dedupe_key,
    )


class RepoConfigSender:
    """Outbox sender of `github_repo_config` messages: read the file again after a push changed it."""

    def __init__(self, engine: Engine, github: GitHubApp) -> None:
        self.engine = engine
        self.github = github

    def __call__(self, message: OutboxMessage) -> dict[str, Any]:
        repo = str(message.payload.get("repo") or "")
        installation_id = message.payload.get("installation_id")
        if not repo or not isinstance(installation_id, int):
            raise PermanentFailure(f"the message has no repo or installation_id: {message.payload!r}")
        reason = blocked_reason(self.engine, installation_id)
        if reason is not None:
            return {"skipped": reason}
        try:
            result = refresh_repo_config(self.engine, self.github, installation_id=installation_id, repo=repo)
        except GitHubCallError as exc:
            raise outbox_error(self.engine, message, exc) from exc
        return {"source": result.source, "problems": len(result.problems)}
