"""Base model for 3GPP JSON: camelCase on the wire, snake_case in Python.

TS 29.500 5.2.9 / TS 29.501 5.2.4: a receiver ignores attributes it does not know, so that newer
senders can talk to older receivers; optional attributes are absent rather than ``null``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

# Validation context that marks input read from the network (see WireModel._no_null).
WIRE = {"wire": True}


class WireModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        frozen=True,
    )

    # Fields whose documented type is nullable (asgate's own APIs); every other IE must be absent.
    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _no_null(cls, value: Any, info: ValidationInfo) -> Any:
        # TS 29.501 5.2.4: an absent optional IE is omitted, not null (only *Rm types are nullable).
        if (
            value is None
            and info.context
            and info.context.get("wire")
            and info.field_name not in cls.NULLABLE
        ):
            raise ValueError("null is not allowed; omit the attribute instead")
        return value

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def dump_json(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()

    @classmethod
    def load(cls, data: Any) -> Self:
        return cls.model_validate(data)
