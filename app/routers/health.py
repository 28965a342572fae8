"""Liveness and readiness, open to all."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.deps import SessionDep, SettingsDep
from app.queue import broker_reachable

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz():
    return {"status": "ok"}


@router.get("/readyz")
def readyz(session: SessionDep, settings: SettingsDep):
    try:
        session.execute(text("SELECT 1"))
        database = True
    except Exception:  # noqa: BLE001 - reported, not raised
        database = False
    broker = broker_reachable(settings)
    body = {"status": "ok" if database and broker else "unavailable", "database": database, "broker": broker}
    return JSONResponse(body, status_code=200 if database and broker else 503)
