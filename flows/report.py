"""A batch's outcome as people read it: the catalog's view of the jobs, in Prefect artifacts.

Everything here is read back from the catalog after the tasks ran, not collected from task
results, so a retried flow run reports on the jobs of its earlier attempts as well.

The report never takes the run down: by the time it is made, every job's outcome is in
the catalog. A thumbnail that cannot be read becomes a placeholder tile, a contact sheet or
an artifact that cannot be written becomes a note in the summary, and the flow run's state
(and the CLI's exit code) still follows the jobs alone.

Prefect keeps artifacts for good, so they hold no link that dies: no presigned URL (it
expires), no local path or file:// link (a browser page cannot open it). They name each
output by its artwork id with the `atelier` command that fetches it, and link pictures
only through `ATELIER_STORE_PUBLIC_URL`, a permanent address the store is served at. When
`ATELIER_WEB_URL` names where the gallery web app (`atelier web`) is served, each artwork
links to its page there, and the failures to the gallery's list of failed jobs: pages by
catalog id, which stay valid as long as the catalog does.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Any

from db.models import ArtifactKind, JobStatus, RunStatus
from db.queries import show_job
from db.text import display_text
from tasks.workshop import Workshop

TITLE_LIMIT = 40  # characters of a title in captions, tables and artifacts
ERROR_LIMIT = 160  # characters of an error in the jobs table (the summary has it whole)


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
    artwork_id: int | None = None
    error_type: str | None = None
    # (role, id, title, sha256) of each input image, to name an image that an error quotes by its key
    inputs: tuple[tuple[str, int, str, str], ...] = ()
    film: bool = False  # planned into segments: the fleet renders it, and any host may be assembling it

    @property
    def with_the_fleet(self) -> bool:
        """A film whose segments or assembly are under way (on any host): not this run's failure."""
        return self.film and self.status in (JobStatus.WAITING, JobStatus.RUNNING)

    @property
    def caption(self) -> tuple[str, str]:
        """Two short lines for the contact sheet."""
        outcome = f"{self.seconds:.1f} s" if self.seconds is not None else (self.error_type or self.status)
        return (f"#{self.job_id} {self.content} x {self.styles}", f"{self.method} {self.size or '?'} px · {outcome}")


@dataclass(frozen=True)
class BatchReport:
    """The outcome of a flow run's jobs.

    `contact_sheet` is a store URI and `contact_sheet_at` where this machine can open it (a
    path, or a presigned URL for the CLI's output only); `notes` say what the report could not
    show and why.
    """

    name: str
    lines: tuple[JobLine, ...]
    contact_sheet: str | None = None
    contact_sheet_at: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def succeeded(self) -> list[JobLine]:
        return [line for line in self.lines if line.status == JobStatus.SUCCEEDED]

    @property
    def failed(self) -> list[JobLine]:
        return [line for line in self.lines if line.status != JobStatus.SUCCEEDED and not line.with_the_fleet]

    @property
    def waiting(self) -> list[JobLine]:
        """Films planned into segments that the fleet is rendering (assembled after the last one)."""
        return [line for line in self.lines if line.with_the_fleet]

    def headline(self) -> str:
        films = f", {len(self.waiting)} films with the fleet (segments or assembly under way)" if self.waiting else ""
        return f"{self.name}: {len(self.succeeded)} of {len(self.lines)} jobs succeeded{films}"

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
    artifacts = {a["kind"]: a for a in (last or {}).get("artifacts", [])}
    output = artifacts.get(ArtifactKind.OUTPUT)
    thumbnail = artifacts.get(ArtifactKind.THUMBNAIL)
    method = job["method"] + (f"+{job['params']['preserve_color']}" if job["params"].get("preserve_color") else "")
    error = f"{job['last_error_type']}: {job['last_error_message']}" if job["last_error_type"] else None
    return JobLine(
        job_id=job["id"],
        status=job["status"],
        method=method,
        size=job["params"].get("size"),
        content=image_label(job["content"]),
        styles=" + ".join(image_label(style) for style in job["styles"]),
        seconds=last["duration_s"] if last else None,
        output_uri=output["uri"] if output else None,
        thumbnail_uri=thumbnail["uri"] if thumbnail else None,
        error=display_text(error, 1000) or None,
        artwork_id=output["id"] if output else None,
        error_type=job["last_error_type"],
        inputs=tuple((role, image["id"], image_label(image), image["sha256"])
                     for role, image in [("content", job["content"]), *(("style", s) for s in job["styles"])]),
        film=bool(job.get("segments")),
    )


# What to do about the expected failures, by error type ({job} is the job id).
FIXES = {
    "ChecksumMismatch": "add the original file again (`atelier catalog add FILE --role ROLE` restores the stored "
                        "copy), then `atelier jobs rerun-failed --job {job}`",
    "ObjectNotFound": "add the original file again (`atelier catalog add FILE --role ROLE` restores the stored "
                      "copy), then `atelier jobs rerun-failed --job {job}`",
    "StorageUnavailable": "check that the store (ATELIER_STORE_URL, ATELIER_S3_ENDPOINT_URL) answers, then "
                          "`atelier jobs rerun-failed --job {job}`",
    "StorageConfigError": "fix the store settings (bucket, credentials; `atelier config`), then "
                          "`atelier jobs rerun-failed --job {job}`",
    "StorageWriteError": "free space or fix permissions where the store writes, then "
                         "`atelier jobs rerun-failed --job {job}`",
    "CatalogUnavailable": "check that the catalog database answers, then `atelier jobs rerun-failed --job {job}`",
    "InvalidInputError": "the image or parameters are refused: see `atelier jobs show {job}`; add a corrected job "
                         "with `atelier jobs add` (and `atelier jobs cancel {job}`)",
    "OptimizationError": "the loss diverged: add the job again with smaller weights or learning rate "
                         "(`atelier jobs add ... --param style_weight=...`)",
    "LeaseExpired": "its worker died; `atelier jobs rerun-failed --job {job}` runs it again",
}
# Errors about what an input holds (e.g. "frame range ... is outside the clip"): the input was read and
# refused, so its words are the reason. Any other error quoting an input's key is about the stored copy.
INPUT_ERRORS = frozenset({"InvalidInputError"})
DEFAULT_FIX = "see `atelier jobs show {job}` (with the traceback); rerun with `atelier jobs rerun-failed --job {job}`"


def explain_failure(line: JobLine) -> tuple[str, str]:
    """One line on why a job failed, naming input images by id and title instead of the
    store keys that errors quote, and one on how to fix it."""
    reason = line.error or line.status
    for role, image_id, title, sha256 in line.inputs:
        if not sha256 or sha256 not in reason:
            continue
        if line.error_type in INPUT_ERRORS:  # keep why, naming the input by its title instead of its key
            reason = re.sub(rf"[^\s()]*{sha256}[^\s():]*", title, reason)
        else:
            reason = f"{line.error_type}: the stored original of {role} image {image_id} ({title}) is "
            reason += "corrupt" if line.error_type == "ChecksumMismatch" else "missing or unreadable"
        break
    if line.status == JobStatus.CANCELLED:
        return reason, f"it was cancelled; `atelier jobs cancel {line.job_id} --undo` makes it pending again"
    return display_text(reason, 300), FIXES.get(line.error_type or "", DEFAULT_FIX).format(job=line.job_id)


def image_label(image: dict[str, Any]) -> str:
    """An input image as people know it: its title on one line, shortened (its id if untitled)."""
    return display_text(image["title"], TITLE_LIMIT) or f"image {image['id']}"


def public_link(public_url: str | None, store_base_uri: str, uri: str | None) -> str | None:
    """The permanent address of a stored object under the store's public URL, if one is set.

    Keys are content addresses, so the link never goes stale; without a public URL there
    is no address a browser can open for sure, and callers show the `atelier` command instead.
    """
    if not public_url or not uri or not uri.startswith(store_base_uri + "/"):
        return None
    return f"{public_url.rstrip('/')}/{uri.removeprefix(store_base_uri + '/')}"


def gallery_page(web_url: str | None, path: str) -> str | None:
    """The address of `path` (e.g. `/artworks/12`) in the gallery served at `web_url`, if one is set."""
    return f"{web_url.rstrip('/')}{path}" if web_url else None


def markdown_summary(report: BatchReport, links: dict[str, str] | None = None, web_url: str | None = None) -> str:
    """The run's front page in the Prefect UI: counts, the contact sheet, failures, outputs.

    `links` maps store URIs to permanent public addresses; URIs without one are shown as text.
    `web_url` is the gallery's address: artworks then link to their pages.
    """
    links = links or {}
    parts = [f"# {report.headline()}", ""]
    if web_url:
        parts += [f"Browse the results in the [gallery]({gallery_page(web_url, '/')}).", ""]
    if report.contact_sheet:
        sheet_link = links.get(report.contact_sheet)
        parts += [f"Contact sheet: `{report.contact_sheet}`", ""]
        if sheet_link:
            parts += [f"![contact sheet]({sheet_link})", ""]
    if report.failed:
        failed_page = gallery_page(web_url, "/jobs?status=failed")
        parts += ["## Failed" + (f" ([in the gallery]({failed_page}))" if failed_page else ""), ""]
        for line in report.failed:
            reason, fix = explain_failure(line)
            parts.append(f"- job {line.job_id} ({_md(line.content)} × {_md(line.styles)}): {_md(reason)}. "
                         f"To fix: {fix}")
        parts.append("")
    if report.succeeded:
        parts += ["## Results", ""]
        for line in report.succeeded:
            page = gallery_page(web_url, f"/artworks/{line.artwork_id}")
            picture = links.get(line.output_uri or "")
            where = f"[artwork {line.artwork_id}]({page or picture})" if page or picture else f"artwork {line.artwork_id}"
            if page and picture:
                where += f" ([picture]({picture}))"
            parts.append(f"- job {line.job_id} ({_md(line.content)} × {_md(line.styles)}, {line.method}): {where}")
        parts += ["", "Fetch one: `atelier artworks export DIR --id ARTWORK`; details: `atelier artworks show ARTWORK`.",
                  ""]
    if report.notes:
        parts += ["## Notes", ""]
        parts += [f"- {_md(note)}" for note in report.notes]
    return "\n".join(parts).rstrip() + "\n"


def _md(text: str) -> str:
    """User text inside markdown: one line, and no markup of its own."""
    flat = display_text(text, 1000)
    for char in "\\`*_[]<>|#":
        flat = flat.replace(char, "\\" + char)
    return flat


def table_rows(report: BatchReport, links: dict[str, str] | None = None, web_url: str | None = None
               ) -> list[dict[str, Any]]:
    """One row per job for the Prefect table artifact: short cells, no link that dies; `page` is
    the artwork's page in the gallery when `web_url` is set."""
    links = links or {}
    return [
        {
            "job": line.job_id,
            "status": line.status,
            "content": line.content,
            "style": line.styles,
            "method": line.method,
            "size": line.size,
            "seconds": round(line.seconds, 2) if line.seconds is not None else None,
            "artwork": line.artwork_id,
            "link": links.get(line.output_uri or "", ""),
            "page": (gallery_page(web_url, f"/artworks/{line.artwork_id}") if line.artwork_id else None) or "",
            "error": display_text(line.error, ERROR_LIMIT),
        }
        for line in report.lines
    ]


def publish(report: BatchReport, key_prefix: str, links: dict[str, str] | None = None,
            web_url: str | None = None) -> None:
    """Create the markdown summary and the jobs table as Prefect artifacts of this flow run."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_markdown_artifact(markdown_summary(report, links, web_url), key=f"{key_prefix}-summary",
                             description=report.headline())
    create_table_artifact(table_rows(report, links, web_url), key=f"{key_prefix}-jobs",
                          description=f"{report.name}: jobs")


def report_batch(
    workshop: Workshop, name: str, job_ids: list[int], logger: logging.Logger | logging.LoggerAdapter,
    *, public_url: str | None = None, web_url: str | None = None,
) -> BatchReport:
    """Describe the jobs, lay out and upload the contact sheet, and publish the artifacts,
    degrading one item at a time: whatever fails becomes a note (and a warning in the run
    log), never the run's failure."""
    from tasks.contact_sheet import upload_contact_sheet

    report = describe_jobs(workshop, name, job_ids)
    notes: list[str] = []
    sheet_uri = sheet_at = None
    try:
        sheet = upload_contact_sheet(workshop, [(line.thumbnail_uri, line.caption) for line in report.lines])
        sheet_uri, notes = sheet.uri, list(sheet.notes)
        sheet_at = workshop.store.url_for(sheet_uri)
    except Exception as exc:  # the jobs are recorded; say what is missing instead of failing them
        notes.append(f"no contact sheet: {_reason(exc)}")
    base = getattr(workshop.store, "base_uri", "")
    uris = [sheet_uri] + [line.output_uri for line in report.lines]
    links = {uri: link for uri in uris if uri and (link := public_link(public_url, base, uri))}
    report = replace(report, contact_sheet=sheet_uri, contact_sheet_at=sheet_at, notes=tuple(notes))
    try:
        publish(report, key_prefix=name, links=links, web_url=web_url)
    except Exception as exc:
        report = replace(report, notes=(*report.notes, f"no Prefect artifacts: {_reason(exc)}"))
    for note in report.notes:
        logger.warning("%s: %s", name, note)
    return report


def _reason(exc: BaseException) -> str:
    return display_text(f"{type(exc).__name__}: {exc}", 300)
