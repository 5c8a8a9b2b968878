"""HTTP serving: a FastAPI app over a run directory, a static web page, and a uvicorn runner.

- :func:`create_app` builds the app (``movierec.serving.app``)
- :func:`serve` runs it on uvicorn (``movierec.serving.server``)

FastAPI and uvicorn come with the ``serve`` extra; importing this package needs them.
"""

from __future__ import annotations

from typing import Any

from movierec.serving.app import create_app

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    # Imported lazily so `python -m movierec.serving.server` does not import itself twice.
    if name == "serve":
        from movierec.serving.server import serve

        return serve
    raise AttributeError(name)
