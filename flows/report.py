"""A batch's outcome as people read it: the catalog's view of the jobs, in Prefect artifacts.

Everything here is read back from the catalog after the tasks ran, not collected from task
results, so a retried flow run reports on the jobs of its earlier attempts as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from db.models import ArtifactKind, JobStatus, RunStatus
from db.queries import show_job
from tasks.workshop import Workshop


@dataclass(frozen=True)
class JobLine:
    """One job's outcome: what the summary, the table and the contact sheet show."""

    job_id: int
    status: str
    method: str
    size: int | None
    content: str
    styles: str
    seconds: float | None
    output_uri: str | None
    thumbnail_uri: str | None
    error: str | None

    @property
    def caption(self) -> tuple[str, str]:
        """Two short lines for the contact sheet."""
        outcome = f"{self.seconds:.1f} s" if self.seconds is not None else (self.error or self.status).split(":")[0]
        return (f"#{self.job_id} {self.content} x {self.styles}", f"{self.method} {self.size or '?'} px · {outcome}")


@dataclass(frozen=True)
class BatchReport:
    """The outcome of a flow run's jobs; `contact_sheet` is a store URI, `contact_sheet_at` where to open it."""

    name: str
    lines: tuple[JobLine, ...]
    contact_sheet: str | None = None
    contact_sheet_at: str | None = None

    @property
    def succeeded(self) -> list[JobLine]:
        return [line for line in self.lines if line.status == JobStatus.SUCCEEDED]

    @property
    def failed(self) -> list[JobLine]:
        return [line for line in self.lines if line.status != JobStatus.SUCCEEDED]

    def headline(self) -> str:
        return f"{self.name}: {len(self.succeeded)} of {len(self.lines)} jobs succeeded"

    def failure_summary(self) -> str:
        reasons = "; ".join(f"job {line.job_id}: {line.error or line.status}" for line in self.failed)
        return f"{len(self.failed)} of {len(self.lines)} jobs failed: {reasons}"


class BatchFailed(Exception):
    """Raised at the end of a flow run in which some jobs failed, after all others finished.

    Carries the report, so the CLI can print it from the flow run's final state.
    """

    def __init__(self, report: BatchReport) -> None:
        super().__init__(report.failure_summary())
        self.report = report

    def __reduce__(self) -> tuple[Any, ...]:
        return (BatchFailed, (self.report,))


def describe_jobs(workshop: Workshop, name: str, job_ids: list[int]) -> BatchReport:
    """Read the current outcome of `job_ids` from the catalog."""
    with workshop.catalog.reader() as session:
        lines = tuple(_line(show_job(session, job_id)) for job_id in sorted(set(job_ids)))
    return BatchReport(name=name, lines=lines)


def _line(job: dict[str, Any]) -> JobLine:
    runs = job["runs"]
    last = next((run for run in reversed(runs) if run["status"] == RunStatus.SUCCEEDED), runs[-1] if runs else None)
    artifacts = {a["kind"]: a["uri"] for a in (last or {}).get("artifacts", [])}
    method = job["method"] + (f"+{job['params']['preserve_color']}" if job["params"].get("preserve_color") else "")
    error = f"{job['last_error_type']}: {job['last_error_message']}" if job["last_error_type"] else None
    return JobLine(
        job_id=job["id"],
        status=job["status"],
        method=method,
        size=job["params"].get("size"),
        content=_title(job["content"]),
        styles=" + ".join(_title(style) for style in job["styles"]),
        seconds=last["duration_s"] if last else None,
        output_uri=artifacts.get(ArtifactKind.OUTPUT),
        thumbnail_uri=artifacts.get(ArtifactKind.THUMBNAIL),
        error=error,
    )


def _title(image: dict[str, Any]) -> str:
    return image["title"] or f"image {image['id']}"


def markdown_summary(report: BatchReport) -> str:
    """The run's front page in the Prefect UI: counts, the contact sheet, failures, outputs."""
    parts = [f"# {report.headline()}", ""]
    if report.contact_sheet:
        parts += [f"Contact sheet: `{report.contact_sheet}`", "", f"![contact sheet]({report.contact_sheet_at})", ""]
    if report.failed:
        parts += ["## Failed", ""]
        parts += [f"- job {line.job_id} ({line.content} × {line.styles}): {line.error or line.status}" for line in report.failed]
        parts.append("")
    if report.succeeded:
        parts += ["## Results", ""]
        parts += [f"- job {line.job_id} ({line.content} × {line.styles}, {line.method}): `{line.output_uri}`" for line in report.succeeded]
    return "\n".join(parts)


def table_rows(report: BatchReport) -> list[dict[str, Any]]:
    """One row per job for the Prefect table artifact."""
    return [
        {
            "job": line.job_id,
            "status": line.status,
            "content": line.content,
            "style": line.styles,
            "method": line.method,
            "size": line.size,
            "seconds": round(line.seconds, 2) if line.seconds is not None else None,
            "link": line.output_uri or "",
            "error": line.error or "",
        }
        for line in report.lines
    ]


def publish(report: BatchReport, key_prefix: str) -> None:
    """Create the markdown summary and the jobs table as Prefect artifacts of this flow run."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_markdown_artifact(markdown_summary(report), key=f"{key_prefix}-summary", description=report.headline())
    create_table_artifact(table_rows(report), key=f"{key_prefix}-jobs", description=f"{report.name}: jobs")
