"""What a handler sees of one request, and the JSON envelope helpers shared by the handlers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request

from connector.emulators.hubspot import errors as err
from connector.emulators.hubspot.store import Store
from connector.emulators.hubspot.validation import format_instant, now

Result = tuple[int, Any]  # (status, JSON body or None for 204)


@dataclass
class Call:
    """One API call: the store (its lock already held), the request, and the emulator's search lag."""

    store: Store
    request: Request
    search_lag_s: float

    def json(self) -> Any:
        """The body as JSON; HubSpot's parser error (no category) when it is not JSON."""
        raw = self.request.get_data(cache=True)
        if not raw.strip():
            raise err.fail(400, "Invalid input JSON on line 1, column 1: No content to map due to end-of-input")
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            line, column = getattr(exc, "lineno", 1), getattr(exc, "colno", 1)
            reason = getattr(exc, "msg", "Unexpected character")
            raise err.fail(400, f"Invalid input JSON on line {line}, column {column}: {reason}") from None

    def object_body(self) -> dict[str, Any]:
        body = self.json()
        if not isinstance(body, dict):
            raise err.invalid_input("Cannot deserialize value from a non-object value (expected a JSON object)")
        return body

    def query_list(self, name: str) -> list[str] | None:
        """A list parameter sent repeated (the Python SDK's ``multi`` format) or comma-separated, or both."""
        values = self.request.args.getlist(name)
        if not values:
            return None
        return [part.strip() for value in values for part in value.split(",") if part.strip()]

    def flag(self, name: str) -> bool:
        """``archived=true`` / ``archived=True`` (the SDK sends Python's ``str(bool)``)."""
        return self.request.args.get(name, "false").strip().lower() == "true"

    def int_arg(self, name: str, default: int, maximum: int) -> int:
        raw = self.request.args.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            raise err.validation(f"Invalid value for query parameter {name}: {raw}") from None
        if value < 1 or value > maximum:
            raise err.validation(f"{name} must be between 1 and {maximum}, got {value}")  # UNVERIFIED text
        return value


def batch_inputs(body: dict[str, Any], maximum: int) -> list[Any]:
    """``inputs`` of a batch body. Object batch endpoints take at most 100 inputs (contacts guide: "up to 100");
    the text of the 400 is UNVERIFIED."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise err.missing_fields(["inputs"])
    if len(inputs) > maximum:
        raise err.validation(
            f"Too many inputs: {len(inputs)}. Batch requests accept at most {maximum} inputs.",
            context={"inputs": [str(len(inputs))]},
        )
    return inputs


def batch_response(results: list[Any], errors: list[dict[str, Any]], started: str, ok_status: int = 200) -> Result:
    """``BatchResponse…``: 207 with ``errors``/``numErrors`` when some inputs failed, else ``ok_status``."""
    body: dict[str, Any] = {"status": "COMPLETE", "results": results}
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
    body["startedAt"] = started
    body["completedAt"] = format_instant(now())
    return (207 if errors else ok_status), body


def batch_error(category: str, message: str, context: dict[str, list[str]]) -> dict[str, Any]:
    """One entry of a 207's ``errors``. Observed for batch read and batch update (integration fixtures):
    ``{"status":"error","category":"OBJECT_NOT_FOUND","message":"Could not get some CONTACT objects, they may be
    deleted or not exist. Check that ids are valid.","context":{"ids":["7"]}}``."""
    return {"status": "error", "category": category, "message": message, "context": context}


def started_at() -> str:
    return format_instant(now())
