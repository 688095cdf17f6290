"""What every router of the HTTP service shares: the tagged response base and the error body."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from edgefinder import DISCLAIMER, PURPOSE

__all__ = ["ErrorOut", "Tagged"]


class Tagged(BaseModel):
    """Every response says what it is for."""

    purpose: str = Field(default=PURPOSE, description="Always 'research/ops'.")
    disclaimer: str = Field(
        default=DISCLAIMER, description="Not for gambling or real-money betting."
    )


class ErrorOut(BaseModel):
    detail: Any
    message: str
