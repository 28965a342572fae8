"""Liveness and readiness, open to all."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import BrokerDep, ReadSessionDep
from app.core.db.engine import reachable

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz():
    return {"status": "ok"}


@router.get("/readyz")
def readyz(session: ReadSessionDep, broker: BrokerDep):
    database, queue = reachable(session), broker.reachable()
    body = {"status": "ok" if database and queue else "unavailable", "database": database, "broker": queue}
    return JSONResponse(body, status_code=200 if database and queue else 503)
