"""python -m app — the VLM2VLA web demo. `python -m app --help` lists the flags."""

from __future__ import annotations

import os
import sys


def launch(argv: list[str] | None = None, block: bool = True, quiet: bool = False):
    """Parse flags, build the runtime, start the server. Returns (demo, runtime, url) when block=False."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from app.config import ConfigError, from_args

    try:
        cfg = from_args(argv)
    except ConfigError as e:
        sys.exit(f"python -m app: {e}")

    from app.build import build_runtime

    try:
        rt = build_runtime(cfg)
    except (ConfigError, ValueError, RuntimeError, ImportError, OSError) as e:
        sys.exit(f"python -m app: could not load what the flags ask for: {type(e).__name__}: {e}")
    rt.start_camera()

    from app.format import CSS
    from app.camera_stream import add_camera_route
    from app.ui import build

    import gradio as gr

    from app.limits import CACHE_CLEANUP, MAX_UPLOAD, add_login_throttle, limit_image_decoding

    limit_image_decoding()  # uploads over the limit are refused from their header, before decoding
    demo = build(rt)
    demo.delete_cache = CACHE_CLEANUP  # uploads and download copies older than an hour are deleted
    demo.queue(default_concurrency_limit=None)
    # Everything loaded so far (torch, transformers, gradio, the model) lives as long as the
    # server: keep it out of the garbage collector's full passes, which otherwise take
    # ~250 ms with these libraries loaded and stall the camera and token streams.
    from policy.gcfreeze import freeze_long_lived_objects

    freeze_long_lived_objects()
    theme = gr.themes.Soft(primary_hue="blue", neutral_hue="slate")
    _, url, share_url = demo.launch(
        server_name=cfg.host, server_port=cfg.port, share=cfg.share, auth=cfg.auth, prevent_thread_lock=True,
        quiet=True, show_error=True, allowed_paths=[str(rt.history.folder.resolve())], max_file_size=MAX_UPLOAD, theme=theme, css=CSS, ssr_mode=False, footer_links=["api"],
    )
    add_camera_route(demo, rt)
    if cfg.auth:
        add_login_throttle(demo)  # per-client back-off on failed logins
    local = f"http://{'127.0.0.1' if cfg.host in ('0.0.0.0', '::') else cfg.host}:{cfg.port}"
    if not quiet:
        print(f"VLM2VLA demo running at {local}" + (f"  (share: {share_url})" if share_url else ""), flush=True)
        print(f"robot: {rt.names.robot} · policy: {rt.names.policy} · validator: {rt.names.validator} — Ctrl+C to stop",
              flush=True)
    if not block:
        return demo, rt, local
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        rt.close()
        demo.close()


if __name__ == "__main__":
    launch()
