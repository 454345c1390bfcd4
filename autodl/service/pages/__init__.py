"""HTML pages (Jinja2 templates under ../templates, CSS and JS under ../static)."""

from fastapi import APIRouter

from autodl.service.pages import account, help, jobs, predictions

router = APIRouter(include_in_schema=False)
router.include_router(help.router)
router.include_router(account.router)
router.include_router(jobs.router)
router.include_router(predictions.router)

__all__ = ["router"]
