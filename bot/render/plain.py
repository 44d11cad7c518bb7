"""Plain-text helpers shared by the terminal tables and the text alerts: values shown literally,
and durations in the Slack messages' format. No rich import, so senders can use them cheaply."""

from __future__ import annotations

import math
import unicodedata

EMPTY = "-"


def printable(value: object) -> str:
    """Return the text with control and bidirectional-format characters shown as escapes.

    A raw escape sequence in a branch name would otherwise move the cursor or recolour the
    terminal, and a right-to-left override would display the text reversed.
    """
    if value is None:
        return EMPTY
    text = str(value)
    return "".join(
        f"\\u{ord(char):04x}" if unicodedata.category(char) in ("Cc", "Cf") else char
        for char in text
    )


def format_duration(seconds: float | None) -> str:
    """Format seconds as `42s`, `5m 12s` or `2h 3m`, like the Slack messages; `-` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return EMPTY
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def result_of(status: str | None, conclusion: str | None) -> str:
    """Return the conclusion of finished work, else its status."""
    if status == "completed" and conclusion:
        return conclusion
    return status or EMPTY
