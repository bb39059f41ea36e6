"""The live camera as an MJPEG stream: GET /camera.mjpg, beside Gradio's own routes.

It stands apart from the page because it reaches into Gradio's FastAPI app (its login
tokens and its route order), which a Gradio upgrade may change: `add_camera_route` is the
one place to look when the picture stops after one.
"""

from __future__ import annotations

import gradio as gr
from fastapi import Request  # module level: FastAPI resolves the route's annotations here

from app.runtime import Runtime

LIVE_CAMERA_HTML = (
    '<div class="cam"><div class="cam-label">Robot camera · live</div>'
    '<img id="camera-live" src="camera.mjpg" alt="live robot camera"></div>'
)


def add_camera_route(demo: gr.Blocks, rt: Runtime, fps: float = 10.0) -> None:
    """GET /camera.mjpg: the live camera as an MJPEG stream (multipart/x-mixed-replace) at `fps`.

    A browser shows it with a plain <img>, frame after frame, without a Gradio event per frame —
    so the picture stays fluid however busy the queue is. Same login as the page when --auth is set.
    """
    import asyncio

    from fastapi import HTTPException
    from fastapi.responses import StreamingResponse

    app = demo.app
    boundary = "frame"

    def logged_in(request: Request) -> bool:
        if getattr(app, "auth", None) is None:
            return True
        cid = getattr(app, "cookie_id", "")
        token = request.cookies.get(f"access-token-{cid}") or request.cookies.get(f"access-token-unsecure-{cid}")
        return app.tokens.get(token) is not None

    async def frames(request: Request):
        yield f"--{boundary}\r\n".encode()
        while True:  # Starlette cancels this generator when the client goes away
            # A frame every 1/fps s, new or not, like a camera: browsers show a part only once
            # the next one begins, and a steady rate lets a viewer see the stream is alive.
            if rt.camera.obs is not None:
                jpeg = rt.camera.jpeg_frame()
                head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                yield head + jpeg + f"\r\n--{boundary}\r\n".encode()
            await asyncio.sleep(1.0 / fps)

    async def camera_mjpg(request: Request):
        if not logged_in(request):
            raise HTTPException(status_code=401, detail="log in first")
        return StreamingResponse(frames(request), media_type=f"multipart/x-mixed-replace; boundary={boundary}",
                                 headers={"Cache-Control": "no-store"})

    app.add_api_route("/camera.mjpg", camera_mjpg, methods=["GET"], include_in_schema=False)
    app.router.routes.insert(0, app.router.routes.pop())  # before Gradio's own catch-all routes


