"""Field-level disclosure marking and data minimisation (DOMAIN.md "Disclosure profiles").

A model field that not every recipient may see carries, in its ``json_schema_extra``, the least
profile allowed to see it (``x-disclosure``) and whether it is personal data
(``x-personal-data``); unmarked fields are for everyone. The marks show up in the published JSON
Schema, and :func:`minimise` / :func:`strip_personal` apply them mechanically, recursing through
nested models, lists and dicts, so no service writes its own field lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from schemas.taxonomy import Profile
from schemas.timeutil import floor_quarter_hour

DISCLOSURE_KEY = "x-disclosure"
PERSONAL_KEY = "x-personal-data"


def restricted(profile: Profile, *, personal: bool = False) -> dict[str, Any]:
    """``json_schema_extra`` for a field that only ``profile`` and above may see."""
    return {DISCLOSURE_KEY: profile.value, PERSONAL_KEY: personal}


def required_profile(info: FieldInfo) -> Profile:
    """The least profile allowed to see a field; unmarked fields are coarse (everyone)."""
    extra = info.json_schema_extra
    if isinstance(extra, Mapping) and DISCLOSURE_KEY in extra:
        return Profile(str(extra[DISCLOSURE_KEY]))
    return Profile.COARSE


def is_personal(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, Mapping) and bool(extra.get(PERSONAL_KEY, False))


# Values kept as they are, told apart by their exact type (the common case, checked first).
_PLAIN = frozenset({str, int, float, bool, type(None), UUID})


@cache
def _visible(model: type[BaseModel], profile: Profile | None) -> tuple[str, ...]:
    """The fields of ``model`` a recipient with ``profile`` may see (None: every field but
    personal data). Worked out once a model and profile: the marks are the class's."""
    return tuple(
        name
        for name, info in model.model_fields.items()
        if (not is_personal(info) if profile is None else profile.may_see(required_profile(info)))
    )


def _filtered(value: Any, profile: Profile | None, coarse_time: bool) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, BaseModel):
        return {
            name: _filtered(getattr(value, name), profile, coarse_time)
            for name in _visible(type(value), profile)
        }
    if isinstance(value, list | tuple):
        return [_filtered(v, profile, coarse_time) for v in value]
    if isinstance(value, dict):
        return {k: _filtered(v, profile, coarse_time) for k, v in value.items()}
    if coarse_time and isinstance(value, datetime):
        return floor_quarter_hour(value)
    return value


def minimise(model: BaseModel, profile: Profile | str) -> dict[str, Any]:
    """The JSON-ready body of ``model`` as a recipient with ``profile`` may see it.

    ``coarse`` also gets every time rounded down to the quarter hour.
    """
    profile = Profile(profile)
    return to_jsonable_python(_filtered(model, profile, coarse_time=profile is Profile.COARSE))


def strip_personal(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready body of ``model`` without personal data (for analytics)."""
    return to_jsonable_python(_filtered(model, None, False))
