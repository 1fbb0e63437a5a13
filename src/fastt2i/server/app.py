"""`create_app`: the FastAPI application — the /v1 API, /healthz and the live-editing page — over a `MicroBatcher`.

    app = create_app(load_models())            # every bundled model
    uvicorn.run(app, host="127.0.0.1", port=8000)

Every error is a one-line JSON body {"error": "..."} with a 4xx status (5xx only for a bug, 503 when busy).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Callable, Hashable, Sequence

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from fastt2i import __version__
from fastt2i.editing import gif_bytes
from fastt2i.errors import Fastt2iError
from fastt2i.server import renderer
from fastt2i.server.batching import BatchInfo, MicroBatcher, QueueFull
from fastt2i.server.config import ServerConfig
from fastt2i.server.images import UploadError, b64, grid_png, png_bytes, read_image, read_mask, uint8
from fastt2i.server.models import GAN, PAELLA, ModelEntry
from fastt2i.server.schemas import (
    GenerateRequest,
    InterpolateRequest,
    MixRequest,
    PaellaEditParams,
    PaellaSampler,
    TruncateRequest,
    UpscaleParams,
)
from fastt2i.server.upscale import check_upsamplers, run_upscale

STATIC = Path(__file__).resolve().parent / "static"
LOG = logging.getLogger("fastt2i.server")
IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}, "application/json": {}}, "description": "PNG, or JSON with base64 PNGs"},
    "4XX": {"description": 'one-line JSON error: {"error": "..."}'},
    503: {"description": "the queue is full: retry after the Retry-After header's seconds"},
}


class ApiError(Exception):
    """An HTTP error with a one-line message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": one_line(message)}, status_code=status, headers=headers)


def validation_message(errors: Sequence[dict[str, Any]]) -> tuple[int, str]:
    """(status, one line) for pydantic / FastAPI validation errors: 400 for malformed JSON, else 422."""
    if not errors:
        return 422, "invalid request"
    e = errors[0]
    if e.get("type") == "json_invalid":
        return 400, f"malformed JSON: {(e.get('ctx') or {}).get('error', e.get('msg', ''))}"
    loc = [str(x) for x in e.get("loc", ()) if x != "body"]
    where = ".".join(loc) or "request body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return 422, f"{where}: {e.get('msg', 'invalid')}{more}"


class BodyLimit:
    """ASGI middleware: a request body over the limit (by Content-Length, or as it streams) is answered 413 before the
    application reads it. JSON bodies get `max_json`, multipart uploads `max_multipart`."""

    def __init__(self, app: Any, max_json: int, max_multipart: int):
        self.app, self.max_json, self.max_multipart = app, int(max_json), int(max_multipart)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        limit = self.max_multipart if multipart else self.max_json
        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            await error_response(413, f"the request body has {declared:,} bytes; the limit is {limit:,}")(
                scope, receive, send)
            return
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            total += len(message.get("body", b""))
            if total > limit:
                await error_response(413, f"the request body is over the limit of {limit:,} bytes")(
                    scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# ---------------------------------------------------------------------------------------------------- the app
def create_app(models: dict[str, ModelEntry], config: ServerConfig | None = None,
               upsamplers: dict[str, Any] | None = None) -> FastAPI:
    """The application serving `models` (from `load_models` or `wrap_pipeline`).

    Args:
        models: name -> loaded model; requests choose among these names only.
        config: batching, queue and limits (default `ServerConfig()`).
        upsamplers: name -> upsampler (see `fastt2i.server.upscale`); `/v1/upscale` exists only when given.
    """
    if not models:
        raise ValueError("create_app needs at least one model")
    cfg = config or ServerConfig()
    batcher = MicroBatcher(cfg.batch_window_s, cfg.max_batch, cfg.max_queue)
    frames_cache = renderer.FrameCache(cfg.frame_cache_size)
    ups = check_upsamplers(upsamplers)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="fastt2i", version=__version__, lifespan=lifespan,
                  description="Fast text-to-image (GigaGAN, StyleGAN-T, Paella): generation and live latent editing. "
                              'Errors are one-line JSON {"error": "..."}; a full queue answers 503 with Retry-After.')
    app.state.models, app.state.config, app.state.batcher, app.state.frames = models, cfg, batcher, frames_cache
    app.add_middleware(BodyLimit, max_json=cfg.max_json_bytes, max_multipart=cfg.max_body_bytes)
    _add_error_handlers(app)

    # ------------------------------------------------------------------------------------------------ helpers
    def entry_for(name: str | None, kinds: Sequence[str] = (GAN, PAELLA), op: str = "this operation") -> ModelEntry:
        if name is None:  # the library's default model (the CLI's) when it is loaded and fits, else the first
            fits = sorted((e for e in models.values() if e.kind in kinds), key=lambda e: not e.card.get("default"))
            if not fits:
                raise ApiError(400, f"no loaded model supports {op}")
            return fits[0]
        entry = models.get(name)
        if entry is None:
            raise ApiError(404, f"unknown model {name[:60]!r}; this server has: {', '.join(models)}")
        if entry.kind not in kinds:
            raise ApiError(400, f"{op} needs a {' or '.join(kinds)} model; {name} is a {entry.kind} model")
        return entry

    def check_prompts(prompts: Sequence[str | None], what: str = "prompts") -> None:
        if len(prompts) > cfg.max_prompts:
            raise ApiError(422, f"{what}: {len(prompts)} prompts; the limit is {cfg.max_prompts}")
        for i, p in enumerate(prompts):
            if p is not None and len(p) > cfg.max_prompt_chars:
                raise ApiError(422, f"{what}[{i}] has {len(p):,} characters; the limit is {cfg.max_prompt_chars}")

    def check_count(n: int, limit: int, what: str) -> None:
        if n > limit:
            raise ApiError(422, f"{what}: {n:,} asked for; the limit is {limit}")

    def check_sampler(entry: ModelEntry, req: PaellaSampler) -> dict[str, Any]:
        given = [k for k in ("steps", "cfg", "temperature", "sampler") if getattr(req, k) is not None]
        if entry.kind == GAN:
            if given:
                raise ApiError(422, f"{', '.join(given)} apply to Paella models; {entry.name} is a GAN")
            return {}
        if req.steps is not None:
            check_count(req.steps, cfg.max_steps, "steps")
        return renderer.sampler_kwargs(req.steps, req.cfg, req.temperature, req.sampler)

    def check_gan_psi(entry: ModelEntry, psi: float, cutoff: int | None = None) -> None:
        if entry.kind != GAN and (psi != 1.0 or cutoff is not None):
            raise ApiError(422, f"truncation applies to the GANs; {entry.name} is a Paella model")
        if cutoff is not None and cutoff > entry.num_ws:
            raise ApiError(422, f"truncation cutoff {cutoff} is above the model's {entry.num_ws} styles")

    async def compute(key: Hashable | None, rows: Sequence[Any], run: Callable[[list], Sequence[Any]]
                      ) -> tuple[list[Any], BatchInfo]:
        try:
            return await batcher.submit(key, rows, run)
        except QueueFull as e:
            raise ApiError(503, str(e), {"Retry-After": str(cfg.retry_after_s)}) from None

    async def single(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, BatchInfo]:
        """Run one non-batchable job on the compute thread; its result is uint8 [N,H,W,3]."""
        out, info = await compute(None, [None], lambda rows: [fn()])
        return out[0], info

    def images_response(fmt: str, images: Sequence[np.ndarray], nrow: int, labels: Sequence[dict[str, Any]],
                        entry: ModelEntry, info: BatchInfo, headers: dict[str, str] | None = None) -> Response:
        meta = {"X-Batch-Rows": str(info.rows), "X-Queue-Ms": f"{1000 * info.queued_s:.1f}",
                "X-Compute-Ms": f"{1000 * info.compute_s:.1f}", "X-Model": entry.name, **(headers or {})}
        if fmt == "json":
            body = {"model": entry.name, "batch_rows": info.rows, "compute_ms": round(1000 * info.compute_s, 1),
                    "images": [{**lab, "png": b64(png_bytes(im))} for lab, im in zip(labels, images)]}
            return JSONResponse(body, headers=meta)
        return Response(grid_png(np.stack(list(images)), nrow), media_type="image/png", headers=meta)

    async def upload(file: UploadFile, what: str) -> bytes:
        data = await file.read(cfg.max_upload_bytes + 1)
        if len(data) > cfg.max_upload_bytes:
            raise UploadError(f"the {what} upload is over the limit of {cfg.max_upload_bytes:,} bytes", 413)
        return data

    def edit_params(text: str, need_prompt: bool) -> PaellaEditParams:
        try:
            params = PaellaEditParams.model_validate_json(text or "{}")
        except ValidationError as e:
            status, message = validation_message(e.errors())
            raise ApiError(status, f"params: {message}") from None
        check_prompts([params.prompt], "prompt")
        check_count(len(params.seeds), cfg.max_seeds, "seeds")
        if need_prompt and params.prompt is None:
            raise ApiError(422, "params.prompt: Field required")
        return params

    # ------------------------------------------------------------------------------------------------ routes
    @app.get("/healthz", tags=["server"])
    async def healthz() -> dict[str, Any]:
        """Liveness and load: the models, requests in progress, batching statistics."""
        return {"status": "ok", "version": __version__, "models": list(models), "inflight": batcher.inflight,
                "max_queue": cfg.max_queue, "batches": dict(batcher.stats), "frame_cache": dict(frames_cache.stats),
                "upscale": bool(ups)}

    @app.get("/v1/models", tags=["models"])
    async def list_models() -> dict[str, Any]:
        """The loaded models: name, family, kind, resolution, model-card metrics, and what each can do."""
        out = []
        for e in models.values():
            d = e.describe()
            if e.kind == GAN:
                d["operations"] = ["generate", "truncate", "interpolate", "mix"]
                d["seed_interpolation"] = True
            else:
                d["operations"] = ["generate", "interpolate", "inpaint", "outpaint"] + (
                    ["variation"] if d.get("variations") else [])
            out.append(d)
        return {"models": out, "upsamplers": sorted(ups), "limits": {
            k: getattr(cfg, k) for k in ("max_prompt_chars", "max_prompts", "max_seeds", "max_images", "max_frames",
                                         "max_steps", "max_upload_bytes", "max_upload_pixels", "max_json_bytes")}}

    @app.post("/v1/generate", tags=["generate"], responses=IMAGE_RESPONSES)
    async def generate(req: GenerateRequest) -> Response:
        """Images for every (prompt, seed) pair. PNG: the image, or a grid (a row per prompt); JSON: base64 PNGs.
        Requests arriving together with the same settings are micro-batched into one forward."""
        entry = entry_for(req.model)
        check_prompts(req.prompts)
        check_count(len(req.seeds), cfg.max_seeds, "seeds")
        check_count(len(req.prompts) * len(req.seeds), cfg.max_images, "images (prompts x seeds)")
        sampler = check_sampler(entry, req)
        check_gan_psi(entry, req.truncation, req.truncation_cutoff)
        if entry.kind == GAN:
            key, run = renderer.gan_generate(entry, req.truncation, req.truncation_cutoff)
        else:
            key, run = renderer.paella_generate(entry, sampler)
        rows = [(p, s) for p in req.prompts for s in req.seeds]
        images, info = await compute(key, rows, run)
        labels = [{"prompt": p, "seed": s} for p, s in rows]
        return images_response(req.format, images, len(req.seeds), labels, entry, info)

    @app.post("/v1/edit/truncate", tags=["edit"], responses=IMAGE_RESPONSES)
    async def truncate(req: TruncateRequest) -> Response:
        """One prompt and seed at several truncation strengths psi (GANs; text-conditioned, GigaGAN sec. 5)."""
        entry = entry_for(req.model, (GAN,), "truncation")
        check_prompts([req.prompt], "prompt")
        check_count(len(req.psi), cfg.max_images, "psi values")
        check_gan_psi(entry, 1.0, req.cutoff)
        images, info = await single(lambda: renderer.truncation_strip(entry, req.prompt, req.seed, req.psi,
                                                                      req.cutoff))
        labels = [{"psi": p} for p in req.psi]
        return images_response(req.format, images, len(images), labels, entry, info)

    @app.post("/v1/edit/interpolate", tags=["edit"], responses={**IMAGE_RESPONSES, 200: {
        "content": {"image/png": {}, "image/gif": {}, "application/json": {}}}})
    async def interpolate(req: InterpolateRequest) -> Response:
        """Frames between two prompts (seed fixed), or between two seeds (one prompt): every frame as a GIF, a PNG
        strip or JSON, or with `alpha` the one frame nearest it (frames computed once, then cached)."""
        entry = entry_for(req.model, (GAN, PAELLA), "interpolation")
        check_count(req.frames, cfg.max_frames, "frames")
        sampler = check_sampler(entry, req)
        check_gan_psi(entry, req.truncation)
        if req.kind == "prompt":
            if req.prompt_a is None or req.prompt_b is None:
                raise ApiError(422, "prompt interpolation needs prompt_a and prompt_b")
            check_prompts([req.prompt_a, req.prompt_b], "prompt_a/prompt_b")
            key = (entry.name, "prompt", req.prompt_a, req.prompt_b, req.seed, req.frames, req.truncation,
                   tuple(sorted(sampler.items())))

            def make() -> np.ndarray:
                return renderer.prompt_frames(entry, req.prompt_a, req.prompt_b, req.seed, req.frames,
                                              req.truncation, sampler)
        else:
            if entry.kind != GAN:
                raise ApiError(422, f"seed interpolation applies to the GANs; {entry.name} is a Paella model")
            if req.prompt is None or req.seed_b is None:
                raise ApiError(422, "seed interpolation needs prompt, seed and seed_b")
            check_prompts([req.prompt], "prompt")
            key = (entry.name, "seed", req.prompt, req.seed, req.seed_b, req.frames, req.truncation)

            def make() -> np.ndarray:
                return renderer.seed_frames(entry, req.prompt, req.seed, req.seed_b, req.frames, req.truncation)
        frames = frames_cache.get(key)
        info = BatchInfo(rows=0, jobs=0)
        if frames is None:
            frames, info = await single(make)
            frames_cache.put(key, frames)
        headers = {"X-Frames-Cached": "1" if info.jobs == 0 else "0"}
        alphas = np.linspace(0, 1, req.frames)
        if req.alpha is not None:
            i = int(round(req.alpha * (req.frames - 1)))
            return images_response("json" if req.format == "json" else "png", [frames[i]], 1,
                                   [{"alpha": float(alphas[i]), "frame": i}], entry, info, headers)
        if req.format == "gif":
            return Response(gif_bytes(frames, fps=req.fps, boomerang=req.boomerang), media_type="image/gif",
                            headers={**headers, "Content-Disposition": 'attachment; filename="interpolation.gif"'})
        labels = [{"alpha": float(a), "frame": i} for i, a in enumerate(alphas)]
        return images_response(req.format, list(frames), len(frames), labels, entry, info, headers)

    @app.post("/v1/edit/mix", tags=["edit"], responses=IMAGE_RESPONSES)
    async def mix(req: MixRequest) -> Response:
        """Style mixing (styles 0..cutoff-1 from seed_a, the rest from seed_b) or prompt mixing (a prompt per layer
        range, `parts`) on a GAN."""
        entry = entry_for(req.model, (GAN,), "mixing")
        if req.kind == "style":
            if req.prompt is None:
                raise ApiError(422, "style mixing needs prompt")
            check_prompts([req.prompt], "prompt")
            cutoff = entry.num_ws // 2 if req.cutoff is None else req.cutoff
            if cutoff > entry.num_ws:
                raise ApiError(422, f"cutoff {cutoff} is above the model's {entry.num_ws} styles")
            images, info = await single(lambda: renderer.style_mix(entry, req.prompt, req.seed_a, req.seed_b,
                                                                   cutoff, req.truncation))
            labels = [{"role": r, "cutoff": cutoff} for r in ("seed_a", "seed_b", "mix")]
            if not req.grid:
                images, labels = images[2:], labels[2:]
            return images_response(req.format, images, len(images), labels, entry, info)
        if not req.parts:
            raise ApiError(422, "prompt mixing needs parts: [{prompt, start, stop}, ...] covering every style")
        check_prompts([p.prompt for p in req.parts], "parts")
        parts = [(p.prompt, p.start, p.stop) for p in req.parts]
        images, info = await single(lambda: renderer.prompt_mix(entry, parts, req.seed, req.truncation))
        return images_response(req.format, images, 1, [{"parts": len(parts)}], entry, info)

    async def paella_edit(params: PaellaEditParams, op: str, make: Callable[[ModelEntry, dict], np.ndarray]
                          ) -> Response:
        entry = entry_for(params.model, (PAELLA,), op)
        sampler = check_sampler(entry, params)
        images, info = await single(lambda: make(entry, sampler))
        labels = [{"seed": s} for s in params.seeds]
        return images_response(params.format, images, len(images), labels, entry, info)

    @app.post("/v1/edit/variation", tags=["edit"], responses=IMAGE_RESPONSES)
    async def variation(image: Annotated[UploadFile, File(description="PNG/JPEG/WEBP/GIF/BMP")],
                        params: Annotated[str, Form(description="JSON: PaellaEditParams")] = "{}") -> Response:
        """Paella: variations of an uploaded image (its CLIP image embedding; text only with `prompt`)."""
        p, data = edit_params(params, need_prompt=False), await upload(image, "image")

        def make(entry: ModelEntry, sampler: dict) -> np.ndarray:
            if not entry.describe().get("variations"):
                raise UploadError(f"{entry.name} was trained without CLIP image tokens: no variations", 400)
            img = read_image(data, entry.resolution, cfg.max_upload_bytes, cfg.max_upload_pixels)
            return renderer.variation(entry, img, p.seeds, p.prompt, sampler)

        return await paella_edit(p, "variations", make)

    @app.post("/v1/edit/inpaint", tags=["edit"], responses=IMAGE_RESPONSES)
    async def inpaint(image: Annotated[UploadFile, File(description="the image")],
                      mask: Annotated[UploadFile, File(description="white = regenerate")],
                      params: Annotated[str, Form(description="JSON: PaellaEditParams (prompt required)")]
                      ) -> Response:
        """Paella: regenerate the white region of the mask; every other token stays the image's."""
        p = edit_params(params, need_prompt=True)
        data, mask_data = await upload(image, "image"), await upload(mask, "mask")

        def make(entry: ModelEntry, sampler: dict) -> np.ndarray:
            img = read_image(data, entry.resolution, cfg.max_upload_bytes, cfg.max_upload_pixels)
            m = read_mask(mask_data, img.shape[2:], cfg.max_upload_bytes, cfg.max_upload_pixels)
            return renderer.inpaint(entry, img, m, p.prompt, p.seeds, sampler)

        return await paella_edit(p, "inpainting", make)

    @app.post("/v1/edit/outpaint", tags=["edit"], responses=IMAGE_RESPONSES)
    async def outpaint(image: Annotated[UploadFile, File(description="the image")],
                       params: Annotated[str, Form(description="JSON: PaellaEditParams (prompt; pad or scale)")]
                       ) -> Response:
        """Paella: extend an image (`pad` pixels per side, or `scale` it down into a same-size canvas)."""
        p = edit_params(params, need_prompt=True)
        data = await upload(image, "image")
        if p.pad is not None and p.scale is not None:
            raise ApiError(422, "give pad or scale, not both")
        scale = 0.5 if p.pad is None and p.scale is None else p.scale

        def make(entry: ModelEntry, sampler: dict) -> np.ndarray:
            if p.pad is not None and max(p.pad) > 2 * entry.resolution:
                raise UploadError(f"pad is at most {2 * entry.resolution} px per side for {entry.name}", 422)
            img = read_image(data, entry.resolution, cfg.max_upload_bytes, cfg.max_upload_pixels)
            return renderer.outpaint(entry, img, p.prompt, p.seeds, p.pad, scale, sampler)

        return await paella_edit(p, "outpainting", make)

    if ups:
        @app.post("/v1/upscale", tags=["edit"], responses=IMAGE_RESPONSES)
        async def upscale(image: Annotated[UploadFile, File(description="the low-resolution image")],
                          params: Annotated[str, Form(description="JSON: UpscaleParams (prompt required)")]
                          ) -> Response:
            """Upscale an image with a loaded upsampler, under a prompt (present only when one is loaded)."""
            try:
                p = UpscaleParams.model_validate_json(params or "{}")
            except ValidationError as e:
                status, message = validation_message(e.errors())
                raise ApiError(status, f"params: {message}") from None
            check_prompts([p.prompt], "prompt")
            name = p.model or next(iter(ups))
            if name not in ups:
                raise ApiError(404, f"unknown upsampler {name[:60]!r}; this server has: {', '.join(ups)}")
            up, data = ups[name], await upload(image, "image")

            def make() -> np.ndarray:
                img = read_image(data, int(up.input_resolution), cfg.max_upload_bytes, cfg.max_upload_pixels)
                return uint8(run_upscale(up, img, p.prompt, p.seed, p.truncation))

            out, info = await single(make)
            return Response(png_bytes(out[0]), media_type="image/png",
                            headers={"X-Compute-Ms": f"{1000 * info.compute_s:.1f}", "X-Model": name})

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(*validation_message(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(UploadError)
    async def upload_error(_: Request, exc: UploadError) -> JSONResponse:
        return error_response(exc.status, str(exc))

    @app.exception_handler(Fastt2iError)
    async def library_error(_: Request, exc: Fastt2iError) -> JSONResponse:
        return error_response(422, str(exc))

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        LOG.exception("internal error", exc_info=exc)
        return error_response(500, f"internal error: {type(exc).__name__}")
