"""What can be trained, with each architecture's parameter schema and size."""

from fastapi import APIRouter

from app.deps import CallerDep
from app.schemas import ArchitectureOut
from app.services import architectures

router = APIRouter(prefix="/v1/architectures", tags=["architectures"])


@router.get("", response_model=list[ArchitectureOut])
def list_architectures(caller: CallerDep):
    return [architectures.describe(name) for name in architectures.architecture_names()]
