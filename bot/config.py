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
    api_token: SecretStr | None = None
    public_url: str = "http://localhost:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    worker_batch_size: int = Field(default=200, ge=1, le=10_000)
    worker_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    test_job_patterns: PatternList = DEFAULT_TEST_PATTERNS
    publish_job_patterns: PatternList = DEFAULT_PUBLISH_PATTERNS
    deploy_job_patterns: PatternList = DEFAULT_DEPLOY_PATTERNS

    @field_validator("test_job_patterns", "publish_job_patterns", "deploy_job_patterns", mode="before")
    @classmethod
    def _split_patterns(cls, value: object) -> tuple[str, ...]:
        return split_patterns(value)

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
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http or https URL")
        return value

    @field_validator("github_webhook_secret", "slack_signing_secret", "api_token")
    @classmethod
    def _reject_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("the value is a placeholder, not a secret")
        if value is not None and not value.get_secret_value().strip():
            return None
        return value

    @model_validator(mode="after")
    def _check_private_key(self) -> Settings:
        if self.github_private_key and self.github_private_key_path:
            raise ValueError("GITHUB_PRIVATE_KEY and GITHUB_PRIVATE_KEY_PATH are both set")
        if self.github_private_key_path and not self.github_private_key_path.is_file():
            raise ValueError(f"GITHUB_PRIVATE_KEY_PATH {str(self.github_private_key_path)!r} is not a file")
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
    def has_slack(self) -> bool:
        return self.slack_bot_token is not None and self.slack_signing_secret is not None

    def github_private_key_pem(self) -> str | None:
        """Return the App's private key, from the variable or from the file it names."""
        if self.github_private_key is not None:
            return self.github_private_key.get_secret_value().replace("\\n", "\n")
        if self.github_private_key_path is not None:
            return self.github_private_key_path.read_text()
        return None


FIXES = {
    "database_url": "use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DB",
    "github_app_id": "use the numeric App ID from the GitHub App settings page",
    "github_api_url": "use https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server",
    "slack_api_url": "use https://slack.com/api/",
    "github_webhook_secret": "set a random value of 20 or more characters, or unset it to have one generated",
    "port": "use a TCP port from 1 to 65535",
    "log_level": "use DEBUG, INFO, WARNING or ERROR",
    "log_format": "use text or json",
}


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning validation errors into a ConfigError naming each variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "settings"
            variable = field.upper() if field != "settings" else "configuration"
            message = str(error["msg"]).removeprefix("Value error, ")
            fix = FIXES.get(field, "correct or unset it")
            lines.append(f"{variable} is invalid: {message}; {fix}.")
        raise ConfigError("\n".join(lines)) from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once."""
    return load_settings()

