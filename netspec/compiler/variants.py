"""Model families: one spec, several sizes (`variants:`), as torchvision's width/depth multipliers.

A variant is typed: a width multiplier, a depth multiplier and an input shape. The chosen
variant's multipliers are the names `width_mult` and `depth_mult` in the spec's top-level
expressions (1.0 without a variant), so a spec writes its widths as torchvision computes
them, `"${divisible(32 * width_mult)}"` (torchvision's `_make_divisible` rounding) and its
depths as `"${ceil(3 * depth_mult)}"`; the variant's `input` replaces the spec's. Which
variant is built: `--variant NAME` on the command line, else the spec's `variant:`, else
none (the spec as written).
"""
from __future__ import annotations

from typing import Annotated, Any, Optional, Union

from pydantic import Field, field_validator

from netspec.compiler.schema_base import Model

MAX_MULT = 16.0
Shape = Union[Annotated[int, Field(gt=0, le=1_000_000)], Annotated[list[Annotated[int, Field(gt=0, le=1_000_000)]], Field(min_length=1, max_length=3)]]


class Variant(Model):
    """One member of a model family."""

    description: str = ""
    width_mult: float = Field(1.0, gt=0, le=MAX_MULT, strict=True, description="channel multiplier: `width_mult` in expressions")
    depth_mult: float = Field(1.0, gt=0, le=MAX_MULT, strict=True, description="layer-count multiplier: `depth_mult` in expressions")
    input: Optional[Shape] = Field(None, description="the input shape of this variant (default: the spec's)")

    @field_validator("input")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) == 2:
            raise ValueError("input is features ([F]) or channels×height×width ([C, H, W])")
        return [value] if isinstance(value, int) else value

    def values(self) -> dict[str, Any]:
        """The names this variant gives the spec's expressions."""
        return {"width_mult": self.width_mult, "depth_mult": self.depth_mult}


DEFAULT = Variant()


def select(variants: dict[str, Variant], chosen: str | None) -> Variant:
    """The variant named `chosen` (None: the spec as written); KeyError names the known ones."""
    if chosen is None:
        return DEFAULT
    if chosen not in variants:
        known = ", ".join(variants) or "none"
        raise KeyError(f"unknown variant {chosen!r} (variants: {known})")
    return variants[chosen]
