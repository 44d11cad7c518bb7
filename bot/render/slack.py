"""The one place where Slack text is escaped and Block Kit messages are fitted to Slack's limits.

Slack's message formatting page (api.slack.com/docs/message-formatting) names three control
characters, `&`, `<` and `>`, which must be written as `&amp;`, `&lt;` and `&gt;`. Every
piece of user-controlled text (branch, workflow, job and step names, commit titles, release
names) goes through `escape` before it joins mrkdwn, so `<!channel>` or `<@U123>` in a
branch name shows literally and mentions nobody. The bot's own constructs (links, channel
references) are built here too, from escaped labels and percent-encoded URLs. Slack does not
parse `plain_text` objects, so their text is passed unescaped.

The limits are those of Slack's Block Kit reference, which slack_sdk's block models (3.x)
also check. A message has at most 50 blocks and a Home tab view 100. Section text has at
most 3,000 characters, and a section at most 10 fields of 2,000 characters each. Header
text has at most 150 characters, a context block 10 elements, button text 75 characters
and a button value 2,000. The top-level `text`, shown in notifications, is kept under 4,000
characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_TEXT = 2000
MAX_FALLBACK_TEXT = 4000
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_URL = 3000
# NOTE: Slack documents no total for a message's block text, but it has been seen to reject
# messages whose blocks hold a little over 13,000 characters (error msg_blocks_too_long), so
# messages stay under this estimate. Home tab views are not held to it.
MAX_MESSAGE_TEXT = 12_000

ELLIPSIS = "…"
# Room kept at the end of each packed section for an "and N more" line.
MORE_LINE_ROOM = 80

CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,31}$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,31}$")
# Characters that would end a `<url|label>` link early or start an entity inside it.
URL_UNSAFE = re.compile(r'[<>|&"\s]')


def escape(text: object) -> str:
    """Escape user-controlled text for mrkdwn: `&`, `<` and `>` become entities."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def inline(text: object) -> str:
    """Escape user-controlled text and join its lines, for use inside one line of mrkdwn."""
    return escape(" ".join(str(text).splitlines()))


def url_segment(text: str) -> str:
    """Percent-encode user text for a URL path, keeping `/` (a branch `a/b` stays two segments)."""
    return quote(text, safe="/")


def clean_url(url: str | None) -> str | None:
    """Return an http(s) URL safe inside `<url|label>`, or None if it is not one.

    `<`, `>`, `|`, `&`, quotes and whitespace are percent-encoded. The URLs the bot links to
    (GitHub pages) carry no query strings, so encoding `&` changes no meaning there.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    cleaned = URL_UNSAFE.sub(lambda match: quote(match.group(0), safe=""), url)
    return cleaned if len(cleaned) <= MAX_URL else None


def link(url: str | None, label: object) -> str:
    """Build a mrkdwn link with an escaped label, or return only the label if the URL is unusable."""
    text = inline(label)
    cleaned = clean_url(url)
    if cleaned is None:
        return text
    return f"<{cleaned}|{text}>"


def channel_ref(channel_id: str) -> str:
    """Reference a channel by id (`<#C0123>`), which Slack shows as its current name."""
    if not CHANNEL_ID.match(channel_id):
        return inline(channel_id)
    return f"<#{channel_id}>"


def cut(text: str, limit: int) -> str:
    """Shorten mrkdwn to `limit` characters with an ellipsis, never inside an entity or a link."""
    if len(text) <= limit:
        return text
    end = max(0, limit - len(ELLIPSIS))
    head = text[:end]
    ampersand = head.rfind("&")
    if ampersand != -1 and ";" not in head[ampersand:]:
        head = head[:ampersand]
    opening = head.rfind("<")
    if opening != -1 and ">" not in head[opening:]:
        head = head[:opening]
    return head + ELLIPSIS


def cut_plain(text: str, limit: int) -> str:
    """Shorten plain text to `limit` characters with an ellipsis."""
    text = " ".join(text.splitlines())
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(ELLIPSIS))] + ELLIPSIS


def mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, Any]:
    """Build a mrkdwn text object from already escaped text, cut to `limit`."""
    return {"type": "mrkdwn", "text": cut(text, limit) or " "}


def plain_text(text: object, limit: int) -> dict[str, Any]:
    """Build a plain_text object. Slack shows its text as is, so it is not escaped."""
    return {"type": "plain_text", "text": cut_plain(str(text), limit) or " ", "emoji": True}


def button(
    text: str, *, action_id: str, value: str, style: str | None = None
) -> dict[str, Any] | None:
    """Build a button, or None if its value does not fit Slack's 2,000-character limit."""
    if len(value) > MAX_BUTTON_VALUE:
        return None
    element: dict[str, Any] = {
        "type": "button",
        "text": plain_text(text, MAX_BUTTON_TEXT),
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    return element


@dataclass
class SlackMessage:
    """A rendered message: fallback text (mrkdwn, used in notifications) and its blocks."""

    text: str
    blocks: list[dict[str, Any]]

    def as_kwargs(self) -> dict[str, Any]:
        """Return the `text` and `blocks` arguments of chat.postMessage, respond() or ack()."""
        return {"text": self.text, "blocks": self.blocks}


def text_size(blocks: Sequence[dict[str, Any]]) -> int:
    """Count the characters of every text object in the blocks."""
    total = 0
    for block in blocks:
        texts = [block.get("text"), *(block.get("fields") or []), *(block.get("elements") or [])]
        total += sum(len(item.get("text", "")) for item in texts if isinstance(item, dict))
    return total


@dataclass
class BlockBuilder:
    """Collects blocks and keeps the message inside Slack's limits.

    Long lists go through `lines`, which packs them into as many sections as the block and
    text budgets allow and ends with an "and N more" line. `build` is the last guard: a body
    that still has too many blocks or characters loses its tail, replaced by a note saying
    how many blocks were left out. The footer (buttons) is always kept.
    """

    max_blocks: int = MAX_MESSAGE_BLOCKS
    max_text: int | None = MAX_MESSAGE_TEXT
    body: list[dict[str, Any]] = field(default_factory=list)
    footer: list[dict[str, Any]] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        """Blocks still free for the body."""
        return self.max_blocks - len(self.body) - len(self.footer)

    @property
    def remaining_text(self) -> int | None:
        """Characters still free for the body, or None without a text budget."""
        if self.max_text is None:
            return None
        return self.max_text - text_size(self.body) - text_size(self.footer)

    def header(self, text: object) -> None:
        """Add a header block, its plain text cut to 150 characters."""
        self.body.append({"type": "header", "text": plain_text(text, MAX_HEADER_TEXT)})

    def section(self, text: str, *, accessory: dict[str, Any] | None = None) -> None:
        """Add a section of escaped mrkdwn, cut to 3,000 characters."""
        block: dict[str, Any] = {"type": "section", "text": mrkdwn(text)}
        if accessory is not None:
            block["accessory"] = accessory
        self.body.append(block)

    def fields(self, items: Sequence[str]) -> None:
        """Add sections of two-column fields, 10 per section, each cut to 2,000 characters."""
        for start in range(0, len(items), MAX_FIELDS):
            chunk = items[start : start + MAX_FIELDS]
            self.body.append(
                {"type": "section", "fields": [mrkdwn(item, MAX_FIELD_TEXT) for item in chunk]}
            )

    def context(self, items: Sequence[str]) -> None:
        """Add a context line of escaped mrkdwn elements (at most 10)."""
        elements = [mrkdwn(item, MAX_CONTEXT_TEXT) for item in items if item][:MAX_CONTEXT_ELEMENTS]
        if elements:
            self.body.append({"type": "context", "elements": elements})

    def divider(self) -> None:
        """Add a divider."""
        self.body.append({"type": "divider"})

    def actions(self, elements: Sequence[dict[str, Any] | None]) -> None:
        """Put buttons in the footer, which `build` always keeps."""
        kept = [element for element in elements if element is not None]
        if kept:
            self.footer.append({"type": "actions", "elements": kept[:25]})

    def lines(
        self,
        items: Sequence[str],
        *,
        max_blocks: int | None = None,
        more: Callable[[int], str] | None = None,
        reserve: int = 0,
    ) -> int:
        """Pack escaped lines into sections and return how many lines were shown.

        At most `max_blocks` sections are used, and `reserve` blocks (and 1,000 characters
        per reserved block) are left free for what the caller adds afterwards. Lines that do
        not fit are replaced by `more(count)`, such as "and 37 more jobs".
        """
        budget = self.remaining - reserve
        if max_blocks is not None:
            budget = min(budget, max_blocks)
        characters = self.remaining_text
        if characters is not None:
            characters -= reserve * 1000 + MORE_LINE_ROOM
        if budget <= 0 or not items or (characters is not None and characters <= 0):
            return 0
        more = more or (lambda count: f"and {count} more")

        sections: list[list[str]] = [[]]
        size = 0
        used = 0
        shown = 0
        for item in items:
            line = cut(item, MAX_SECTION_TEXT - MORE_LINE_ROOM)
            needed = len(line) + (1 if sections[-1] else 0)
            if characters is not None and used + needed > characters:
                break
            if size + needed > MAX_SECTION_TEXT - MORE_LINE_ROOM:
                if len(sections) >= budget:
                    break
                sections.append([])
                size = 0
                needed = len(line)
            sections[-1].append(line)
            size += needed
            used += needed
            shown += 1

        hidden = len(items) - shown
        if hidden:
            sections[-1].append(f"_{escape(more(hidden))}_")
        for chunk in sections:
            if chunk:
                self.section("\n".join(chunk))
        return shown

    def build(self, fallback: str) -> SlackMessage:
        """Return the message, its body cut to the block and text budgets and its fallback to 4,000."""
        body = list(self.body)
        room = self.max_blocks - len(self.footer)
        # Room for the note that replaces the blocks left out.
        text_room = None if self.max_text is None else self.max_text - text_size(self.footer) - 100
        kept = body[:room]
        while kept and (
            len(kept) > room or (text_room is not None and text_size(kept) > text_room)
        ):
            kept.pop()
        if len(kept) < len(body):
            kept = kept[: room - 1]
            left_out = len(body) - len(kept)
            note = f"_{left_out} more blocks were left out to fit Slack's limits._"
            kept.append({"type": "context", "elements": [mrkdwn(note)]})
        return SlackMessage(text=cut(fallback, MAX_FALLBACK_TEXT), blocks=kept + self.footer)


STATUS_ICONS = {
    "success": ":white_check_mark:",
    "failure": ":x:",
    "timed_out": ":x:",
    "startup_failure": ":x:",
    "action_required": ":warning:",
    "cancelled": ":no_entry_sign:",
    "skipped": ":fast_forward:",
    "neutral": ":white_circle:",
    "stale": ":white_circle:",
    "in_progress": ":hourglass_flowing_sand:",
    "queued": ":clock3:",
    "waiting": ":clock3:",
    "pending": ":clock3:",
    "requested": ":clock3:",
    # Release dashboard statuses (storage.models_release.PublishStatus).
    "completed": ":white_check_mark:",
    "failed": ":x:",
    "partial": ":large_orange_circle:",
}


def status_icon(status: str | None, conclusion: str | None = None) -> str:
    """Return the emoji for a status, or for the conclusion once completed."""
    key = conclusion if status == "completed" and conclusion else status
    return STATUS_ICONS.get(key or "", ":grey_question:")


def status_word(status: str | None, conclusion: str | None = None) -> str:
    """Return `success`, `in progress` and the like: the conclusion once completed, else the status."""
    word = conclusion if status == "completed" and conclusion else status
    return (word or "unknown").replace("_", " ")


def format_duration(seconds: float | None) -> str:
    """Format seconds as `42s`, `5m 12s`, `2h 3m` or `1d 12h`, or `-` when unknown."""
    if seconds is None:
        return "-"
    total = max(0, round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def format_signed_duration(seconds: float) -> str:
    """Format a difference of durations with its sign, such as `+42s` or `-1m 5s`."""
    sign = "+" if seconds >= 0 else "-"
    return sign + format_duration(abs(seconds))


def format_time(value: datetime | None) -> str:
    """Format a UTC time as `2024-06-03 10:00 UTC`, or `-` when unknown."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def count_of(count: int, noun: str, plural: str | None = None) -> str:
    """Write `1 job` or `3 jobs`. `plural` is for nouns not made plural by adding `s`."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def format_percent(fraction: float | None) -> str:
    """Format a fraction as a percentage with one decimal, such as `12.5%`."""
    if fraction is None:
        return "-"
    return f"{fraction * 100:.1f}%"
