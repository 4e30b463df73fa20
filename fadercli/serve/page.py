"""What the server shows besides its API: the page (with a Content-Security-Policy that allows
exactly its own inline script) and a loaded run's curves drawn as a PNG."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from importlib import resources
from pathlib import Path


def curves_png(folder: Path) -> bytes:
    """A training run's curves (train/plot.py) as PNG bytes, small enough for the side panel."""
    from fadercli.train.plot import figure_for

    buffer = io.BytesIO()
    figure_for(folder).savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def page_and_policy() -> tuple[str, str]:
    """The page, and a Content-Security-Policy that allows exactly its own inline script."""
    html = resources.files("fadercli.serve").joinpath("static/index.html").read_text(encoding="utf-8")
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    )
    csp = (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src 'self' blob: data:;"
        " connect-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return html, csp
