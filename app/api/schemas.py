"""Request bodies of the JSON API, validated field by field (names are the wire's camelCase)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, WithJsonSchema

ReferenceId = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Name = Annotated[str, StringConstraints(max_length=120, strip_whitespace=True)]
# Usage far beyond any real request is a bug in the caller, not usage.
Units = Annotated[int, Field(gt=0, le=1_000_000_000)]
MAX_BATCH = 1_000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CustomerIn(_Body):
    """POST /customers"""

    customerReferenceId: ReferenceId
    email: EmailStr
    firstName: Name | None = None
    lastName: Name | None = None


class SubscriptionIn(_Body):
    """POST /subscriptions"""

    customerReferenceId: ReferenceId
    planId: Key
    successUrl: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2048)] | None = (
        None
    )
    cancelUrl: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2048)] | None = (
        None
    )


class PlanChangeIn(_Body):
    """POST /subscriptions/{id}/plan-change"""

    changeToPlanId: Key
    changeType: Literal["UPGRADE", "DOWNGRADE"]


class Track(_Body):
    """What a pre-flight check would record."""

    eventName: Key
    usageUnits: Units


class SimulationIn(_Body):
    """POST /entitlements"""

    customerReferenceId: ReferenceId
    featureKey: Key
    track: Track


TokenCount = Annotated[int, Field(ge=0, le=10**12)]


class CostInput(_Body):
    """What serving an event cost, for the OpenAPI document: the model called and its tokens
    (priced by the operator's rates, or the bundled prices at the event's time), or a stated
    cost. The engine checks it field by field (app/entitlements/costs.py)."""

    model: Annotated[str, StringConstraints(min_length=1, max_length=120)] | None = None
    modelProvider: Annotated[str, StringConstraints(min_length=1, max_length=120)] | None = None
    inputTokens: TokenCount = 0
    outputTokens: TokenCount = 0
    cachedInputTokens: Annotated[TokenCount, Field(description="Part of inputTokens.")] = 0
    cacheWriteTokens: Annotated[TokenCount, Field(description="Part of inputTokens.")] = 0
    costAmount: (
        Annotated[
            str | float,
            Field(description="A stated cost in major units of currency; it wins over any price."),
        ]
        | None
    ) = None
    currency: (
        Annotated[str, Field(description="The catalog's currency, with costAmount only.")] | None
    ) = None


class EventIn(_Body):
    """POST /events (and each item of a batch)"""

    eventIdempotencyKey: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    eventName: Key
    customerReferenceId: ReferenceId
    featureKey: Key
    usageUnits: Units
    # Any JSON here: the engine checks it field by field (app/entitlements/costs.py), so that a
    # batch's, a file's and a single event's are refused alike, naming the field.
    costInput: Annotated[
        Any,
        WithJsonSchema({"anyOf": [{"$ref": "#/components/schemas/CostInput"}, {"type": "null"}]}),
    ] = None


class BatchIn(_Body):
    """POST /events/batch"""

    events: Annotated[list[Any], Field(min_length=1, max_length=MAX_BATCH)]
