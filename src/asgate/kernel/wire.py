"""Base model for 3GPP JSON: camelCase on the wire, snake_case in Python.

TS 29.500 5.2.9 / TS 29.501 5.2.4: a receiver ignores attributes it does not know, so that newer
senders can talk to older receivers; optional attributes are absent rather than ``null``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

# Validation context that marks input read from the network (see WireModel._no_null).
WIRE = {"wire": True}
# RFC 3339 5.6 date-time (OpenAPI "format: date-time", TS 29.571 DateTime): a time zone offset is required.
_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def _date_time(value: Any, info: ValidationInfo) -> Any:
    # On the wire a date-time is an RFC 3339 string, never a number (pydantic would take one as Unix
    # time) nor a time without its offset; values built in Python or read back from the store pass.
    if info.context and info.context.get("wire") and value is not None:
        if not isinstance(value, str) or not _RFC3339.match(value):
            raise ValueError(
                "must be an RFC 3339 date-time with a time zone offset, e.g. 2030-01-01T00:00:00Z"
            )
    return value


DateTime = Annotated[datetime, BeforeValidator(_date_time)]


class WireModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        frozen=True,
        # RFC 8259 6: JSON has no NaN or Infinity (pydantic would take them, and 1e999 as infinity,
        # then write null back where a number is documented).
        allow_inf_nan=False,
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
