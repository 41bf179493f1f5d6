"""An AdaptiveService's validated spec, parsed again only when its generation moves.

Both daemons of every service read the spec each sync; validating it with pydantic each time
was about 2% of the operator's CPU at 300 services, for a spec that changes rarely. The API
server bumps `metadata.generation` on every spec change, so the pair is a safe key; a body
without a generation (never from the API server) is parsed every time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec

Parsed = tuple[object, AdaptiveServiceSpec]


def validated(body: Mapping[str, Any],
              kept: Parsed | None) -> tuple[AdaptiveServiceSpec, Parsed | None]:
    """The spec of `body` (raises pydantic's ValidationError), and what to keep for next time."""
    generation = (body.get("metadata") or {}).get("generation")
    if generation is None:  # never from the API server: parsed every time
        return _parsed(body), None
    if kept is None or kept[0] != generation:
        kept = (generation, _parsed(body))
    return kept[1], kept


def _parsed(body: Mapping[str, Any]) -> AdaptiveServiceSpec:
    return AdaptiveServiceSpec.model_validate(dict(body.get("spec") or {}))
