"""Settings of release-bot, read from environment variables and an optional `.env` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.errors import ConfigError

# Values people leave in an example file; starting with one would accept forged webhooks.
PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "xxx", "todo", "your-secret"})

DEFAULT_TEST_PATTERNS = ("*test*", "*spec*", "*check*", "*lint*")
DEFAULT_PUBLISH_PATTERNS = ("*publish*", "*release*", "*upload*", "*deploy-package*")
DEFAULT_DEPLOY_PATTERNS = ("*deploy*", "*rollout*")


def default_database_url() -> str:
    """Return the SQLite file `release-bot.db` in the working directory."""
    return f"sqlite:///{Path.cwd() / 'release-bot.db'}"


def split_patterns(value: object) -> tuple[str, ...]:
    """Parse a comma-separated list of glob patterns, as environment variables carry them."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (list, tuple)):
        return tuple(str(part).strip() for part in value if str(part).strip())
    raise ValueError(f"expected a comma-separated list of glob patterns, got {value!r}")


PatternList = Annotated[tuple[str, ...], NoDecode]


def parse_team_installations(value: object) -> dict[str, frozenset[int]]:
    """Parse `T0123=424242,T0456=55` into the installations each Slack workspace may see."""
    if isinstance(value, dict):
        return {str(team): frozenset(int(i) for i in ids) for team, ids in value.items()}
    if not isinstance(value, str):
        raise ValueError(f"expected TEAM_ID=INSTALLATION_ID pairs, got {value!r}")
    links: dict[str, set[int]] = {}
    for pair in (part.strip() for part in value.split(",")):
        if not pair:
            continue
        team, _, installation = pair.partition("=")
        if not team.strip() or not installation.strip().isdigit():
            raise ValueError(f"{pair!r} is not a TEAM_ID=INSTALLATION_ID pair")
        links.setdefault(team.strip(), set()).add(int(installation.strip()))
    return {team: frozenset(ids) for team, ids in links.items()}


class Settings(BaseSettings):
    """Every setting of the bot; other modules read configuration only through this object."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    database_url: str = Field(default_factory=default_database_url)
    github_webhook_secret: SecretStr | None = None
    github_app_id: int | None = None
    github_private_key: SecretStr | None = None
    github_private_key_path: Path | None = None
    github_api_url: str = "https://api.github.com"
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    # SMTP server for EMAIL alerts; a channel's own config may override all but the password.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    smtp_starttls: bool = True
    # Multi-workspace mode: the Slack app's OAuth credentials (with SLACK_SIGNING_SECRET).
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    # Workspaces that may see an installation's repositories without a `/release subscribe`:
    # TEAM_ID=INSTALLATION_ID pairs separated by commas.
    slack_team_installations: Annotated[dict[str, frozenset[int]], NoDecode] = Field(default_factory=dict)
    api_token: SecretStr | None = None
    # Where GitHub and Slack reach the bot; empty means the address it listens on (HOST:PORT).
    public_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    worker_batch_size: int = Field(default=50, ge=1, le=10_000)
    worker_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # How long, in all, the worker holds back while a burst of webhook requests is in flight,
    # before it processes the backlog anyway; 0 never holds back.
    worker_burst_defer_seconds: float = Field(default=5.0, ge=0, le=600)
    # False stores deliveries without processing them, for a process that only receives while
    # others process (on PostgreSQL), or to hold processing during maintenance.
    worker_enabled: bool = True
    test_job_patterns: PatternList = DEFAULT_TEST_PATTERNS
    publish_job_patterns: PatternList = DEFAULT_PUBLISH_PATTERNS
    deploy_job_patterns: PatternList = DEFAULT_DEPLOY_PATTERNS
    # Scheduled jobs (bot/scheduler.py); documented in docs/configuration.md.
    scheduler_enabled: bool = True
    scheduler_lease_seconds: int = Field(default=60, ge=1, le=60)
    redelivery_enabled: bool = True
    redelivery_interval_seconds: float = Field(default=600.0, ge=1, le=86_400)
    redelivery_first_delay_seconds: float = Field(default=30.0, ge=0, le=90)
    redelivery_lookback_hours: float = Field(default=3.0, gt=0, le=72)
    redelivery_overlap_minutes: float = Field(default=15.0, ge=0, le=60)
    retention_deliveries_days: float = Field(default=14.0, ge=1)
    retention_steps_days: float = Field(default=90.0, ge=1)
    metrics_token: SecretStr | None = None
    # Failure alerts (docs/alerts.md): the fields of an incident's key, the hours between
    # reminders of a still-failing incident (0 turns them off), and LOGIN=SLACK_USER_ID pairs.
    alert_incident_key: str = "repo,workflow,branch"
    alert_repeat_hours: float = Field(default=4.0, ge=0, le=168)
    alert_slack_users: str = ""
    # Stuck runs (docs/alerts.md): how often the check runs, and the shortest time a run or
    # job may stay queued or in progress before it counts as stuck.
    stuck_check_minutes: float = Field(default=5.0, gt=0, le=1440)
    stuck_min_minutes: float = Field(default=30.0, gt=0, le=10_080)
    # Channel digests (docs/slack.md): the UTC time of day they are posted, as HH:MM.
    digest_time_utc: str = "09:00"

    @field_validator("test_job_patterns", "publish_job_patterns", "deploy_job_patterns", mode="before")
    @classmethod
    def _split_patterns(cls, value: object) -> tuple[str, ...]:
        return split_patterns(value)

    @field_validator("digest_time_utc")
    @classmethod
    def _check_digest_time(cls, value: str) -> str:
        hours, _, minutes = value.strip().partition(":")
        if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
            raise ValueError(f"expected HH:MM, got {value!r}")
        if int(hours) > 23 or int(minutes) > 59:
            raise ValueError(f"{value!r} is not a time of day")
        return f"{int(hours):02d}:{minutes}"

    @field_validator("slack_team_installations", mode="before")
    @classmethod
    def _split_team_installations(cls, value: object) -> dict[str, frozenset[int]]:
        return parse_team_installations(value)

    @field_validator("slack_client_secret")
    @classmethod
    def _reject_placeholder_client_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("the value is a placeholder, not a secret")
        return value if value is None or value.get_secret_value().strip() else None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"{value!r} is not a database URL") from exc
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(f"backend {url.get_backend_name()!r} is not supported")
        if url.get_backend_name() == "postgresql" and url.get_driver_name() != "psycopg":
            raise ValueError("PostgreSQL URLs must use the psycopg driver")
        return value

    @field_validator("github_api_url", "slack_api_url", "public_url")
    @classmethod
    def _check_http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http or https URL")
        return value

    @field_validator("github_webhook_secret", "slack_signing_secret", "api_token", "metrics_token")
    @classmethod
    def _reject_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("the value is a placeholder, not a secret")
        if value is not None and not value.get_secret_value().strip():
            return None
        return value

    @field_validator("github_private_key_path")
    @classmethod
    def _check_private_key_path(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{str(value)!r} is not a file")
        return value

    @model_validator(mode="after")
    def _check_private_key(self) -> Settings:
        if self.github_private_key and self.github_private_key_path:
            raise ValueError(
                "GITHUB_PRIVATE_KEY and GITHUB_PRIVATE_KEY_PATH are both set; unset one of them."
            )
        if self.github_private_key is not None or self.github_private_key_path is not None:
            variable = "GITHUB_PRIVATE_KEY" if self.github_private_key else "GITHUB_PRIVATE_KEY_PATH"
            problem = private_key_problem(self.github_private_key_pem() or "")
            if problem is not None:
                # The message never contains the key itself.
                raise ValueError(
                    f"{variable} is invalid: {problem}; use the .pem file GitHub generated for "
                    "the App (in GITHUB_PRIVATE_KEY, line breaks may be written as \\n)."
                )
        return self

    @model_validator(mode="after")
    def _default_public_url(self) -> Settings:
        if not self.public_url:
            # An IPv6 address needs brackets inside a URL (RFC 3986, section 3.2.2).
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.public_url = f"http://{host}:{self.port}"
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def has_github_app(self) -> bool:
        return self.github_app_id is not None and (
            self.github_private_key is not None or self.github_private_key_path is not None
        )

    @property
    def has_slack_oauth(self) -> bool:
        return (
            self.slack_client_id is not None
            and self.slack_client_secret is not None
            and self.slack_signing_secret is not None
        )

    @property
    def has_slack(self) -> bool:
        return self.slack_bot_token is not None and self.slack_signing_secret is not None

    def github_private_key_pem(self) -> str | None:
        """Return the App's private key, from the variable or from the file it names."""
        if self.github_private_key is not None:
            return self.github_private_key.get_secret_value().replace("\\n", "\n")
        if self.github_private_key_path is not None:
            return self.github_private_key_path.read_text()
        return None


def private_key_problem(pem: str) -> str | None:
    """Return why a PEM text is not a usable unencrypted private key, or None if it is."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        return "the private key is encrypted with a password"
    except ValueError:
        return "the value is not a PEM private key"
    return None


FIXES = {
    "database_url": "use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DB",
    "github_app_id": "use the numeric App ID from the GitHub App settings page",
    "github_api_url": "use https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server",
    "slack_api_url": "use https://slack.com/api/",
    "smtp_port": "use the SMTP submission port, usually 587 (STARTTLS)",
    "slack_team_installations": "use TEAM_ID=INSTALLATION_ID pairs separated by commas, such as T0123ABCD=424242",
    "github_webhook_secret": "set a random value of 20 or more characters, or unset it to have one generated",
    "github_private_key_path": "give the path of the private key (.pem) file downloaded from the GitHub App settings page",
    "slack_signing_secret": "use the Signing Secret from the Basic Information page of the Slack app",
    "api_token": "set a random value of 20 or more characters, or unset it to leave the API open",
    "public_url": "use the http or https URL where GitHub reaches the bot, or unset it",
    "port": "use a TCP port from 1 to 65535",
    "log_level": "use DEBUG, INFO, WARNING or ERROR",
    "log_format": "use text or json",
    "scheduler_lease_seconds": "use a number of seconds from 1 to 60",
    "redelivery_interval_seconds": "use a number of seconds from 1 to 86400 (default 600)",
    "redelivery_first_delay_seconds": "use a number of seconds from 0 to 90",
    "redelivery_lookback_hours": "use a number of hours above 0 and at most 72 (GitHub redelivers only the past 3 days)",
    "redelivery_overlap_minutes": "use a number of minutes from 0 to 60",
    "retention_deliveries_days": "use a number of days, 1 or more",
    "retention_steps_days": "use a number of days, 1 or more",
    "alert_repeat_hours": "use a number of hours from 0 (no reminders) to 168",
    "stuck_check_minutes": "use a number of minutes above 0 and at most 1440 (default 5)",
    "stuck_min_minutes": "use a number of minutes above 0 and at most 10080 (default 30)",
    "digest_time_utc": "use a UTC time of day as HH:MM, such as 09:00",
}


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning validation errors into a ConfigError naming each variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            if not error["loc"]:
                # A check across several variables names them in its own message.
                lines.append(message)
                continue
            field = str(error["loc"][0])
            fix = FIXES.get(field, "correct or unset it")
            lines.append(f"{field.upper()} is invalid: {message}; {fix}.")
        raise ConfigError("\n".join(lines)) from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once."""
    return load_settings()

