"""The JSON API under /api/v1 (OpenAPI at /api/v1/openapi.json, docs at /api/v1/docs)."""

from fastapi import APIRouter

from autodl.service.api import account, jobs, predictions

router = APIRouter(prefix="/api/v1")
router.include_router(jobs.router)
router.include_router(predictions.router)
router.include_router(account.router)

__all__ = ["router"]
