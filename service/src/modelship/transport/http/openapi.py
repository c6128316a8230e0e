"""The OpenAPI document, with request schemas derived from the loaded model's card."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from modelship.contracts.card import ModelCard
from modelship.contracts.settings import Settings
from modelship.model.codecs.base import MAX_LISTED_CATEGORIES, numeric_bounds
from modelship.transport.http.schemas import ErrorResponse

RECORD_REF = {"$ref": "#/components/schemas/Record"}
BATCH_REF = {"$ref": "#/components/schemas/Batch"}
ERROR_REF = {"$ref": "#/components/schemas/Error"}


def record_schema(card: ModelCard) -> dict[str, Any]:
    """One JSON object with every feature, typed and described from the training data."""
    properties: dict[str, Any] = {}
    for feature in card.features:
        if feature.numeric is not None:
            stats = feature.numeric
            low, high = numeric_bounds(stats)
            properties[feature.name] = {
                "type": ["number", "null"],
                "description": (
                    f"Numeric. Seen in training: {stats.min:g} to {stats.max:g}, median "
                    f"{stats.median:g}. null is imputed with the median. Values beyond "
                    f"{low:g} to {high:g} are refused."
                ),
                "examples": [stats.median],
                "minimum": low,
                "maximum": high,
            }
        else:
            categories = feature.categories or []
            listed = ", ".join(categories[:MAX_LISTED_CATEGORIES])
            more = " …" if len(categories) > MAX_LISTED_CATEGORIES else ""
            properties[feature.name] = {
                "type": "string",
                "description": (
                    f"Category. Seen in training: {listed}{more}. Others are accepted, "
                    "ignored by the model and reported in `warnings`."
                ),
                "examples": categories[:1],
            }
    return {
        "title": "Record",
        "type": "object",
        "properties": properties,
        "required": [f.name for f in card.features],
        "additionalProperties": False,
        "examples": card.examples[:1],
    }


def install_openapi(app: FastAPI, card: ModelCard, settings: Settings) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Record"] = record_schema(card)
        components["Batch"] = {
            "title": "Batch",
            "type": "array",
            "items": RECORD_REF,
            "minItems": 1,
            "maxItems": settings.max_batch_rows,
        }
        # The error body's schema is the model that builds it (modelship.transport.http.errors).
        error = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(error.pop("$defs", {}))
        components["Error"] = error
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]
