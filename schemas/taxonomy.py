"""The taxonomy (categories, priorities, recipients, nightlife and school hours), from data.

``schemas/data/taxonomy.yaml`` is the single source; this module validates it with pydantic
when it is first used and offers typed accessors. A bad file raises :class:`TaxonomyError`
naming the line and the field of every problem, so an operator can fix it without reading code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_PATH = Path(__file__).parent / "data" / "taxonomy.yaml"

Priority = Literal["P1", "P2", "P3", "P4"]
"""P1 is the most urgent."""

Condition = Literal[
    "in_progress", "weapon", "injuries", "public_task_victim", "danger", "nightlife_centre"
]
"""What a priority raise or a recipient rule depends on; the meanings are in taxonomy.yaml."""

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)

# What a placeholder in a recipient code stands for. Partner codes are the partners' own
# identifiers; the rest are CBS codes of Haarlem (GM0392).
PLACEHOLDERS: dict[str, str] = {
    "wijk": r"WK0392\d{2}",
    "buurt": r"BU0392\d{4}",
    "partner": r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}",
}
_PLACEHOLDER = re.compile(r"\{([a-z]+)\}")
_CATEGORY_CODE = re.compile(r"[a-z]+(?:[.-][a-z]+)*")


class Profile(StrEnum):
    """Disclosure profile of a recipient: how much of an incident it may see."""

    COARSE = "coarse"
    OPERATIONAL = "operational"
    FULL = "full"

    @property
    def rank(self) -> int:
        return _PROFILE_RANK[self]

    def may_see(self, required: Profile) -> bool:
        """Whether a recipient with this profile may see data marked ``required``."""
        return self.rank >= required.rank


_PROFILE_RANK = {Profile.COARSE: 0, Profile.OPERATIONAL: 1, Profile.FULL: 2}


def priority_rank(priority: Priority) -> int:
    """1 for P1 (most urgent) .. 4 for P4, for comparing priorities."""
    return int(priority[1])


def _hhmm(value: Any) -> Any:
    # Unquoted 22:00 is a base-60 integer in YAML 1.1 (1320), which pydantic would read as
    # seconds; insist on the quoted "HH:MM" form instead.
    if not isinstance(value, str) or not re.fullmatch(r"\d{2}:\d{2}", value):
        raise ValueError('write the time as a quoted "HH:MM" string')
    return value


HHMM = Annotated[time, BeforeValidator(_hhmm)]


class _Data(BaseModel):
    # A typo in a hand-written file must fail loudly, not be ignored.
    model_config = ConfigDict(frozen=True, extra="forbid")


class Window(_Data):
    """A time allowance: elapsed minutes/hours, or working days (Europe/Amsterdam)."""

    amount: PositiveInt
    unit: Literal["minutes", "hours", "working_days"]


class PriorityLevel(_Data):
    meaning: str
    acknowledge_within: Window
    handle_within: Window
    escalate_unacknowledged: bool


class PriorityRaise(_Data):
    priority: Priority
    when: tuple[Condition, ...] = Field(min_length=1)


class RecipientRule(_Data):
    """A default recipient of a category: a code (maybe with a placeholder) and conditions."""

    code: str
    when: tuple[Condition, ...] = ()
    unless: tuple[Condition, ...] = ()

    def render(self, **values: str | None) -> str | None:
        """The concrete code, placeholders filled from ``values``; None if one is missing."""
        missing = False

        def fill(match: re.Match[str]) -> str:
            nonlocal missing
            value = values.get(match.group(1))
            if value is None:
                missing = True
                return ""
            return value

        code = _PLACEHOLDER.sub(fill, self.code)
        return None if missing else code


class Category(_Data):
    code: str
    label_nl: str
    label_en: str
    hic: bool = False
    vpt: bool = False
    default_priority: Priority | None
    raised_priority: tuple[PriorityRaise, ...] = ()
    recipients: tuple[RecipientRule, ...] = ()

    @property
    def needs_human(self) -> bool:
        """No default priority: the report goes to the triage queue."""
        return self.default_priority is None


class RecipientKind(_Data):
    """A recipient or a family of recipients (``code`` with a placeholder) and its profile."""

    code: str
    name: str
    profile: Profile

    @field_validator("code")
    @classmethod
    def _known_placeholders(cls, code: str) -> str:
        unknown = set(_PLACEHOLDER.findall(code)) - PLACEHOLDERS.keys()
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {sorted(unknown)}; known: {sorted(PLACEHOLDERS)}"
            )
        return code

    def matches(self, code: str) -> bool:
        """Whether a concrete code (``buurtpreventie.BU03920102``) or the pattern itself fits."""
        return code == self.code or _code_pattern(self.code).fullmatch(code) is not None


@cache
def _code_pattern(code: str) -> re.Pattern[str]:
    """The regular expression of a recipient code with placeholders, built once per code:
    every event that names recipients is checked against them (built per check, this was
    3 to 8 % of the consumers' CPU)."""
    parts = _PLACEHOLDER.split(code)
    # split() alternates literal text and placeholder names.
    return re.compile(
        "".join(re.escape(p) if i % 2 == 0 else PLACEHOLDERS[p] for i, p in enumerate(parts))
    )


class Nightlife(_Data):
    centre_wijk: str = Field(pattern=r"^WK0392\d{2}$")
    starts: HHMM
    ends: HHMM
    nights: tuple[Weekday, ...] = Field(min_length=1)
    nights_before_public_holidays: bool


class SchoolHours(_Data):
    """When schools are in session: a window within one day on some weekdays (local time)."""

    days: tuple[Weekday, ...] = Field(min_length=1)
    starts: HHMM
    ends: HHMM
    public_holidays: bool
    """Whether school hours hold on Dutch public holidays too."""

    @model_validator(mode="after")
    def _within_one_day(self) -> SchoolHours:
        if self.starts >= self.ends:
            raise ValueError("school hours end after they start, on the same day")
        return self


class Taxonomy(_Data):
    version: PositiveInt
    priorities: dict[Priority, PriorityLevel]
    categories: tuple[Category, ...] = Field(min_length=1)
    recipients: tuple[RecipientKind, ...] = Field(min_length=1)
    nightlife: Nightlife
    school_hours: SchoolHours

    @property
    def category_codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.categories)

    def category(self, code: str) -> Category:
        for category in self.categories:
            if category.code == code:
                return category
        raise KeyError(f"unknown category {code!r}; known: {', '.join(self.category_codes)}")

    def priority(self, priority: Priority) -> PriorityLevel:
        return self.priorities[priority]

    def recipient(self, code: str) -> RecipientKind:
        """The recipient kind of a concrete code such as ``politie.wijkagent.WK039201``."""
        for kind in self.recipients:
            if kind.matches(code):
                return kind
        raise KeyError(f"unknown recipient {code!r}")

    def recipient_profile(self, code: str) -> Profile:
        return self.recipient(code).profile


@dataclass(frozen=True, slots=True)
class TaxonomyProblem:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field or '<document>'}: {self.reason}"


class TaxonomyError(ValueError):
    """The taxonomy file is invalid; ``problems`` says where and why."""

    def __init__(self, source: str, problems: list[TaxonomyProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"invalid taxonomy {source}:\n" + "\n".join(f"  {p}" for p in problems))


Loc = tuple[str | int, ...]


def field_path(loc: Loc) -> str:
    """A pydantic error location as a path: ``categories[3].recipients[0].code``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: yaml.Node, loc: Loc) -> int:
    """1-based line of the node at ``loc``; the deepest existing ancestor for a missing key."""
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node = child
    return node.start_mark.line + 1


def _duplicate_keys(node: yaml.Node, loc: Loc = ()) -> list[tuple[Loc, int, str]]:
    # PyYAML silently keeps the last of two equal keys; in a contract file that hides mistakes.
    found: list[tuple[Loc, int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                found.append((loc, key.start_mark.line + 1, f"duplicate key {key.value!r}"))
            seen.add(key.value)
            found += _duplicate_keys(value, (*loc, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _duplicate_keys(item, (*loc, i))
    return found


def _cross_check(tax: Taxonomy) -> list[tuple[Loc, str]]:
    """Rules between parts of the file, which single-field validation cannot see."""
    problems: list[tuple[Loc, str]] = []
    missing = sorted({"P1", "P2", "P3", "P4"} - tax.priorities.keys())
    if missing:
        problems.append((("priorities",), f"priorities {missing} are not defined"))
    seen: set[str] = set()
    for i, kind in enumerate(tax.recipients):
        if kind.code in seen:
            problems.append((("recipients", i, "code"), f"duplicate recipient {kind.code!r}"))
        seen.add(kind.code)
    seen = set()
    for i, cat in enumerate(tax.categories):
        loc: Loc = ("categories", i)
        if not _CATEGORY_CODE.fullmatch(cat.code):
            problems.append(((*loc, "code"), "a code is lower-case words joined by '.' or '-'"))
        if cat.code in seen:
            problems.append(((*loc, "code"), f"duplicate category {cat.code!r}"))
        seen.add(cat.code)
        if cat.default_priority is None and cat.recipients:
            problems.append(
                ((*loc, "recipients"), "a category without default priority has no recipients")
            )
        for j, rise in enumerate(cat.raised_priority):
            if cat.default_priority is None or priority_rank(rise.priority) >= priority_rank(
                cat.default_priority
            ):
                problems.append(
                    (
                        (*loc, "raised_priority", j, "priority"),
                        f"{rise.priority} is not above the default {cat.default_priority}",
                    )
                )
        for j, rule in enumerate(cat.recipients):
            if not any(kind.matches(rule.code) for kind in tax.recipients):
                problems.append(
                    ((*loc, "recipients", j, "code"), f"{rule.code!r} is not a listed recipient")
                )
    return problems


def parse_taxonomy(text: str, source: str = "<taxonomy>") -> Taxonomy:
    """Parse and validate taxonomy YAML; raise :class:`TaxonomyError` with lines and fields."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise TaxonomyError(source, [TaxonomyProblem(1, "", "the file is empty")])
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise TaxonomyError(source, [TaxonomyProblem(line, "", f"YAML: {exc.problem}")]) from exc
    finally:
        loader.dispose()

    dupes = _duplicate_keys(root)
    if dupes:
        raise TaxonomyError(
            source, [TaxonomyProblem(ln, field_path(loc), r) for loc, ln, r in dupes]
        )
    try:
        tax = Taxonomy.model_validate(data)
    except ValidationError as exc:
        problems = [
            TaxonomyProblem(_line_of(root, err["loc"]), field_path(err["loc"]), err["msg"])
            for err in exc.errors(include_url=False)
        ]
        raise TaxonomyError(source, problems) from exc
    cross = _cross_check(tax)
    if cross:
        raise TaxonomyError(
            source, [TaxonomyProblem(_line_of(root, loc), field_path(loc), r) for loc, r in cross]
        )
    return tax


def load_taxonomy(path: Path = DEFAULT_PATH) -> Taxonomy:
    return parse_taxonomy(path.read_text(encoding="utf-8"), source=str(path))


@cache
def taxonomy() -> Taxonomy:
    """The project's taxonomy, loaded and validated once per process."""
    return load_taxonomy()
