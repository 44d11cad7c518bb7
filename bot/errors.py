"""Exception family of release-bot: every error the bot raises on purpose derives from BotError."""


class BotError(Exception):
    """Base class of release-bot's own errors."""


class ConfigError(BotError):
    """A setting is missing or invalid; the message names the environment variable and the fix."""


class InvalidPayload(BotError):
    """A verified webhook delivery lacks a field the handler needs, or has one of the wrong type."""


class NotFound(BotError):
    """A run, release or other record asked for by id does not exist."""
