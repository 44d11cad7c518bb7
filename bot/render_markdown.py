"""The one place GitHub Markdown is written: escaping of run text and the comment size limit.

Every name that comes from a run (workflow, job, step, branch) goes through `escape`, which
turns the characters Markdown or HTML would read (`| ` [ ] < > & * _ ~ # @ $ \\ !`) into HTML
entities and newlines into spaces, so a job called `a | b` or `<img>` cannot break a table,
inject markup, mention anyone or start a formula. Names in the Mermaid timeline go through
`mermaid_label`, which keeps only characters Mermaid's gantt grammar reads as plain text.

Limits: GitHub rejects an issue comment body over 65,536 characters, so the body is built
against a budget counted in UTF-8 bytes (never fewer than characters), and a note names
what was left out. Mermaid refuses diagrams over `maxTextSize` (50,000 characters by default, Mermaid's
config schema), so the timeline is capped far below that, in bars and in characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.build_profile import FASTER, SLOWER, Comparison, JobTiming, WorkflowProfile
from bot.repo_config import CONFIG_PATH, STAGES, ConfigProblem

MARKER = "<!-- release-bot:build-profile -->"
MAX_COMMENT_CHARS = 65_536
# Bytes kept free below GitHub's limit for the notes about what was left out.
NOTE_RESERVE = 600
# Below this many bytes a workflow's details are left out whole.
MIN_DETAILS_BYTES = 1_000
MAX_NAME_CHARS = 120
MAX_LISTED_NAMES = 8
MAX_PATH_NAMES = 12
SLOW_JOBS_WITH_STEPS = 3
MAX_STEPS_PER_JOB = 40
MAX_GANTT_BARS = 40
MAX_GANTT_CHARS = 8_000
ELLIPSIS = "…"

ENTITIES = {
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "|": "&#124;", "`": "&#96;",
    "[": "&#91;", "]": "&#93;", "\\": "&#92;", "*": "&#42;", "_": "&#95;", "~": "&#126;",
    "#": "&#35;", "@": "&#64;", "$": "&#36;", "!": "&#33;",
}
# C0 controls, DEL and the bidirectional overrides that can make text read differently.
CONTROL = re.compile("[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
# Words that start a statement in Mermaid's gantt grammar; a label starting with one is prefixed.
GANTT_KEYWORDS = (
    "gantt", "dateformat", "inclusiveenddates", "topaxis", "axisformat", "tickinterval", "includes",
    "excludes", "todaymarker", "weekday", "title", "accdescription", "acctitle", "accdescr",
    "section", "click", "href", "call",
)
GANTT_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
ICONS = {"success": "✅", "failure": "❌", "timed_out": "❌", "startup_failure": "❌", "cancelled": "⚪", "skipped": "⚪"}


def size_of(text: str) -> int:
    """Return the size counted against the comment limit: UTF-8 bytes, at least the characters."""
    return len(text.encode("utf-8"))


def escape(text: str | None, *, max_chars: int = MAX_NAME_CHARS) -> str:
    """Make run text safe in Markdown and HTML: one line, entities for special characters."""
    if not text:
        return ""
    clean = CONTROL.sub(" ", text).strip()
    if len(clean) > max_chars:
        clean = clean[: max_chars - 1] + ELLIPSIS
    return "".join(ENTITIES.get(char, char) for char in clean)


def mermaid_label(text: str, *, max_chars: int = 60) -> str:
    """Reduce a name to letters, digits and plain punctuation that Mermaid reads as a task name."""
    kept = "".join(char if char.isalnum() or char in " .,()/+-=" else " " for char in text)
    label = " ".join(kept.split())[:max_chars] or "job"
    if label.lower().startswith(GANTT_KEYWORDS) or GANTT_DATE.match(label):
        label = f"job {label}"
    return label


def format_duration(seconds: float | None) -> str:
    """Format seconds as `42s`, `5m 12s` or `1h 3m`."""
    if seconds is None:
        return "–"
    total = round(max(0.0, seconds))
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m {total % 60}s"
    return f"{total // 3600}h {total % 3600 // 60}m"


def format_change(comparison: Comparison) -> str:
    """Format a comparison as `+45s (+52%)`."""
    sign = "+" if comparison.delta_s >= 0 else "-"
    text = f"{sign}{format_duration(abs(comparison.delta_s))}"
    if comparison.change is not None:
        text += f" ({sign}{abs(comparison.change) * 100:.0f}%)"
    return text


def icon(conclusion: str | None, status: str) -> str:
    """Return the icon of a job or run result."""
    if status != "completed":
        return "⏳"
    return ICONS.get(conclusion or "", "⚪")


def name_list(names: Sequence[str], limit: int = MAX_LISTED_NAMES, separator: str = ", ") -> str:
    """Join escaped names, ending with `and N more` past the limit."""
    shown = separator.join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


@dataclass
class Budget:
    """The bytes left for the comment body."""

    remaining: int

    def take(self, text: str) -> bool:
        """Spend the size of `text` if it fits; return whether it did."""
        size = size_of(text)
        if size > self.remaining:
            return False
        self.remaining -= size
        return True


@dataclass
class CommentView:
    """Everything the build-profile comment shows."""

    head_sha: str
    workflows: list[WorkflowProfile]
    config_problems: list[ConfigProblem] = field(default_factory=list)
    timeline: bool = True


# --- summary ------------------------------------------------------------------------------


def render_summary(profile: WorkflowProfile) -> str:
    """Render the always-visible part of a workflow's section: its title and summary list."""
    run = f"run {profile.run_number}" if profile.run_number is not None else f"run {profile.run_id}"
    if profile.attempt > 1:
        run += f", attempt {profile.attempt}"
    event = f" ({escape(profile.event)})" if profile.event else ""
    result = profile.conclusion if profile.status == "completed" else "in progress"
    title = f"#### {icon(profile.conclusion, profile.status)} {escape(profile.workflow_name)}{event} · {run} · {escape(result)}"
    url = safe_url(profile.html_url)
    if url:
        title += f" · [logs]({url})"

    ran = sum(1 for job in profile.jobs if job.has_run)
    times = (
        f"Wall time **{format_duration(profile.wall_s)}** · jobs waited **{format_duration(profile.queue_s)}** "
        f"in the queue (longest wait {format_duration(profile.max_queue_s)}) and ran "
        f"**{format_duration(profile.execution_s)}** on runners, summed over {ran} of {len(profile.jobs)} jobs"
    )
    lines = [
        times,
        *render_comparison_lines(profile),
        render_bottlenecks(profile),
        render_critical_path(profile),
    ]
    return title + "\n\n" + "".join(f"- {line}\n" for line in lines if line)


def safe_url(url: str | None) -> str | None:
    """Return an https URL that cannot break out of a Markdown link, or None."""
    if not url or not url.startswith("https://") or re.search(r"[\s()<>\[\]`\\]", url):
        return None
    return url


def render_bottlenecks(profile: WorkflowProfile) -> str:
    """Render the longest jobs with their share of the wall time and their slowest step."""
    parts = []
    for bottleneck in profile.bottlenecks:
        job = bottleneck.job
        part = f"**{escape(job.name)}** {format_duration(job.duration_s)} ({bottleneck.share * 100:.0f}% of the wall time"
        step = bottleneck.slowest_step
        if step is not None:
            part += f", slowest step {escape(step.name)} {format_duration(step.duration_s)}"
        parts.append(part + ")")
    return "Bottlenecks: " + "; ".join(parts) if parts else ""


def render_critical_path(profile: WorkflowProfile) -> str:
    """Render the estimated critical path as job names joined by arrows."""
    if len(profile.critical_path) < 2:
        return ""
    names = [f"**{escape(job.name)}**" for job in profile.critical_path]
    if len(names) > MAX_PATH_NAMES:
        names = [*names[: MAX_PATH_NAMES - 1], f"{ELLIPSIS} ({len(names) - MAX_PATH_NAMES} more)", names[-1]]
    path_time = sum(job.duration_s or 0.0 for job in profile.critical_path)
    return (
        f"Critical path (estimated from job start and end times): {' → '.join(names)}, "
        f"{format_duration(path_time)} of execution"
    )


def render_comparison_lines(profile: WorkflowProfile) -> list[str]:
    """Render the lines comparing the run with the base branch, or the reason there is no comparison."""
    if profile.base_branch is None or profile.status != "completed":
        return []
    branch = f"**{escape(profile.base_branch)}**"
    if not profile.comparisons and profile.run_comparison is None:
        return [f"No comparison with {branch}: {profile.baseline_runs} successful runs of this workflow are stored for it."]
    by_id = {job.id: job for job in profile.jobs}
    slower = [(by_id[job_id], c) for job_id, c in profile.comparisons.items() if c.verdict == SLOWER]
    faster = [(by_id[job_id], c) for job_id, c in profile.comparisons.items() if c.verdict == FASTER]
    head = f"Against the median of the last {profile.baseline_runs} successful runs on {branch}: "
    head += f"**{len(slower)} slower**, {len(faster)} faster"
    if profile.run_comparison is not None:
        head += f"; whole run {format_change(profile.run_comparison)}"
    lines = [head]
    for label, entries in (("🔺 Slower", slower), ("🔻 Faster", faster)):
        entries.sort(key=lambda entry: abs(entry[1].delta_s), reverse=True)
        if entries:
            names = [f"**{escape(job.name)}** {format_change(c)}" for job, c in entries]
            lines.append(f"{label}: {name_list(names)}")
    return lines


# --- details ------------------------------------------------------------------------------


def job_row(job: JobTiming, comparison: Comparison | None) -> str:
    """Render one row of the jobs table."""
    versus = "–"
    if comparison is not None:
        mark = {SLOWER: "🔺 ", FASTER: "🔻 "}.get(comparison.verdict, "")
        versus = f"{mark}{format_change(comparison)}"
    return (
        f"| {escape(job.name)} | {escape(job.stage)} | {icon(job.conclusion, job.status)} "
        f"| {format_duration(job.queue_s)} | {format_duration(job.duration_s)} | {versus} |\n"
    )


def render_job_table(profile: WorkflowProfile, allowance: int) -> tuple[str, int]:
    """Render the jobs table, slowest first, within `allowance` bytes; return it and how many jobs were left out."""
    branch = escape(profile.base_branch) if profile.base_branch else "base"
    head = (
        f"<details><summary>Jobs ({len(profile.jobs)})</summary>\n\n"
        f"| Job | Stage | Result | Queue | Duration | vs {branch} |\n| --- | --- | --- | ---: | ---: | ---: |\n"
    )
    tail = "\n</details>\n"
    budget = Budget(allowance - size_of(tail))
    if not budget.take(head):
        return "", len(profile.jobs)
    rows = []
    ordered = sorted(profile.jobs, key=lambda job: job.duration_s or 0.0, reverse=True)
    for job in ordered:
        row = job_row(job, profile.comparisons.get(job.id))
        if not budget.take(row):
            break
        rows.append(row)
    return head + "".join(rows) + tail, len(profile.jobs) - len(rows)


def render_steps(profile: WorkflowProfile, allowance: int) -> tuple[str, int]:
    """Render the steps of the slowest jobs within `allowance` bytes; return it and how many steps were left out."""
    slowest = sorted((job for job in profile.jobs if job.steps), key=lambda job: job.duration_s or 0.0, reverse=True)
    head = "<details><summary>Steps of the slowest jobs</summary>\n"
    tail = "\n</details>\n"
    budget = Budget(allowance - size_of(tail))
    if not slowest or not budget.take(head):
        return "", sum(len(job.steps) for job in slowest[:SLOW_JOBS_WITH_STEPS])
    parts = [head]
    left_out = 0
    for job in slowest[:SLOW_JOBS_WITH_STEPS]:
        # Keep the job's longest steps, then list them in the order they ran.
        longest = sorted(job.steps, key=lambda step: step.duration_s or 0.0, reverse=True)[:MAX_STEPS_PER_JOB]
        title = f"**{escape(job.name)}** ({format_duration(job.duration_s)})"
        if len(job.steps) > len(longest):
            title += f", the {len(longest)} longest of {len(job.steps)} steps"
        job_head = f"\n{title}\n\n| # | Step | Result | Duration |\n| ---: | --- | --- | ---: |\n"
        if not budget.take(job_head):
            left_out += len(longest)
            continue
        parts.append(job_head)
        for step in sorted(longest, key=lambda step: step.number):
            stage = f" ({escape(step.stage)})" if step.stage else ""
            result = icon(step.conclusion, "completed" if step.conclusion else "")
            row = f"| {step.number} | {escape(step.name)}{stage} | {result} | {format_duration(step.duration_s)} |\n"
            if budget.take(row):
                parts.append(row)
            else:
                left_out += 1
    return "".join(parts) + tail, left_out


def render_timeline(profile: WorkflowProfile) -> str:
    """Render a Mermaid gantt chart of the jobs, at most MAX_GANTT_BARS bars and MAX_GANTT_CHARS characters.

    Bars use Unix seconds (`dateFormat X`), so the axis shows each reader's local clock time.
    """
    ran = [job for job in profile.jobs if job.has_run]
    on_path = {job.id for job in profile.critical_path}
    chosen = sorted(ran, key=lambda job: (job.id not in on_path, -(job.duration_s or 0.0)))[:MAX_GANTT_BARS]
    chosen.sort(key=lambda job: (job.started_at, job.id))  # type: ignore[arg-type, return-value]

    lines = ["gantt", "    dateFormat X", "    axisFormat %H:%M:%S"]
    shown = 0
    for stage in STAGES:
        section = [f"    section {stage}"]
        for job in chosen:
            if job.stage != stage or job.started_at is None or job.completed_at is None:
                continue
            start = int(job.started_at.timestamp())
            end = max(start + 1, int(job.completed_at.timestamp()))
            tag = "crit" if job.id in on_path else "done"
            section.append(f"    {mermaid_label(job.name)} :{tag}, j{job.id}, {start}, {end}")
        if len(section) == 1:
            continue
        if sum(len(line) + 1 for line in [*lines, *section]) > MAX_GANTT_CHARS:
            break
        lines += section
        shown += len(section) - 1
    if shown == 0:
        return ""

    note = ""
    if shown < len(ran):
        note = f"\nThe timeline shows {shown} of the {len(ran)} jobs that ran: the critical path first, then the longest.\n"
    chart = "\n".join(lines)
    return f"<details><summary>Timeline</summary>\n\n```mermaid\n{chart}\n```\n{note}\n</details>\n"


def render_details(profile: WorkflowProfile, allowance: int, *, timeline: bool) -> str:
    """Render the folded parts of a workflow's section within `allowance` bytes ("" if too small).

    The timeline and the steps may each use up to a quarter of the allowance. The job table
    gets the rest, because its rows can be cut one by one.
    """
    if allowance < MIN_DETAILS_BYTES:
        return ""
    budget = Budget(allowance - NOTE_RESERVE // 2)
    notes = []
    chart = render_timeline(profile) if timeline else ""
    if chart and (size_of(chart) > allowance // 4 or not budget.take(chart)):
        notes.append("the timeline was left out")
        chart = ""
    steps, steps_left_out = render_steps(profile, min(budget.remaining, allowance // 4))
    budget.take(steps)
    if steps_left_out:
        notes.append(f"{steps_left_out} steps of the slowest jobs are not listed")
    table, jobs_left_out = render_job_table(profile, budget.remaining)
    if not table and profile.jobs:
        notes.insert(0, "the job table was left out")
    elif jobs_left_out:
        notes.insert(0, f"{jobs_left_out} of {len(profile.jobs)} jobs (the shortest) are not in the table")
    parts = [table, steps, chart]
    if notes:
        sentence = "; ".join(notes)
        parts.append(f"_{sentence[0].upper()}{sentence[1:]}, to keep this comment within GitHub's {MAX_COMMENT_CHARS:,}-character limit._\n")
    # Blank lines around each block: an HTML block such as <details> runs until a blank line.
    return "".join(f"\n{part}" for part in parts if part)


# --- the whole comment --------------------------------------------------------------------


def render_config_problems(problems: list[ConfigProblem]) -> str:
    """Render a warning that names each invalid configuration key and the reason."""
    if not problems:
        return ""
    lines = [f"> [!WARNING]\n> `{CONFIG_PATH}` is invalid, so the last valid configuration (or the default one) is in force:"]
    for problem in problems[:10]:
        lines.append(f"> - {escape(problem.key)}: {escape(problem.reason, max_chars=300)}")
    if len(problems) > 10:
        lines.append(f"> - and {len(problems) - 10} more problems")
    return "\n".join(lines) + "\n\n"


def render_build_profile(view: CommentView) -> str:
    """Render the build-profile comment, at most MAX_COMMENT_CHARS characters."""
    header = f"{MARKER}\n### Build profile of {escape(view.head_sha[:12])}\n\n{render_config_problems(view.config_problems)}"
    footer = "\n<sub>release-bot updates this comment when a workflow run of this pull request completes.</sub>\n"
    budget = Budget(MAX_COMMENT_CHARS - size_of(header) - size_of(footer) - NOTE_RESERVE)
    if not view.workflows:
        return header + "No workflow run of this commit is stored yet.\n" + footer

    summaries = []
    for profile in view.workflows:
        summary = render_summary(profile)
        if not budget.take(summary):
            break
        summaries.append(summary)
    sections = []
    without_details = 0
    for index, summary in enumerate(summaries):
        allowance = budget.remaining // (len(summaries) - index) - 1
        details = render_details(view.workflows[index], allowance, timeline=view.timeline)
        budget.take(details + "\n")
        sections.append(summary + details + "\n")
        without_details += not details
    omitted = len(view.workflows) - len(summaries)
    notes = []
    if omitted:
        notes.append(f"{omitted} more workflows are not shown")
    if without_details:
        notes.append(f"the job tables of {without_details} workflows are left out")
    note = ""
    if notes:
        sentence = "; ".join(notes)
        note = f"\n_{sentence[0].upper()}{sentence[1:]}, to keep this comment within GitHub's {MAX_COMMENT_CHARS:,}-character limit._\n"
    return header + "".join(sections) + note + footer
