"""The OpenAPI schema as this deployment answers: FastAPI builds it from the routes; this puts in
what FastAPI cannot know, so that a request the schema allows is one the service accepts."""

from __future__ import annotations

from typing import Any

from app.core.settings import Settings


def finish(openapi: dict[str, Any], settings: Settings) -> dict[str, Any]:
    errors_as_json(openapi)
    deployment_limits(openapi, settings)
    empty_query_values(openapi)
    return openapi


def empty_query_values(openapi: dict[str, Any]) -> None:
    """An optional query parameter sent empty (``?state=``) is taken as absent
    (``app.api.middleware.EmptyQueryAsAbsent``): the schema says so, as OpenAPI's allowEmptyValue."""
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and not parameter.get("required"):
                    parameter["allowEmptyValue"] = True


def errors_as_json(openapi: dict[str, Any]) -> None:
    """Every error answer is JSON, whatever the operation's success answers are (a log's text, a
    file): FastAPI documents additional answers in the route's media type, so this puts them back."""
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            for status, answer in operation.get("responses", {}).items():
                schemas = [c.get("schema", {}) for c in answer.get("content", {}).values()]
                if status.isdigit() and int(status) >= 400 and any(s.get("$ref", "").endswith("/ErrorOut") for s in schemas):
                    answer["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}


def deployment_limits(openapi: dict[str, Any], settings: Settings) -> None:
    """The operator's limits where the schema states a bound: the models say the most any
    deployment allows; this deployment may allow less."""
    schemas = openapi.get("components", {}).get("schemas", {})
    runtime = schemas.get("TrainingSpec", {}).get("properties", {}).get("max_runtime_seconds", {})
    for option in runtime.get("anyOf", [runtime]):
        if option.get("type") == "integer":
            option["maximum"] = min(option.get("maximum", settings.max_runtime_seconds), settings.max_runtime_seconds)
            option["description"] = f"at most KILN_MAX_RUNTIME_SECONDS ({settings.max_runtime_seconds:,} here)"
    transform = schemas.get("TransformIn", {}).get("properties", {}).get("inputs")
    if transform is not None:
        transform["maxItems"] = settings.max_predict_samples
    predict = openapi.get("paths", {}).get("/v1/models/{model_id}/predict", {}).get("post", {}).get("requestBody", {}).get("content", {})
    if "application/json" in predict:
        predict["application/json"]["schema"]["properties"]["inputs"]["maxItems"] = settings.max_predict_samples
