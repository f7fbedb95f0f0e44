"""Deterministic triage rules for the unambiguous cases, declared as data.

Rules run on *normalised* text (see ``classifier.normalise``: lower case, no accents, single
spaces), so patterns are written in lower case without accents. They are ordered: the first
rule that fires decides the category; every rule that fires is reported.

A rule does not blindly override the statistical model: its ``weight`` is the confidence it
contributes on its own, and the model's probability for the same category fills the rest
(``weight + (1 - weight) * p_model``). A partner flag is an explicit statement and weighs a
lot; a keyword in free text can still be used in another sense, so when the model disagrees
strongly the decision falls below the review threshold and a human looks at it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from schemas.urgency import FlagsLike


@dataclass(frozen=True, slots=True)
class Flags:
    in_progress: bool = False
    weapon: bool = False
    injuries: bool = False
    public_task_victim: bool = False


NO_FLAGS = Flags()

# Words that cancel a keyword when they occur shortly before it in the same clause:
# "geen brand", "niet in brand", "no flames visible".
NEGATIONS = frozenset({"geen", "niet", "nergens", "zonder", "no", "not", "without"})
NEGATION_WINDOW = 3
_CLAUSE_BREAK = re.compile(r"[.,;:!?()]")


@dataclass(frozen=True, slots=True)
class TextMatcher:
    """A regular expression over normalised text, with negation and context guards."""

    pattern: re.Pattern[str]
    # Words that, directly before the keyword, make it hypothetical ("risico bij brand").
    hypothetical: frozenset[str] = frozenset()

    def __call__(self, text: str, flags: FlagsLike) -> bool:
        return any(self._counts(text, m) for m in self.pattern.finditer(text))

    def negated(self, text: str) -> bool:
        """Whether the keywords occur, but only negated or hypothetically ("geen brand")."""
        matches = list(self.pattern.finditer(text))
        return bool(matches) and not any(self._counts(text, m) for m in matches)

    def _counts(self, text: str, match: re.Match[str]) -> bool:
        clause = _CLAUSE_BREAK.split(text[: match.start()])[-1].split()
        if NEGATIONS.intersection(clause[-NEGATION_WINDOW:]):
            return False
        return not (clause and clause[-1] in self.hypothetical)


@dataclass(frozen=True, slots=True)
class FlagMatcher:
    flag: str

    def __call__(self, text: str, flags: FlagsLike) -> bool:
        return bool(getattr(flags, self.flag))


Matcher = Callable[[str, FlagsLike], bool]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    category: str
    matcher: Matcher
    description: str
    weight: float


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b")


# "brand" and compounds ending in it (woningbrand, autobrand), but not participles
# (aangebrand, verbrand, uitgebrand: burnt food, a burn), "brand new", or words that merely
# start with it (brandweer, brandstof, brandtrap, brandt).
FIRE = TextMatcher(
    _words(
        r"\w*(?<!ge)(?<!ver)brand(?![ -]new\b)",
        r"in de fik",
        r"vlammen",
        r"vlam (?:in de pan|gevat)",
        r"vatte vlam",
        r"steekvlam",
        r"rookontwikkeling",
        r"explosie",
        r"ontploffing",
        r"ontploft",
        r"uitslaande?",
        r"on fire",
        r"caught fire",
        r"(?:house|car|kitchen) fire",
        r"flames",
        r"explosion",
        r"exploded",
    ),
    hypothetical=frozenset({"bij", "op", "voor", "tegen"}),
)

HAZMAT = TextMatcher(
    _words(
        r"gaslucht",
        r"gaslek\w*",
        r"ruik\w* (?:\w+ )?gas",
        r"(?:stinkt|ruikt|lucht) (?:\w+ )?naar gas",
        r"chemicalien",
        r"chemische (?:lucht|geur|stof\w*|dampen|afval)",
        r"ammoniak\w*",
        r"koolmonoxide\w*",
        r"co-?melder",
        r"asbest",
        r"drugsafval",
        r"gevaarlijke stoffen",
        r"gas (?:leak|smell)",
        r"smell\w*(?: \w+){0,3} (?:of|like) gas",
        r"chemical (?:smell|spill|leak)",
    )
)

DATA_BREACH = TextMatcher(_words(r"datalek\w*", r"data ?breach\w*", r"data ?lek\w*"))

# E33 is the police code for a confused person; nobody writes it by accident.
POLICE_CODE_E33 = TextMatcher(_words(r"e33"))

RULES: tuple[Rule, ...] = (
    Rule(
        id="flag.public_task_victim",
        category="vpt",
        matcher=FlagMatcher("public_task_victim"),
        description="the partner flagged a public-task worker as the victim",
        weight=0.9,
    ),
    Rule(
        id="text.fire",
        category="brand",
        matcher=FIRE,
        description="the text reports fire, flames, smoke development or an explosion",
        weight=0.5,
    ),
    Rule(
        id="text.hazardous_substances",
        category="gevaarlijke-stoffen",
        matcher=HAZMAT,
        description="the text reports a gas smell, a gas leak or chemicals",
        weight=0.5,
    ),
    Rule(
        id="text.data_breach",
        category="privacy.datalek",
        matcher=DATA_BREACH,
        description="the text names a data breach",
        weight=0.5,
    ),
    Rule(
        id="text.police_code_e33",
        category="verward-gedrag",
        matcher=POLICE_CODE_E33,
        description="the text uses police code E33 (confused person)",
        weight=0.5,
    ),
)


def fired_rules(text: str, flags: FlagsLike, rules: tuple[Rule, ...] = RULES) -> list[Rule]:
    """The rules that fire for ``text`` (already normalised) and ``flags``, in rule order."""
    return [rule for rule in rules if rule.matcher(text, flags)]


def negated_rules(text: str, rules: tuple[Rule, ...] = RULES) -> list[Rule]:
    """The text rules whose keywords ``text`` (already normalised) only negates."""
    return [
        rule
        for rule in rules
        if isinstance(rule.matcher, TextMatcher) and rule.matcher.negated(text)
    ]
