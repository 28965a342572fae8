"""Liveness and readiness, open to all."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.api.deps import BrokerDep, ReadSessionDep
from app.core.db.engine import reachable


class HealthOut(BaseModel):
    status: str


class ReadinessOut(BaseModel):
    status: str
    database: bool
    broker: bool


router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, operation_id="getHealth")
def healthz():
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadinessOut, operation_id="getReadiness",
            responses={503: {"model": ReadinessOut, "description": "the database or the broker does not answer"}})
def readyz(session: ReadSessionDep, broker: BrokerDep):
    database, queue = reachable(session), broker.reachable()
    body = {"status": "ok" if database and queue else "unavailable", "database": database, "broker": queue}
    return JSONResponse(body, status_code=200 if database and queue else 503)
