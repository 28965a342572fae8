"""Liveness and readiness, open to all."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.api.deps import BrokerDep, ReadSessionDep, StoreDep
from app.core.db.engine import reachable


class HealthOut(BaseModel):
    status: str


class ReadinessOut(BaseModel):
    status: str
    database: bool
    broker: bool
    store: bool


router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, operation_id="getHealth")
def healthz():
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadinessOut, operation_id="getReadiness",
            responses={503: {"model": ReadinessOut, "description": "the database, the broker or the artifact store does not answer"}})
def readyz(session: ReadSessionDep, broker: BrokerDep, store: StoreDep):
    database, queue, artifacts = reachable(session), broker.reachable(), store.reachable()
    ready = database and queue and artifacts
    body = {"status": "ok" if ready else "unavailable", "database": database, "broker": queue, "store": artifacts}
    return JSONResponse(body, status_code=200 if ready else 503)
