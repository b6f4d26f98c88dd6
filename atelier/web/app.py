"""Routes of the gallery: each parses its request, calls `db.queries`, and renders a template.

`create_app(config)` opens the catalog and the store once; every request gets a read-only
session that is closed before the page is sent. Errors become pages: unknown ids 404, bad
filter values 400 with the reason, write actions without the token 403.
"""

from __future__ import annotations

import secrets
import shlex
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from atelier.reproduce import unsupported_reason
from atelier.web import actions
from atelier.web.config import WebConfig
from atelier.web.guard import SAFE_METHODS, FailedTokens, SecurityHeaders, cross_site_reason
from atelier.web.media import IMMUTABLE, OutsideStore, VerifiedFiles, is_video, media_type, object_response, verified_path
from atelier.web.plots import loss_curve_svg
from atelier.web.provenance import reproduce_command, reproduce_video_command
from atelier.web.requests import BadRequest, grid_query, page_number, query_for
from atelier.web.tiles import Pyramid, TileCache, TileNotFound
from db import queries
from db.errors import InvalidRequest, NotFound
from db.models import ArtifactKind, ImageRole, JobStatus
from db.queries import Filters
from db.trained_models import ModelInfo, list_models
from storage.local import LocalStore

STATIC = Path(__file__).parent / "static"
# The methods the grid's filter offers (the engine's registry, style_engine.params.METHOD_PARAMS,
# would load torch for the gallery's front page); the URL may also name any method a job has.
GRID_METHODS = ("gatys", "itn", "itn-train", "video_gatys", "noop")
# How many of the newest `itn` artworks a model page looks through for its samples.
SAMPLE_SCAN = 500
# Model metrics that have their own place on the model page (plots, the style) or are too long for it.
MODEL_METRICS_SHOWN_ELSEWHERE = ("validation_history", "styles", "versions")
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
    env.filters["shell"] = shlex.quote
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
    failed_tokens = FailedTokens()
    verified = app.state.verified = VerifiedFiles()
    if config.cache_dir is None:  # kept on the app, so that the folder lives (and is removed) with it
        app.state.tile_folder = tempfile.TemporaryDirectory(prefix="atelier-tiles-")
    tiles = app.state.tiles = TileCache(config.cache_dir / "tiles" if config.cache_dir else
                                        Path(app.state.tile_folder.name), config.tile_size)

    def page(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        html = templates.get_template(name).render(request=request, writes_on=config.write_token is not None, **context)
        return HTMLResponse(html, status_code=code)

    def error_page(request: Request, status: int, title: str, reason: str) -> HTMLResponse:
        return page(request, "error.html", status, title=title, reason=reason, status=status)

    @app.middleware("http")
    async def same_site_writes(request: Request, call_next: Any) -> Response:
        """Every write comes from the gallery's own pages (see guard.cross_site_reason)."""
        reason = None if request.method in SAFE_METHODS else cross_site_reason(request)
        if reason is not None:
            return error_page(request, 403, "Forbidden", reason)
        return await call_next(request)

    app.add_middleware(SecurityHeaders)  # added last, so outermost: its headers reach every response above

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> HTMLResponse:
        return error_page(request, 404, "Not found", str(exc))

    @app.exception_handler(TileNotFound)
    @app.exception_handler(OutsideStore)
    async def outside_store(request: Request, exc: LookupError) -> HTMLResponse:
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
        title = {404: "Not found", 403: "Forbidden", 405: "Method not allowed", 415: "Unsupported media type",
                 429: "Too many requests"}.get(exc.status_code, "Error")
        reason = "no such page" if exc.status_code == 404 else str(exc.detail)
        response = error_page(request, exc.status_code, title, reason)
        response.headers.update(exc.headers or {})
        return response

    @app.get("/", response_class=HTMLResponse)
    def grid(request: Request, s: Reader) -> HTMLResponse:
        query = grid_query(request.query_params, request.query_params.getlist("tag"), config.page_size)
        if query.filters.method:
            queries.check_known_method(s, query.filters.method, GRID_METHODS)
        if query.metric:
            queries.check_known_metric(s, query.metric)
        try:
            rows = (queries.best_artworks(s, query.metric, lowest=query.lowest, f=query.filters) if query.metric
                    else queries.list_artworks(s, query.filters))
        except NotFound as exc:  # a content or style reference that names no image is a bad filter value
            raise BadRequest(str(exc)) from None
        return page(request, "grid.html", artworks=rows[: config.page_size], more=len(rows) > config.page_size,
                    q=query, methods=GRID_METHODS, statuses=list(JobStatus))

    @app.get("/artworks/{artwork_id}", response_class=HTMLResponse)
    def artwork(request: Request, artwork_id: int, s: Reader) -> HTMLResponse:
        art = queries.show_artwork(s, artwork_id)
        run = queries.show_run(s, art["run_id"])
        output = next(a for a in run["artifacts"] if a["id"] == artwork_id)
        inputs = queries.images_by_id(s, [art["content"]["id"], *(st["id"] for st in art["styles"])])
        content = inputs[art["content"]["id"]]
        styles = [inputs[st["id"]] for st in art["styles"]]
        content_file = content["source_name"] or f"content-{content['id']}.{content['format'].lower()}"
        style_files = [st["source_name"] or f"style-{st['id']}.png" for st in styles]
        video = is_video(output["content_type"])
        if video:
            command, unsupported = reproduce_video_command(art["method"], run["params"], content_file, style_files,
                                                           f"artwork-{artwork_id}.mp4"), {}
        else:
            command, unsupported = reproduce_command(
                art["method"], run["params"], content_file, style_files, [st["weight"] for st in art["styles"]],
                run["versions"].get("weights_source"), f"artwork-{artwork_id}.png",
            )
        pyramid = Pyramid(art["width"], art["height"], config.tile_size) if not video and art["width"] else None
        return page(request, "artwork.html", art=art, run=run, content=content, styles=styles, command=command,
                    pyramid=pyramid,
                    unsupported=unsupported, metrics=run["metrics"], output=output, video=video,
                    reproduce_refused=unsupported_reason(art["method"]),
                    plot=loss_curve_svg(queries.run_loss_curve(s, run["id"])),
                    flow_url=flow_run_url(config, run["flow_run_id"]))

    @app.get("/artworks/{artwork_id}/image")
    def artwork_image(artwork_id: int, s: Reader, download: bool = False) -> Response:
        """The output as recorded: a PNG, or an MP4 for a video artwork (streamed with Range
        support, so that a browser's player can seek)."""
        output = queries.run_file(s, artwork_id, ArtifactKind.OUTPUT)
        name = None
        if download:
            from atelier.export import export_name

            name = export_name(queries.show_artwork(s, artwork_id), Path(output["uri"]).suffix or ".png")
        return object_response(store, verified, output["uri"], output["sha256"], output["content_type"] or "image/png", name)

    @app.get("/artworks/{artwork_id}/tiles/{level}/{col}_{row}.png")
    def artwork_tile(artwork_id: int, level: int, col: int, row: int, s: Reader) -> Response:
        """One tile of the artwork's zoom pyramid (level 0: full size; see atelier.web.tiles)."""
        output = queries.run_file(s, artwork_id, ArtifactKind.OUTPUT)
        if is_video(output["content_type"]) or not output["width"]:
            raise NotFound(f"artwork {artwork_id} is a video: it has no zoom tiles")
        pyramid = Pyramid(output["width"], output["height"], config.tile_size)
        path = tiles.tile(output["sha256"], pyramid, level, col, row,
                          lambda: _picture_file(output["uri"], output["sha256"]))
        return FileResponse(path, media_type="image/png", headers=IMMUTABLE)

    @contextmanager
    def _picture_file(uri: str, sha256: str) -> Iterator[Path]:
        """The artwork's bytes as a local file, checked against its sha256: the store's own file,
        or for S3 a temporary copy, removed once the tiles are cut."""
        if isinstance(store, LocalStore):
            yield verified_path(store, verified, uri, sha256)
            return
        with tempfile.TemporaryDirectory(prefix="atelier-tile-source-") as folder:
            yield store.get_file(uri, Path(folder) / "artwork", sha256=sha256)

    @app.get("/artworks/{artwork_id}/thumbnail")
    def artwork_thumbnail(artwork_id: int, s: Reader) -> Response:
        thumb = queries.run_file(s, artwork_id, ArtifactKind.THUMBNAIL)
        return object_response(store, verified, thumb["uri"], thumb["sha256"], thumb["content_type"], None)

    @app.get("/images/{image_id}/file")
    def image_file(image_id: int, s: Reader, download: bool = False) -> Response:
        image = _image(s, image_id)
        name = f"{image['role']}-{image['id']}.{image['format'].lower()}" if download else None
        return object_response(store, verified, image["uri"], image["sha256"], media_type(image), name)

    @app.get("/images/{image_id}", response_class=HTMLResponse)
    def image_page(request: Request, image_id: int, s: Reader) -> HTMLResponse:
        image = _image(s, image_id)
        # A clip is its video jobs' content, as a photo is its picture jobs'.
        made = queries.list_artworks(s, Filters(**{"style" if image["role"] == ImageRole.STYLE else "content": str(image_id)},
                                                limit=200))
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

    @app.get("/models", response_class=HTMLResponse)
    def models(request: Request, s: Reader) -> HTMLResponse:
        rows = list_models(s)
        styles = queries.images_by_id(s, [m.style_id for m in rows])
        return page(request, "models.html", models=[model_view(s, m, styles.get(m.style_id)) for m in rows])

    @app.get("/models/{model_id}", response_class=HTMLResponse)
    def model_page(request: Request, model_id: int, s: Reader) -> HTMLResponse:
        queries.check_ids([model_id], "model")
        found = next((m for m in list_models(s) if m.id == model_id), None)
        if found is None:
            raise NotFound(f"no model with id {model_id}")
        view = model_view(s, found, queries.images_by_id(s, [found.style_id]).get(found.style_id))
        training = queries.run_loss_curve(s, found.run_id) if found.run_id else None
        return page(request, "model.html", m=view, training_plot=loss_curve_svg(training, label="training loss", x_label="step"),
                    validation_plot=loss_curve_svg(validation_curve(found.metrics), label="validation loss", x_label="step"),
                    samples=model_samples(s, found))

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
        # Form(), which would need python-multipart for two text fields. Only a form is taken:
        # text/plain is what another site's page can post without asking the browser first.
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise HTTPException(415, f"expected a form (application/x-www-form-urlencoded), got {kind or 'no type'}")
        form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        if config.write_token is None:
            raise HTTPException(403, "write actions are off: start `atelier web` with ATELIER_WEB_TOKEN set to turn them on")
        client = request.client.host if request.client else "unknown"
        wait = failed_tokens.retry_after(client)
        if wait:
            raise HTTPException(429, f"too many wrong tokens from this address: try again in {wait} s",
                                headers={"Retry-After": str(wait)})
        token = form.get("token", [""])[0]
        if not secrets.compare_digest(token.encode(), config.write_token.encode()):
            failed_tokens.failed(client)
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


def model_view(session: Session, model: ModelInfo, style: dict[str, Any] | None) -> dict[str, Any]:
    """A model as its pages show it: the row, its style image, and the artwork its training
    job rendered (the preview photo through the new network), if that run still exists."""
    preview = None
    if model.run_id is not None:
        run = queries.show_run(session, model.run_id)
        preview = next((a["id"] for a in run["artifacts"] if a["kind"] == ArtifactKind.OUTPUT), None)
    shown = {k: v for k, v in model.metrics.items() if k not in MODEL_METRICS_SHOWN_ELSEWHERE}
    return {"info": model, "style": style, "preview": preview, "metrics": shown}


def validation_curve(metrics: dict[str, Any]) -> dict[str, list[Any]] | None:
    """The validation losses a training recorded every `validate_every` steps, as a loss curve."""
    history = metrics.get("validation_history") or []
    if not history:
        return None
    return {"evaluation": [h.get("step") for h in history],
            **{name: [h.get(name) for h in history] for name in ("total", "content", "style")}}


def model_samples(session: Session, model: ModelInfo, limit: int = 24) -> list[dict[str, Any]]:
    """Artworks made with `model`: `itn` jobs name it by name or id (`--param model=...`)."""
    from tasks.itn import STYLIZE_METHOD

    names = {model.name, str(model.id)}
    recent = queries.list_artworks(session, Filters(method=STYLIZE_METHOD, limit=SAMPLE_SCAN))
    return [a for a in recent if str(a["params"].get("model")) in names][:limit]


def _image(session: Session, image_id: int) -> dict[str, Any]:
    queries.check_ids([image_id], "image")
    found = queries.images_by_id(session, [image_id])
    if image_id not in found:
        raise NotFound(f"no image with id {image_id}")
    return found[image_id]
