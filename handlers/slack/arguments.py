"""Parsing of `/release` command text: words, `--options`, repositories and channels.

Slack sends the text of a slash command escaped like message text: `&`, `<` and `>` arrive
as `&amp;`, `&lt;` and `&gt;`, and a channel picked from autocomplete arrives as a reference
`<#C0123|name>` (the name may be empty: `<#C0123|>`). Words are unescaped here, after the
references are recognised, so the rest of the bot gets the text people typed.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from bot.errors import BotError

CHANNEL_REFERENCE = re.compile(r"^<#([CG][A-Z0-9]{2,31})(?:\|([^>]*))?>$")
CHANNEL_NAME = re.compile(r"^#([a-z0-9][a-z0-9_\-]{0,79})$")
# GitHub logins: letters, digits and single hyphens, at most 39 characters; repository names:
# letters, digits, `.`, `_` and `-`, at most 100 characters.
OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
NAME = r"[A-Za-z0-9._-]{1,100}"
FULL_NAME = re.compile(rf"^({OWNER})/({NAME})$")
SHORT_NAME = re.compile(rf"^{NAME}$")
GITHUB_URL = re.compile(rf"^<?https://github\.com/({OWNER})/({NAME})/?(?:\|[^>]*)?>?$")
QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})


class ArgumentError(BotError):
    """A command argument is invalid; the message names it and the accepted values."""

    def __init__(self, message: str, *, usage: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage


def unescape(text: str) -> str:
    """Undo Slack's escaping of `&`, `<` and `>` in command text."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@dataclass
class Arguments:
    """A command's words, split into positional words and `--option value` pairs."""

    words: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)


def split_words(text: str) -> list[str]:
    """Split command text into words; quotes group words that contain spaces."""
    try:
        return shlex.split(text.translate(QUOTES), posix=True)
    except ValueError as exc:
        raise ArgumentError(f"the command text has an unclosed quote: {unescape(text)!r}") from exc


def parse_arguments(
    words: list[str], *, options: dict[str, str], usage: str, aliases: dict[str, str] | None = None
) -> Arguments:
    """Separate `--name value` (or `--name=value`) options from positional words, and unescape them.

    `options` maps each accepted option to a description of its value, used in errors.
    `aliases` maps other accepted spellings to an option name.
    """
    aliases = aliases or {}
    parsed = Arguments()
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not word.startswith("--"):
            parsed.words.append(word if CHANNEL_REFERENCE.match(word) else unescape(word))
            continue
        name, has_value, value = word[2:].partition("=")
        name = aliases.get(name, name)
        if name not in options:
            accepted = ", ".join(f"--{option}" for option in options) or "no options"
            raise ArgumentError(
                f"unknown option {word!r}: this command accepts {accepted}", usage=usage
            )
        if not has_value:
            if index >= len(words) or words[index].startswith("--"):
                raise ArgumentError(f"option --{name} needs a value: {options[name]}", usage=usage)
            value = words[index]
            index += 1
        parsed.options[name] = unescape(value)
    return parsed


def is_repository_word(word: str) -> bool:
    """Tell whether a word names a repository (OWNER/NAME or a GitHub URL) rather than something else."""
    return "/" in word


def parse_repository(word: str, *, usage: str) -> str:
    """Return the lower-case OWNER/NAME of a word, or raise ArgumentError naming it."""
    text = word
    match = FULL_NAME.match(text) or GITHUB_URL.match(text)
    if match is None or match.group(2) in (".", ".."):
        raise ArgumentError(
            f"invalid repository {text!r}: use OWNER/NAME, such as octo-org/widget "
            "(letters, digits, '-', and for the name also '.' and '_')",
            usage=usage,
        )
    return f"{match.group(1)}/{match.group(2)}".lower()


def is_short_name(word: str) -> bool:
    """Tell whether a word could be a repository name given without its owner."""
    return bool(SHORT_NAME.match(word))


@dataclass(frozen=True)
class ChannelArgument:
    """A channel named in a command: its id, or a `#name` still to be looked up."""

    channel_id: str | None
    name: str | None


def parse_channel(word: str) -> ChannelArgument | None:
    """Return the channel a word names (`<#C0123|name>`, `<#C0123|>`, `<#C0123>` or `#name`), else None."""
    reference = CHANNEL_REFERENCE.match(word)
    if reference is not None:
        return ChannelArgument(channel_id=reference.group(1), name=reference.group(2) or None)
    named = CHANNEL_NAME.match(word.lower())
    if named is not None:
        return ChannelArgument(channel_id=None, name=named.group(1))
    return None
