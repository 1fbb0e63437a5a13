"""`fastt2i serve`: the HTTP API and the live-editing web page (FastAPI + uvicorn) over the bundled or given models."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  fastt2i serve                                    # every bundled model on http://127.0.0.1:8000
  fastt2i serve --model gigagan-emoji64 stylegan-t-emoji64 --port 8080
  fastt2i serve --model runs/gigagan-emoji64 --max-batch 32 --batch-window-ms 8
  curl -s localhost:8000/v1/generate -H 'content-type: application/json' \\
       -d '{"model": "gigagan-emoji64", "prompts": ["red heart"], "seeds": [0, 1, 2, 3]}' -o hearts.png

Open http://127.0.0.1:8000/ for the page (prompt box, seed strip, live sliders for truncation, interpolation, style
mixing and Paella's sampler, an inpainting canvas); http://127.0.0.1:8000/docs for the API. Requests that arrive
within --batch-window-ms with the same settings run as one forward of up to --max-batch images; past --max-queue
requests in progress the server answers 503 with Retry-After. Requests name models only by the names listed at
start; nothing a request sends is read as a path. See docs/server.md.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API and the live latent-editing page", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Serve text-to-image generation and live latent editing over HTTP (FastAPI + "
                                   "uvicorn), with micro-batching, a bounded queue and per-request limits.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--model", dest="models", nargs="+", action="extend", metavar="NAME|PATH",
                   help="bundled model names or export / run directories (repeatable; default: every bundled model)")
    p.add_argument("--upsampler", dest="upsamplers", nargs="+", action="extend", metavar="NAME|PATH",
                   help="upsamplers for /v1/upscale (bundled names or export / run directories; default: the bundled "
                        "ones, if any)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    g = p.add_argument_group("batching and limits")
    g.add_argument("--batch-window-ms", type=float, default=4.0,
                   help="how long a request waits for others to share its forward (default 4 ms)")
    g.add_argument("--max-batch", type=int, default=16, help="most images in one forward (default 16; 1 = off)")
    g.add_argument("--max-queue", type=int, default=64,
                   help="most requests in progress; more are answered 503 with Retry-After (default 64)")
    g.add_argument("--max-prompt-chars", type=int, default=500, help="longest prompt (default 500 characters)")
    g.add_argument("--max-seeds", type=int, default=64, help="most seeds per request (default 64)")
    g.add_argument("--max-images", type=int, default=64, help="most images per request (default 64)")
    g.add_argument("--max-upload-mb", type=float, default=4.0, help="largest image / mask upload (default 4 MB)")
    g.add_argument("--max-upload-pixels", type=int, default=2048 * 2048,
                   help="most pixels an upload may declare (default 2048x2048)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn log level (default info)")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """The `ServerConfig` of the batching and limit options."""
    from fastt2i.server.config import ServerConfig

    return ServerConfig(batch_window_ms=args.batch_window_ms, max_batch=args.max_batch, max_queue=args.max_queue,
                        max_prompt_chars=args.max_prompt_chars, max_seeds=args.max_seeds, max_images=args.max_images,
                        max_upload_bytes=int(args.max_upload_mb * 2**20), max_upload_pixels=args.max_upload_pixels)


def run(args: argparse.Namespace) -> int:
    import torch
    import uvicorn

    from fastt2i.errors import ConfigError
    from fastt2i.server import create_app, load_models

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {args.port}")
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    cfg = config_from_args(args)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    models = load_models(args.models, device=device, text_cache_size=cfg.text_cache_size)
    upsamplers = load_upsamplers(args.upsamplers, device)
    extra = f" and upsampler(s) {', '.join(upsamplers)}" if upsamplers else ""
    print(f"serving {', '.join(models)}{extra} on http://{args.host}:{args.port}/ (API docs: /docs)", flush=True)
    uvicorn.run(create_app(models, cfg, upsamplers=upsamplers), host=args.host, port=args.port,
                log_level=args.log_level)
    return 0


def load_upsamplers(names: list[str] | None, device: str) -> dict:
    """name -> `UpsamplerPipeline` for --upsampler (default: every bundled upsampler; none is an empty dict)."""
    from pathlib import Path

    from fastt2i.inference import bundled_upsamplers, load_upsampler

    out = {}
    for name in (names if names is not None else bundled_upsamplers()):
        key = name if "/" not in str(name) else Path(name).expanduser().resolve().name
        out[key] = load_upsampler(name, device=device)
    return out
