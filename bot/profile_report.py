"""Text and Markdown reports of a BuildProfile; stage names go through the project's escapers."""

from __future__ import annotations

from bot.profile_types import BuildProfile, StageProfile
from bot.render.plain import format_duration, printable
from bot.render_markdown import escape

BOTTLENECK_THRESHOLD = 0.1
MAX_TEXT_LABEL = 60
ELLIPSIS = "…"


def percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def summary_line(profile: BuildProfile) -> str:
    """Return the wall time, stage time, parallelism, critical path and waiting time in one line."""
    parallelism = f"{profile.parallelism:.2f}x" if profile.parallelism is not None else "-"
    return (
        f"wall time {format_duration(profile.wall_time)}, stage time {format_duration(profile.stage_time)} "
        f"(parallelism {parallelism}), critical path {format_duration(profile.critical_path_time)}, "
        f"waiting {format_duration(profile.waiting_time)}"
    )


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def bottlenecks(profile: BuildProfile) -> list[StageProfile]:
    """Return the critical-path stages at or above the report's threshold, largest first."""
    return sorted(
        (item for item in profile.critical_path if item.share >= BOTTLENECK_THRESHOLD),
        key=lambda item: -item.share,
    )


def text_label(label: str, depth: int) -> str:
    clean = printable(label)
    if len(clean) > MAX_TEXT_LABEL:
        clean = clean[: MAX_TEXT_LABEL - 1] + ELLIPSIS
    return "  " * depth + clean


def render_text(profile: BuildProfile, *, title: str) -> str:
    """Render the profile as a plain-text table for a terminal or a CI log."""
    rows: list[tuple[str, str, str, str, str]] = []

    def add(item: StageProfile, depth: int) -> None:
        marker = "*" if item.on_critical_path else ""
        share = percent(item.share) if depth == 0 else ""
        wall_share = percent(item.wall_share) if depth == 0 else ""
        rows.append((text_label(item.label, depth), format_duration(item.duration), share, wall_share, marker))
        for child in item.children:
            add(child, depth + 1)

    for item in profile.stages:
        add(item, 0)

    header = ("Stage", "Duration", "Share", "Wall share", "Critical")
    widths = [max(len(row[index]) for row in [header, *rows]) for index in range(len(header))]
    lines = [f"Build profile: {printable(title)}", sentence(summary_line(profile)), ""]
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(widths[i + 1]) for i, cell in enumerate(row[1:])]
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    found = bottlenecks(profile)
    if found:
        lines.append(f"Bottlenecks (at least {percent(BOTTLENECK_THRESHOLD)} of the wall time on the critical path):")
        lines.extend(
            f"  {text_label(item.label, 0)}: {format_duration(item.duration)}, {percent(item.share)}" for item in found
        )
    else:
        lines.append("No stage takes 10% or more of the wall time on the critical path.")
    lines.append("Share: a stage's time on the critical path over the wall time (0 off the path).")
    return "\n".join(lines)


def render_markdown(profile: BuildProfile, *, title: str) -> str:
    """Render the profile as GitHub Markdown; every stage name is escaped."""
    lines = [
        f"### Build profile: {escape(title)}",
        "",
        sentence(summary_line(profile)) + ".",
        "",
        "| Stage | Duration | Share | Wall share | Critical path |",
        "|---|---:|---:|---:|:---:|",
    ]

    def add(item: StageProfile, depth: int) -> None:
        indent = "&nbsp;&nbsp;↳ " * min(depth, 1)
        share = percent(item.share) if depth == 0 else ""
        wall_share = percent(item.wall_share) if depth == 0 else ""
        marker = "✔" if item.on_critical_path else ""
        lines.append(f"| {indent}{escape(item.label)} | {format_duration(item.duration)} | {share} | {wall_share} | {marker} |")
        for child in item.children:
            add(child, depth + 1)

    for item in profile.stages:
        add(item, 0)
    lines.append("")
    found = bottlenecks(profile)
    if found:
        names = ", ".join(f"{escape(item.label)} ({percent(item.share)})" for item in found)
        lines.append(f"**Bottlenecks** (at least {percent(BOTTLENECK_THRESHOLD)} of the wall time on the critical path): {names}")
    else:
        lines.append("No stage takes 10% or more of the wall time on the critical path.")
    lines.append("")
    lines.append("_Share: a stage's time on the critical path over the wall time (0 off the path)._")
    return "\n".join(lines)
