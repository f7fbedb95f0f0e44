"""Routing: who is told about an incident, as ordered rules in ``routes.yaml``.

The rules work like Prometheus Alertmanager's route tree, flattened to a list: they are checked
in order and the first rule that matches decides, unless it says ``continue: true``, in which
case its recipients are kept and the next rules are checked too. A rule that matches and adds
nobody (the triage queue) still stops the search.

A rule has a ``name``, optional ``match`` conditions (all must hold; a rule without any
matches every incident) and what it yields:

- ``recipients``: recipient codes of the taxonomy, with ``{wijk}``, ``{buurt}`` and
  ``{partner}`` filled in from the incident;
- ``category_defaults: true``: the category's default recipients from the taxonomy, their
  ``when``/``unless`` conditions evaluated against the incident. The taxonomy is the single
  source of default recipients; ``routes.yaml`` only adds what goes beyond them.

Every recipient gets the disclosure profile the taxonomy gives its code. Recipients reached
twice are kept once, in the order first reached.

A placeholder that cannot be filled (no wijk, buurt or partner known), or that fills in a code
which is not a recipient (a location outside Haarlem), drops that recipient with a note in the
trace. A P1 or P2 incident whose recipient needing the wijk was dropped goes to
``politie.meldkamer`` instead: without a wijk the control room is the police's way in, and a
VPT report must reach police always (DOMAIN.md).

:func:`load_routes` validates the whole file at start; every problem names the rule (index,
from 0, and name) and the field: ``rule 3 'sus-team': recipients[0]: unknown recipient``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from schemas import geo
from schemas.events import (
    BuurtCode,
    Flags,
    IncidentReported,
    PartnerCode,
    PartnerKind,
    Recipient,
    WijkCode,
)
from schemas.taxonomy import (
    HHMM,
    PLACEHOLDERS,
    WEEKDAYS,
    Condition,
    Priority,
    RecipientRule,
    Weekday,
    field_path,
    taxonomy,
)
from schemas.timeutil import AMSTERDAM, is_nightlife, is_school_hours

DEFAULT_PATH = Path(__file__).with_name("routes.yaml")


WIJK_FALLBACK = "politie.meldkamer"
WIJK_FALLBACK_PRIORITIES: frozenset[Priority] = frozenset({"P1", "P2"})

# Conditions that are plain report flags; danger and nightlife_centre are derived below.
_FLAG_CONDITIONS: tuple[Condition, ...] = tuple(
    c for c in get_args(Condition) if c in Flags.model_fields
)


def conditions_holding(
    flags: Flags, wijk_code: str | None = None, at: datetime | None = None
) -> frozenset[Condition]:
    """The taxonomy conditions (``when``/``unless``) that hold for an incident.

    ``danger`` is weapon or injuries; ``nightlife_centre`` is nightlife hours in the centre
    wijk and needs ``at``, the moment of the incident.
    """
    held: set[Condition] = {c for c in _FLAG_CONDITIONS if getattr(flags, c)}
    if flags.weapon or flags.injuries:
        held.add("danger")
    if at is not None and wijk_code == taxonomy().nightlife.centre_wijk and is_nightlife(at):
        held.add("nightlife_centre")
    return frozenset(held)


# --- configuration files -----------------------------------------------------------------


class ConfigError(ValueError):
    """A configuration file is invalid; ``problems`` lists every mistake found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"invalid {source}:\n" + "\n".join(f"  {p}" for p in problems))


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys.

    PyYAML keeps the last of two equal keys silently; in a hand-edited file that hides a rule.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key.value!r}", key.start_mark
                    )
                seen.add(key.value)
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> Any:
    """The data of a YAML file; :class:`ConfigError` with the line for a syntax error."""
    loader = _UniqueKeyLoader(path.read_text(encoding="utf-8"))
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(str(path), [f"line {line}: {exc.problem}"]) from exc
    finally:
        loader.dispose()
    if data is None:
        raise ConfigError(str(path), ["the file is empty"])
    return data


Loc = tuple[str | int, ...]


def error_messages(exc: ValidationError, where: Callable[[Loc], str] = field_path) -> list[str]:
    """pydantic's errors as ``<where>: <message>`` lines."""
    lines = []
    for err in exc.errors(include_url=False):
        message = err["msg"].removeprefix("Value error, ")
        place = where(tuple(err["loc"]))
        lines.append(f"{place}: {message}" if place else message)
    return lines


def _suggest(value: str, known: list[str]) -> str:
    close = difflib.get_close_matches(value, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class ConfigModel(BaseModel):
    """Base of hand-written configuration: immutable, and an unknown key is an error that
    lists the known ones (a misspelt matcher must not silently match everything); this does
    what ``extra="forbid"`` would, with a better message."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = [f.alias or name for name, f in cls.model_fields.items()]
            for key in data:
                if key not in known:
                    raise ValueError(
                        f"unknown key {key!r}{_suggest(str(key), known)}; known: {', '.join(known)}"
                    )
        return data


T = TypeVar("T")


def _one_or_more(value: Any) -> Any:
    # `category: vpt` and `category: [vpt, brand]` both read naturally. Emptiness is checked
    # here, not with min_length, which pydantic would also report after any bad item.
    if not isinstance(value, list | tuple):
        return [value]
    if not value:
        raise ValueError("give at least one value")
    return value


OneOrMore = Annotated[tuple[T, ...], BeforeValidator(_one_or_more)]


def _category_pattern(pattern: str) -> str:
    codes = list(taxonomy().category_codes)
    if not any(fnmatchcase(code, pattern) for code in codes):
        raise ValueError(f"unknown category {pattern!r}{_suggest(pattern, codes)}")
    return pattern


def _haarlem_wijk(code: str) -> str:
    if code not in {b.wijk_code for b in geo.buurten()}:
        raise ValueError(f"{code!r} is not a wijk of Haarlem")
    return code


def _haarlem_buurt(code: str) -> str:
    try:
        geo.buurt(code)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    return code


def _recipient_template(code: str) -> str:
    # RecipientKind.matches accepts a concrete code and the placeholder pattern itself, so a
    # misspelt placeholder ({wjik}) is an unknown recipient too.
    kinds = taxonomy().recipients
    if not any(kind.matches(code) for kind in kinds):
        raise ValueError(f"unknown recipient {code!r}{_suggest(code, [k.code for k in kinds])}")
    return code


CategoryPattern = Annotated[str, AfterValidator(_category_pattern)]
"""A category code or a glob over the codes (``hic.*``)."""
HaarlemWijk = Annotated[WijkCode, AfterValidator(_haarlem_wijk)]
HaarlemBuurt = Annotated[BuurtCode, AfterValidator(_haarlem_buurt)]
RecipientTemplate = Annotated[str, AfterValidator(_recipient_template)]


# --- the incident and the rules -----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingInput:
    """What routing looks at. ``at`` is when the incident happened (nightlife hours, windows)."""

    category: str
    priority: Priority | None
    wijk_code: str | None = None
    buurt_code: str | None = None
    source: str | None = None
    """The reporting partner's kind (:data:`PartnerKind`)."""
    partner: str | None = None
    """The reporting partner's code (``vpt.werkgever.{partner}``)."""
    flags: Flags = field(default_factory=Flags)
    at: datetime
    needs_review: bool = False

    def __post_init__(self) -> None:
        taxonomy().category(self.category)  # KeyError naming the known codes
        if self.at.utcoffset() is None:
            raise ValueError(f"at must be timezone-aware, got {self.at.isoformat()}")

    @classmethod
    def of_report(
        cls,
        report: IncidentReported,
        *,
        category: str,
        priority: Priority | None,
        source: str | None,
        needs_review: bool = False,
    ) -> RoutingInput:
        """The routing input of a reported incident once triage has decided on it."""
        return cls(
            category=category,
            priority=priority,
            wijk_code=report.location.wijk_code,
            buurt_code=report.location.buurt_code,
            source=source,
            partner=report.partner,
            flags=report.flags,
            at=report.occurred_at,
            needs_review=needs_review,
        )

    def placeholder_values(self) -> dict[str, str | None]:
        return {"wijk": self.wijk_code, "buurt": self.buurt_code, "partner": self.partner}


def _yes(value: bool) -> str:
    return "yes" if value else "no"


class TimeWindow(ConfigModel):
    """Local (Europe/Amsterdam) wall-clock hours on some weekdays.

    A window that wraps midnight (22:00-05:00) belongs to the day it starts on, like the
    taxonomy's nightlife nights, and wall-clock time keeps it right across DST switches.
    """

    days: OneOrMore[Weekday] = WEEKDAYS
    start: HHMM = Field(alias="from")
    end: HHMM = Field(alias="to")

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if self.start == self.end:
            raise ValueError("'from' and 'to' are equal: the window is empty")
        return self

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(AMSTERDAM)
        wall, day = local.time(), local.date()
        if self.start < self.end:
            inside = self.start <= wall < self.end
        elif wall >= self.start:
            inside = True
        else:
            inside, day = wall < self.end, day - timedelta(days=1)
        return inside and WEEKDAYS[day.weekday()] in self.days

    def __str__(self) -> str:
        days = "every day" if set(self.days) == set(WEEKDAYS) else "/".join(self.days)
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M}"


class Matchers(ConfigModel):
    """Conditions of a rule; all given ones must hold. Lists mean "any of"."""

    category: OneOrMore[CategoryPattern] | None = None
    priority: OneOrMore[Priority] | None = None
    wijk: OneOrMore[HaarlemWijk] | None = None
    buurt: OneOrMore[HaarlemBuurt] | None = None
    source: OneOrMore[PartnerKind] | None = None
    partner: OneOrMore[PartnerCode] | None = None
    flags: dict[Condition, bool] | None = Field(default=None, min_length=1)
    """Taxonomy conditions that must (true) or must not (false) hold."""
    needs_review: bool | None = None
    nightlife: bool | None = None
    """Nightlife hours of the taxonomy, anywhere in Haarlem."""
    school_hours: bool | None = None
    """School hours of the taxonomy (weekdays, not on public holidays)."""
    time: OneOrMore[TimeWindow] | None = None
    """Local time windows; any of them."""

    def checks(
        self, incident: RoutingInput, held: frozenset[Condition]
    ) -> Iterator[tuple[bool, str]]:
        """(holds, explanation) for every matcher given, in declaration order."""

        def one_of(name: str, value: str | None, allowed: tuple[str, ...]) -> tuple[bool, str]:
            ok = value is not None and any(fnmatchcase(value, a) for a in allowed)
            verb = "matches" if ok else "does not match"
            return ok, f"{name} {value or '(unknown)'} {verb} {', '.join(allowed)}"

        if self.category is not None:
            yield one_of("category", incident.category, self.category)
        if self.priority is not None:
            yield one_of("priority", incident.priority, self.priority)
        if self.wijk is not None:
            yield one_of("wijk", incident.wijk_code, self.wijk)
        if self.buurt is not None:
            yield one_of("buurt", incident.buurt_code, self.buurt)
        if self.source is not None:
            yield one_of("source", incident.source, self.source)
        if self.partner is not None:
            yield one_of("partner", incident.partner, self.partner)
        for condition, wanted in (self.flags or {}).items():
            holds = condition in held
            yield holds == wanted, f"{condition}: {_yes(holds)} (wanted {_yes(wanted)})"
        if self.needs_review is not None:
            review = incident.needs_review
            yield (
                review == self.needs_review,
                f"needs review: {_yes(review)} (wanted {_yes(self.needs_review)})",
            )
        if self.nightlife is not None:
            night = is_nightlife(incident.at)
            yield (
                night == self.nightlife,
                f"nightlife: {_yes(night)} (wanted {_yes(self.nightlife)})",
            )
        if self.school_hours is not None:
            school = is_school_hours(incident.at)
            yield (
                school == self.school_hours,
                f"school hours: {_yes(school)} (wanted {_yes(self.school_hours)})",
            )
        if self.time is not None:
            ok = any(window.contains(incident.at) for window in self.time)
            local = incident.at.astimezone(AMSTERDAM)
            verb = "in" if ok else "not in"
            windows = "; ".join(str(w) for w in self.time)
            yield ok, f"local time {local:%A %H:%M} {verb} {windows}"


class Rule(ConfigModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str | None = None
    """Why the rule exists; shown by ``veilig routes test``."""
    match: Matchers = Matchers()
    recipients: tuple[RecipientTemplate, ...] = ()
    category_defaults: bool = False
    continue_: bool = Field(default=False, alias="continue")

    @model_validator(mode="after")
    def _continue_adds(self) -> Rule:
        if self.continue_ and not (self.recipients or self.category_defaults):
            raise ValueError("a rule that continues must add recipients or category_defaults")
        return self


class _RoutesFile(ConfigModel):
    version: Literal[1]
    routes: OneOrMore[Rule]


# --- routing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One rule checked for one incident: whether it matched, why, and what it added."""

    index: int
    rule: str
    matched: bool
    why: str
    added: tuple[Recipient, ...] = ()
    notes: tuple[str, ...] = ()
    """Defaults applied or skipped, recipients dropped or already reached, fallbacks."""
    continued: bool = False

    def as_json(self) -> dict[str, Any]:
        """The entry as triage keeps it with its decision (the console's routing section)."""
        return {
            "index": self.index,
            "rule": self.rule,
            "matched": self.matched,
            "why": self.why,
            "added": [r.model_dump(mode="json") for r in self.added],
            "notes": list(self.notes),
            "continued": self.continued,
        }


@dataclass(frozen=True, slots=True)
class RoutingResult:
    recipients: tuple[Recipient, ...]
    trace: list[TraceEntry]


def _expand(
    rule: Rule, incident: RoutingInput, held: frozenset[Condition]
) -> tuple[list[str], list[str]]:
    """The concrete recipient codes a matching rule yields, and notes for the trace."""
    notes: list[str] = []
    templates = [RecipientRule(code=code) for code in rule.recipients]
    if rule.category_defaults:
        defaults = taxonomy().category(incident.category).recipients
        if not defaults:
            notes.append(f"{incident.category} has no default recipients")
        for default in defaults:
            when = " and ".join(default.when)
            if not set(default.when) <= held:
                notes.append(f"{default.code}: skipped, needs {when}")
            elif blocking := [c for c in default.unless if c in held]:
                notes.append(f"{default.code}: skipped, unless {' or '.join(blocking)}")
            else:
                if default.when:
                    notes.append(f"{default.code}: {when} holds")
                templates.append(default)

    codes: list[str] = []
    wijk_lost = False
    values = incident.placeholder_values()
    for template in templates:
        code = template.render(**values)
        needs = [name for name in PLACEHOLDERS if f"{{{name}}}" in template.code]
        if code is None:
            unknown = [name for name in needs if values[name] is None]
            notes.append(f"{template.code}: dropped, no {' or '.join(unknown)} known")
        elif not any(kind.matches(code) for kind in taxonomy().recipients):
            notes.append(f"{code}: dropped, not a recipient (location outside Haarlem?)")
        else:
            codes.append(code)
            continue
        wijk_lost = wijk_lost or "wijk" in needs
    if wijk_lost and incident.priority in WIJK_FALLBACK_PRIORITIES:
        codes.append(WIJK_FALLBACK)
        notes.append(f"{WIJK_FALLBACK}: fallback, no wijk recipient for a {incident.priority}")
    return codes, notes


@dataclass(frozen=True, slots=True)
class RoutingTable:
    rules: tuple[Rule, ...]
    source: str
    """The file the rules came from, for messages."""

    def route(self, incident: RoutingInput) -> RoutingResult:
        held = conditions_holding(incident.flags, incident.wijk_code, incident.at)
        reached: dict[str, Recipient] = {}
        trace: list[TraceEntry] = []
        for index, rule in enumerate(self.rules):
            checks = list(rule.match.checks(incident, held))
            matched = all(ok for ok, _ in checks)
            # A miss is explained by what failed, a match by everything that held.
            shown = [text for ok, text in checks if ok == matched] or ["matches every incident"]
            if not matched:
                trace.append(TraceEntry(index, rule.name, False, "; ".join(shown)))
                continue
            codes, notes = _expand(rule, incident, held)
            added: list[Recipient] = []
            for code in codes:
                if code in reached:
                    notes.append(f"{code}: already reached")
                else:
                    reached[code] = Recipient(code=code, profile=taxonomy().recipient_profile(code))
                    added.append(reached[code])
            trace.append(
                TraceEntry(
                    index,
                    rule.name,
                    True,
                    "; ".join(shown),
                    tuple(added),
                    tuple(notes),
                    rule.continue_,
                )
            )
            if not rule.continue_:
                break
        return RoutingResult(tuple(reached.values()), trace)


def parse_routes(data: Any, source: str = "<routes>") -> RoutingTable:
    """Validate routes data (as read from YAML); :class:`ConfigError` names rule and field."""

    def rule_name(index: int) -> str:
        routes = data.get("routes") if isinstance(data, dict) else None
        item = routes[index] if isinstance(routes, list) and index < len(routes) else None
        name = item.get("name") if isinstance(item, dict) else None
        return repr(name) if name is not None else "(unnamed)"

    def where(loc: Loc) -> str:
        if len(loc) >= 2 and loc[0] == "routes" and isinstance(loc[1], int):
            rest = field_path(loc[2:])
            head = f"rule {loc[1]} {rule_name(loc[1])}"
            return f"{head}: {rest}" if rest else head
        return field_path(loc)

    try:
        parsed = _RoutesFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, error_messages(exc, where)) from exc
    problems = []
    first: dict[str, int] = {}
    for index, rule in enumerate(parsed.routes):
        if rule.name in first:
            problems.append(
                f"rule {index} {rule.name!r}: name: also the name of rule {first[rule.name]}"
            )
        first.setdefault(rule.name, index)
    if problems:
        raise ConfigError(source, problems)
    return RoutingTable(parsed.routes, source)


def load_routes(path: Path = DEFAULT_PATH) -> RoutingTable:
    """Load and validate a routes file; :class:`ConfigError` lists every problem."""
    return parse_routes(read_yaml(path), str(path))
