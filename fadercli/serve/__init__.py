"""`fader serve`: live attribute sliders in a browser, and an HTTP API, over the Python API.

    settings.py the server's settings: token, cookie, limits, origins
    guard.py    the gate before every route: Host, other sites, the token, the body size
    work.py     model work on a few threads, a bounded queue (503 when full), a shutdown that does not wait
    models.py   the models the server edits with: those given (--model), or the registry's, loaded on first use
    cache.py    the photos uploaded, each analysed once (engine.analysis), in an LRU bounded by count and bytes
    renders.py  one render of a photo at a time, identical requests shared, superseded ones dropped
    errors.py   failures as JSON {"error": one line, "code": ...} with their HTTP status
    camera.py   the camera's WebSocket: frames in, edited frames out, the newest first (video/live.py)
    app.py      the ASGI app (FastAPI): the routes
    page.py     the page and its Content-Security-Policy; a run's curves as a PNG
    server.py   the token's source, binding, the URL, uvicorn and its limits, torch threads, Ctrl-C
    static/     the page: one self-contained HTML file (no network needed)

Nothing here imports at `fader --help` time: the command imports it inside its function.
"""

from fadercli.errors import EXTRAS, import_extra

for _module in EXTRAS["serve"][0]:  # one line naming the extra, before any of them is needed
    import_extra(_module, "serve")
