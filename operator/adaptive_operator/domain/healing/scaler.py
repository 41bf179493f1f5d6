"""What healing asks of the scaling daemon: a floor while a scale-out holds, and the
HealingLimited condition in the scaling status (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.domain.common.conditions import Condition
from adaptive_operator.domain.healing.inputs import LedgerError, ledger_from_json
from adaptive_operator.domain.healing.ladder import policy_from_spec, scale_out_floor
from adaptive_operator.domain.healing.plan import LEDGER
from adaptive_operator.domain.healing.targets import CONDITION as LIMITED
from adaptive_operator.domain.healing.targets import limited_condition, remedies


def healing_floor(spec: AdaptiveServiceSpec, annotations: Mapping[str, str],
                  now: float) -> int | None:
    """A healing scale-out recorded in the ledger annotation holds the replicas up; a damaged
    ledger holds nothing (the healing daemon reports it)."""
    if spec.healing is None or not spec.healing.enabled:
        return None
    try:
        ledger = ledger_from_json(annotations.get(LEDGER))
    except LedgerError:
        return None
    return scale_out_floor(policy_from_spec(spec.healing), ledger, now)


def healing_conditions(spec: AdaptiveServiceSpec, old: Mapping[str, Any]) -> list[Condition]:
    """HealingLimited while healing is on: what it can and cannot do to this kind."""
    if spec.healing is not None and spec.healing.enabled:
        ref = spec.scale_target_ref
        return [limited_condition(remedies(ref.api_version, ref.kind))]
    had = any(c.get("type") == LIMITED for c in old.get("conditions") or [])
    return [Condition(LIMITED, "False", "HealingDisabled", "healing is off")] if had else []
