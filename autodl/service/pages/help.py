"""The front page, the help pages, the privacy statement and the sample dataset download."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse

from autodl.formats.archive import zip_folder
from autodl.service.deps import OptionalUser, ServiceDep, ServiceError
from autodl.service.pages.render import render

router = APIRouter()
HELP = {
    "format": "How to format a dataset",
    "score": "How the score works",
    "predictions": "Predictions on unlabelled data",
    "api": "The API and the command line",
}
_sample_lock = threading.Lock()


@router.get("/")
def home(request: Request, user: OptionalUser):
    if user is not None:
        return RedirectResponse("/jobs", status_code=303)
    return render(request, "home.html")


@router.get("/help")
def help_index(request: Request, user: OptionalUser):
    return render(request, "help/index.html", topics=HELP)


@router.get("/help/{topic}")
def help_topic(request: Request, topic: str, user: OptionalUser):
    if topic not in HELP:
        raise ServiceError(404, f"No help page called {topic!r}.", "See /help for the list.")
    return render(request, f"help/{topic}.html", topics=HELP, title=HELP[topic])


@router.get("/privacy")
def privacy(request: Request, user: OptionalUser):
    return render(request, "privacy.html")


@router.get("/samples/digits.zip")
def sample_digits(service: ServiceDep):
    """scikit-learn's digits as an AutoDL zip in the submission layout, made once and cached."""
    path = service.storage.cache_path("digits.zip")
    with _sample_lock:
        if not path.is_file():
            make_sample_zip(path, service.storage.temp_dir("sample-"))
    return FileResponse(path, media_type="application/zip", filename="digits.zip")


def make_sample_zip(path: Path, work: Path) -> Path:
    from autodl.formats.samples import make_digits

    try:
        # Files at the archive root, as the submission layout asks.
        zip_folder(make_digits(work), path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path
