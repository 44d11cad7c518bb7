"""Settings and `release-bot serve`.

Every invalid value stops `serve` with exit status 2 and a message that names the variable and
the fix. A `.env` file is read, and the bot starts with no configuration at all.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlmodel import Session
from typer.testing import CliRunner

from bot.cli import app
from bot.config import load_settings
from storage import state
from tests.cli_support import clean_environment, isolate_settings, restored_logging, run_server

SECRET_LINE = re.compile(r"Webhook secret: (\S+)")


@pytest.fixture
def clean_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working directory and no setting in the environment."""
    isolate_settings(monkeypatch, tmp_path)
    with restored_logging():
        yield tmp_path


def serve(env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["serve"], env=env)
    return result.exit_code, result.stderr


INVALID_SETTINGS = [
    (
        {"DATABASE_URL": "nonsense"},
        "DATABASE_URL is invalid: 'nonsense' is not a database URL",
        "use sqlite:///PATH or postgresql+psycopg://",
    ),
    (
        {"DATABASE_URL": "mysql://bot@127.0.0.1/bot"},
        "DATABASE_URL is invalid: backend 'mysql' is not supported",
        "use sqlite:///PATH or postgresql+psycopg://",
    ),
    ({"GITHUB_APP_ID": "my-app"}, "GITHUB_APP_ID is invalid", "use the numeric App ID"),
    (
        {"GITHUB_PRIVATE_KEY_PATH": "missing.pem"},
        "GITHUB_PRIVATE_KEY_PATH is invalid: 'missing.pem' is not a file",
        "give the path of the private key (.pem) file",
    ),
    (
        {
            "GITHUB_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----",
            "GITHUB_PRIVATE_KEY_PATH": "app.pem",
        },
        "GITHUB_PRIVATE_KEY and GITHUB_PRIVATE_KEY_PATH are both set",
        "unset one of them",
    ),
    (
        {"GITHUB_APP_ID": "31337", "GITHUB_PRIVATE_KEY": "not-a-pem-key"},
        "GITHUB_PRIVATE_KEY is invalid: the value is not a PEM private key",
        "use the .pem file GitHub generated",
    ),
    (
        {"GITHUB_APP_ID": "31337", "GITHUB_PRIVATE_KEY_PATH": "app.pem"},
        "GITHUB_PRIVATE_KEY_PATH is invalid: the value is not a PEM private key",
        "use the .pem file GitHub generated",
    ),
    (
        {"GITHUB_WEBHOOK_SECRET": "changeme"},
        "GITHUB_WEBHOOK_SECRET is invalid: the value is a placeholder",
        "set a random value of 20 or more characters",
    ),
    (
        {"GITHUB_WEBHOOK_SECRET": "ChangeMe "},
        "GITHUB_WEBHOOK_SECRET is invalid: the value is a placeholder",
        "set a random value",
    ),
    (
        {"SLACK_SIGNING_SECRET": "changeme"},
        "SLACK_SIGNING_SECRET is invalid: the value is a placeholder",
        "use the Signing Secret",
    ),
    (
        {"API_TOKEN": "secret"},
        "API_TOKEN is invalid: the value is a placeholder",
        "set a random value",
    ),
    ({"PORT": "0"}, "PORT is invalid", "use a TCP port from 1 to 65535"),
    ({"PORT": "http"}, "PORT is invalid", "use a TCP port from 1 to 65535"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT is invalid", "use text or json"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL is invalid", "use DEBUG, INFO, WARNING or ERROR"),
    (
        {"PUBLIC_URL": "bot.example.com"},
        "PUBLIC_URL is invalid: 'bot.example.com' is not an http or https URL",
        "use the http or https URL",
    ),
]


@pytest.mark.parametrize(
    ("env", "problem", "fix"), INVALID_SETTINGS, ids=lambda value: str(value)[:40]
)
def test_serve_rejects_invalid_setting(
    clean_cwd: Path, env: dict[str, str], problem: str, fix: str
) -> None:
    (clean_cwd / "app.pem").write_text("a key file that exists\n")

    status, stderr = serve(env)

    assert status == 2
    assert "configuration error" in stderr
    assert problem in stderr
    assert fix in stderr
    assert "Traceback" not in stderr
    assert not (clean_cwd / "release-bot.db").exists()


def test_serve_never_prints_rejected_secret(clean_cwd: Path) -> None:
    status, stderr = serve({"GITHUB_WEBHOOK_SECRET": "changeme", "API_TOKEN": "todo"})

    assert status == 2
    assert "changeme" not in stderr
    assert "todo" not in stderr
    assert "GITHUB_WEBHOOK_SECRET is invalid" in stderr
    assert "API_TOKEN is invalid" in stderr


def test_serve_reports_unreachable_database(clean_cwd: Path) -> None:
    # Port 1 on the loopback address has no PostgreSQL server, so the connection is refused.
    status, stderr = serve({"DATABASE_URL": "postgresql+psycopg://bot:hunter2@127.0.0.1:1/bot"})

    assert status == 1
    assert "cannot connect to the database postgresql+psycopg://bot:***@127.0.0.1:1/bot" in stderr
    assert "check DATABASE_URL" in stderr
    assert "hunter2" not in stderr
    assert "Traceback" not in stderr


def test_serve_port_in_use_exits_at_once(clean_cwd: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = CliRunner().invoke(app, ["serve", "--port", str(port)])

    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" in result.stderr
    assert "choose another port with --port or the PORT setting" in result.stderr
    assert "Traceback" not in result.stderr
    # Nothing started: no database was created, so no migration ran.
    assert "listening" not in result.stdout
    assert not (clean_cwd / "release-bot.db").exists()


def test_serve_host_not_local_exits(clean_cwd: Path) -> None:
    # 192.0.2.1 is reserved for documentation (RFC 5737), so no interface of a test machine has it.
    result = CliRunner().invoke(app, ["serve", "--host", "192.0.2.1", "--port", "8000"])

    assert result.exit_code == 1
    assert "cannot listen on 192.0.2.1:8000: 192.0.2.1 is not an address of this machine" in result.stderr
    assert "--host or the HOST setting" in result.stderr
    assert not (clean_cwd / "release-bot.db").exists()


def test_dotenv_invalid_value_rejected(clean_cwd: Path) -> None:
    (clean_cwd / ".env").write_text("LOG_FORMAT=xml\n")

    status, stderr = serve({})

    assert status == 2
    assert "LOG_FORMAT is invalid" in stderr
    assert "use text or json" in stderr


def test_dotenv_values_read(clean_cwd: Path) -> None:
    (clean_cwd / ".env").write_text("HOST=127.0.0.2\nPORT=9123\nGITHUB_APP_ID=31337\n")

    settings = load_settings()

    assert settings.host == "127.0.0.2"
    assert settings.port == 9123
    assert settings.github_app_id == 31337
    assert settings.public_url == "http://127.0.0.2:9123"


def test_environment_overrides_dotenv(clean_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_cwd / ".env").write_text("PORT=9123\n")
    monkeypatch.setenv("PORT", "9200")

    assert load_settings().port == 9200


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"host": "0.0.0.0", "port": 9000}, "http://0.0.0.0:9000"),
        ({"host": "::1", "port": 9000}, "http://[::1]:9000"),
        ({"port": 9000, "public_url": "https://bot.example.com"}, "https://bot.example.com"),
    ],
)
def test_public_url_default(clean_cwd: Path, values: dict[str, object], expected: str) -> None:
    assert load_settings(_env_file=None, **values).public_url == expected


def test_database_url_default_in_working_directory(clean_cwd: Path) -> None:
    settings = load_settings(_env_file=None)

    assert settings.database_url == f"sqlite:///{clean_cwd / 'release-bot.db'}"


def stored_secret(database: Path) -> str | None:
    engine = create_engine(f"sqlite:///{database}")
    with Session(engine) as session:
        value = state.get_value(session=session, key=state.WEBHOOK_SECRET_KEY)
    engine.dispose()
    return value


def test_serve_without_configuration(tmp_path: Path) -> None:
    environment = clean_environment()

    with run_server(tmp_path, environment, name="first") as server:
        first_output = server.output()
        port = server.base_url.rsplit(":", 1)[1]

    database = tmp_path / "release-bot.db"
    assert database.is_file()
    secrets_printed = SECRET_LINE.findall(first_output)
    assert len(secrets_printed) == 1
    assert stored_secret(database) == secrets_printed[0]
    assert len(secrets_printed[0]) == 64
    assert f"Webhook URL:    http://127.0.0.1:{port}/github/webhooks" in first_output
    # The printed text names the setting that changes the URL.
    assert "PUBLIC_URL is not set, so this URL is the address the bot listens on" in first_output
    assert "`release-bot webhook-secret show` prints the secret again" in first_output

    with run_server(tmp_path, environment, name="second") as server:
        second_output = server.output()

    assert "Webhook secret" not in second_output
    assert secrets_printed[0] not in second_output
    assert stored_secret(database) == secrets_printed[0]
