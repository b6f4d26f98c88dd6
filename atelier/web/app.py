"""Routes of the gallery: each parses its request, calls `db.queries`, and renders a template.

`create_app(config)` opens the catalog and the store once; every request gets a read-only
session that is closed before the page is sent. Errors become pages: unknown ids 404, bad
filter values 400 with the reason, write actions without the token 403.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from atelier.web import actions
from atelier.web.config import WebConfig
from atelier.web.media import OutsideStore, object_response
from atelier.web.plots import loss_curve_svg
from atelier.web.provenance import reproduce_command
from atelier.web.requests import BadRequest, grid_query, page_number, query_for
from db import queries
from db.errors import InvalidRequest, NotFound
from db.models import ArtifactKind, ImageRole, JobStatus
from db.queries import Filters

STATIC = Path(__file__).parent / "static"
ROLES = {"contents": ImageRole.CONTENT, "styles": ImageRole.STYLE}


def _session(request: Request) -> Iterator[Session]:
    """A read-only catalog session for one request, closed before the response is sent."""
    with request.app.state.catalog.reader() as session:
        yield session


Reader = Annotated[Session, Depends(_session)]


def make_templates() -> Environment:
    env = Environment(loader=PackageLoader("atelier.web", "templates"), autoescape=select_autoescape(default=True))
    env.globals["query_for"] = query_for
    env.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M UTC") if value else ""
    env.filters["seconds"] = lambda value: f"{value:.1f} s" if isinstance(value, int | float) else ""
    env.filters["num"] = readable
    return env


def readable(value: Any) -> str:
    """Floats to 4 significant digits (also inside a dict of them); anything else as it is."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {readable(v)}" for k, v in value.items())
    return str(value)


def create_app(config: WebConfig) -> FastAPI:
    """The gallery app over the catalog and store that `config` names."""
    from db.session import open_catalog
    from storage import open_store

    templates = make_templates()
    # Opened now, not at start-up of the server, so that a wrong URL or an old schema is one
    # clear line from `atelier web` instead of a traceback from inside uvicorn.
    catalog = open_catalog(config.database_url)
    store = open_store(config.store_url, endpoint_url=config.s3_endpoint_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            catalog.dispose()

    app = FastAPI(title="Atelier gallery", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.catalog = catalog
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def page(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        html = templates.get_template(name).render(request=request, writes_on=config.write_token is not None, **context)
        return HTMLResponse(html, status_code=code, headers={"X-Content-Type-Options": "nosniff"})

    def error_page(request: Request, status: int, title: str, reason: str) -> HTMLResponse:
        return page(request, "error.html", status, title=title, reason=reason, status=status)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> HTMLResponse:
        return error_page(request, 404, "Not found", str(exc))

    @app.exception_handler(OutsideStore)
    async def outside_store(request: Request, exc: OutsideStore) -> HTMLResponse:
        return error_page(request, 404, "Not found", str(exc))

    @app.exception_handler(BadRequest)
    @app.exception_handler(InvalidRequest)
    async def bad_request(request: Request, exc: Exception) -> HTMLResponse:
        return error_page(request, 400, "Bad request", str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> HTMLResponse:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in exc.errors())
        return error_page(request, 400, "Bad request", reasons)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> HTMLResponse:
        title = {404: "Not found", 403: "Forbidden", 405: "Method not allowed"}.get(exc.status_code, "Error")
        reason = "no such page" if exc.status_code == 404 else str(exc.detail)
        return error_page(request, exc.status_code, title, reason)

    @app.get("/", response_class=HTMLResponse)
    def grid(request: Request, s: Reader) -> HTMLResponse:
        query = grid_query(request.query_params, request.query_params.getlist("tag"), config.page_size)
        try:
            rows = (queries.best_artworks(s, query.metric, lowest=query.lowest, f=query.filters) if query.metric
                    else queries.list_artworks(s, query.filters))
        except NotFound as exc:  # a content or style reference that names no image is a bad filter value
            raise BadRequest(str(exc)) from None
        return page(request, "grid.html", artworks=rows[: config.page_size], more=len(rows) > config.page_size,
                    q=query, methods=("gatys", "noop"), statuses=list(JobStatus))

    @app.get("/artworks/{artwork_id}", response_class=HTMLResponse)
    def artwork(request: Request, artwork_id: int, s: Reader) -> HTMLResponse:
        art = queries.show_artwork(s, artwork_id)
        run = queries.show_run(s, art["run_id"])
        inputs = queries.images_by_id(s, [art["content"]["id"], *(st["id"] for st in art["styles"])])
        content = inputs[art["content"]["id"]]
        styles = [inputs[st["id"]] for st in art["styles"]]
        command, unsupported = reproduce_command(
            art["method"], run["params"], content["source_name"] or f"content-{content['id']}.png",
            [st["source_name"] or f"style-{st['id']}.png" for st in styles], [st["weight"] for st in art["styles"]],
            run["versions"].get("weights_source"), f"artwork-{artwork_id}.png",
        )
        return page(request, "artwork.html", art=art, run=run, content=content, styles=styles, command=command,
                    unsupported=unsupported, metrics=run["metrics"],
                    plot=loss_curve_svg(queries.run_loss_curve(s, run["id"])),
                    flow_url=flow_run_url(config, run["flow_run_id"]))

    @app.get("/artworks/{artwork_id}/image")
    def artwork_image(artwork_id: int, s: Reader, download: bool = False) -> Response:
        art = queries.show_artwork(s, artwork_id)
        from atelier.export import export_name

        return object_response(store, art["uri"], art["sha256"], "image/png", export_name(art) if download else None)

    @app.get("/artworks/{artwork_id}/thumbnail")
    def artwork_thumbnail(artwork_id: int, s: Reader) -> Response:
        thumb = queries.run_file(s, artwork_id, ArtifactKind.THUMBNAIL)
        return object_response(store, thumb["uri"], thumb["sha256"], thumb["content_type"], None)

    @app.get("/images/{image_id}/file")
    def image_file(image_id: int, s: Reader, download: bool = False) -> Response:
        image = _image(s, image_id)
        content_type = f"image/{image['format'].lower()}"
        name = f"{image['role']}-{image['id']}.{image['format'].lower()}" if download else None
        return object_response(store, image["uri"], image["sha256"], content_type, name)

    @app.get("/images/{image_id}", response_class=HTMLResponse)
    def image_page(request: Request, image_id: int, s: Reader) -> HTMLResponse:
        image = _image(s, image_id)
        made = queries.list_artworks(s, Filters(**{image["role"]: str(image_id)}, limit=200)) \
            if image["role"] in (ImageRole.CONTENT, ImageRole.STYLE) else []
        return page(request, "image.html", image=image, artworks=made)

    @app.get("/contents", response_class=HTMLResponse)
    @app.get("/styles", response_class=HTMLResponse)
    def images(request: Request, s: Reader) -> HTMLResponse:
        role = ROLES[request.url.path.strip("/")]
        pageno = page_number(request.query_params)
        tags = tuple(t for t in request.query_params.getlist("tag") if t.strip())
        rows = queries.list_images(s, Filters(role=role, tags=tags, limit=config.page_size + 1,
                                              offset=(pageno - 1) * config.page_size))
        raw = {"tag": list(tags)} if tags else {}
        return page(request, "images.html", images=rows[: config.page_size], more=len(rows) > config.page_size,
                    role=role, pageno=pageno, raw=raw)

    @app.get("/jobs", response_class=HTMLResponse)
    def jobs(request: Request, s: Reader) -> HTMLResponse:
        status = request.query_params.get("status") or None
        pageno = page_number(request.query_params)
        rows = queries.list_jobs(s, Filters(status=status, limit=config.page_size + 1,
                                            offset=(pageno - 1) * config.page_size))
        return page(request, "jobs.html", jobs=rows[: config.page_size], more=len(rows) > config.page_size,
                    status=status, pageno=pageno, counts=queries.job_status_counts(s),
                    batches=queries.failed_jobs_by_batch(s), raw={"status": status} if status else {})

    @app.post("/jobs/rerun", response_class=HTMLResponse)
    async def rerun(request: Request) -> HTMLResponse:
        # The form is parsed here (application/x-www-form-urlencoded) rather than with FastAPI's
        # Form(), which would need python-multipart for two text fields.
        form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        if config.write_token is None:
            raise HTTPException(403, "write actions are off: start `atelier web` with ATELIER_WEB_TOKEN set to turn them on")
        token = form.get("token", [""])[0]
        if not secrets.compare_digest(token.encode(), config.write_token.encode()):
            raise HTTPException(403, "wrong or missing token")
        batch = form.get("batch", [""])[0]
        with catalog.reader() as s:
            groups = {b["flow_run_id"] or "": b["job_ids"] for b in queries.failed_jobs_by_batch(s)}
        if batch not in groups:
            raise BadRequest(f"batch {batch!r}: no failed jobs in it (they may have been rerun already)")
        outcome = await run_in_threadpool(actions.rerun_failed_jobs, groups[batch])
        return page(request, "rerun.html", outcome=outcome, job_ids=groups[batch],
                    flow_url=flow_run_url(config, outcome.flow_run_id))

    return app


def flow_run_url(config: WebConfig, flow_run_id: str | None) -> str | None:
    """The flow run's page in the Prefect UI, when its address is configured."""
    if not (config.prefect_ui_url and flow_run_id):
        return None
    return f"{config.prefect_ui_url.rstrip('/')}/runs/flow-run/{flow_run_id}"


def _image(session: Session, image_id: int) -> dict[str, Any]:
    queries.check_ids([image_id], "image")
    found = queries.images_by_id(session, [image_id])
    if image_id not in found:
        raise NotFound(f"no image with id {image_id}")
    return found[image_id]
