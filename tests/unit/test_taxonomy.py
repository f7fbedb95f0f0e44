"""The taxonomy: exactly DOMAIN.md's codes, and a broken file says where it is broken."""

from __future__ import annotations

import pytest

from schemas.taxonomy import (
    DEFAULT_PATH,
    Profile,
    RecipientRule,
    TaxonomyError,
    parse_taxonomy,
    taxonomy,
)

CATEGORIES = {
    "hic.woninginbraak": "P2",
    "hic.overval": "P1",
    "hic.straatroof": "P1",
    "hic.geweld": "P1",
    "brand": "P1",
    "gevaarlijke-stoffen": "P1",
    "vpt": "P2",
    "uitgaansoverlast": "P3",
    "jeugdoverlast": "P3",
    "jeugdcriminaliteit": "P2",
    "verward-gedrag": "P2",
    "drugsoverlast": "P3",
    "woonoverlast": "P4",
    "vandalisme": "P4",
    "verdachte-situatie": "P3",
    "privacy.datalek": "P2",
    "overig": None,
}
RECIPIENTS = {
    "politie.meldkamer": Profile.FULL,
    "politie.wijkagent.WK039201": Profile.FULL,
    "brandweer": Profile.FULL,
    "zorg.veiligheidshuis": Profile.FULL,
    "handhaving": Profile.OPERATIONAL,
    "sus-team": Profile.OPERATIONAL,
    "jeugd.team": Profile.OPERATIONAL,
    "vpt.werkgever.spaarnelijn": Profile.OPERATIONAL,
    "gemeente.fg": Profile.OPERATIONAL,
    "gemeente.ciso": Profile.OPERATIONAL,
    "buurtpapas.WK039214": Profile.COARSE,
    "buurtpreventie.BU03920102": Profile.COARSE,
    "horeca.khn": Profile.COARSE,
    "politie.ovd": Profile.FULL,
    "scholen.WK039214": Profile.COARSE,
}
TEXT = DEFAULT_PATH.read_text(encoding="utf-8")


def test_exactly_the_categories_of_the_domain_brief() -> None:
    tax = taxonomy()
    assert tax.category_codes == tuple(CATEGORIES)
    for code, priority in CATEGORIES.items():
        assert tax.category(code).default_priority == priority
    assert {c.code for c in tax.categories if c.hic} == {
        "hic.woninginbraak",
        "hic.overval",
        "hic.straatroof",
        "hic.geweld",
    }
    assert [c.code for c in tax.categories if c.vpt] == ["vpt"]
    assert tax.category("verward-gedrag").label_nl == "verward gedrag (E33)"
    assert tax.category("brand").label_en == "fire, smoke, explosion"


def test_raised_priorities_and_the_triage_queue() -> None:
    tax = taxonomy()
    burglary = tax.category("hic.woninginbraak")
    assert [(r.priority, r.when) for r in burglary.raised_priority] == [("P1", ("in_progress",))]
    assert [(r.priority, r.when) for r in tax.category("vpt").raised_priority] == [
        ("P1", ("in_progress", "danger"))
    ]
    overig = tax.category("overig")
    assert overig.needs_human
    assert overig.recipients == ()
    assert not burglary.needs_human


def test_recipient_rules_of_some_categories() -> None:
    tax = taxonomy()
    nightlife = {r.code: (r.when, r.unless) for r in tax.category("uitgaansoverlast").recipients}
    assert nightlife == {
        "sus-team": (("nightlife_centre",), ()),
        "handhaving": ((), ("nightlife_centre",)),
    }
    vpt = [r.render(wijk="WK039201", partner="spaarnelijn") for r in tax.category("vpt").recipients]
    assert vpt == ["politie.wijkagent.WK039201", "politie.meldkamer", "vpt.werkgever.spaarnelijn"]
    assert RecipientRule(code="buurtpreventie.{buurt}").render(wijk="WK039201") is None


def test_priority_windows() -> None:
    tax = taxonomy()
    windows = {
        p: (
            (lvl.acknowledge_within.amount, lvl.acknowledge_within.unit),
            (lvl.handle_within.amount, lvl.handle_within.unit),
            lvl.escalate_unacknowledged,
        )
        for p, lvl in tax.priorities.items()
    }
    assert windows == {
        "P1": ((2, "minutes"), (1, "hours"), True),
        "P2": ((15, "minutes"), (8, "hours"), True),
        "P3": ((2, "hours"), (3, "working_days"), False),
        "P4": ((1, "working_days"), (10, "working_days"), False),
    }


@pytest.mark.parametrize(("code", "profile"), RECIPIENTS.items())
def test_recipient_profiles_for_concrete_codes(code: str, profile: Profile) -> None:
    assert taxonomy().recipient_profile(code) is profile


@pytest.mark.parametrize(
    "code", ["politie", "politie.wijkagent.WK036301", "buurtpreventie.WK039201", "horeca"]
)
def test_unknown_recipients(code: str) -> None:
    with pytest.raises(KeyError, match="unknown recipient"):
        taxonomy().recipient_profile(code)


def test_nightlife_definition() -> None:
    night = taxonomy().nightlife
    assert night.centre_wijk == "WK039201"
    assert (night.starts.isoformat(), night.ends.isoformat()) == ("22:00:00", "05:00:00")
    assert night.nights == ("thursday", "friday", "saturday")
    assert night.nights_before_public_holidays


def _line_of(snippet: str) -> int:
    return TEXT[: TEXT.index(snippet)].count("\n") + 1


def _broken(old: str, new: str) -> TaxonomyError:
    assert old in TEXT
    with pytest.raises(TaxonomyError) as caught:
        parse_taxonomy(TEXT.replace(old, new, 1), source="taxonomy.yaml")
    return caught.value


def test_a_bad_value_names_line_and_field() -> None:
    error = _broken(
        "    label_en: vandalism\n    default_priority: P4",
        "    label_en: vandalism\n    default_priority: P5",
    )
    line = _line_of("label_en: vandalism") + 1
    assert [(p.line, p.field) for p in error.problems] == [
        (line, "categories[13].default_priority")
    ]
    assert f"line {line}: categories[13].default_priority: Input should be" in str(error)
    assert "taxonomy.yaml" in str(error)


def test_a_missing_field_names_the_entry() -> None:
    error = _broken("    label_nl: brand, rook, explosie\n", "")
    assert [(p.line, p.field, p.reason) for p in error.problems] == [
        (_line_of("  - code: brand\n"), "categories[4].label_nl", "Field required")
    ]


def test_a_misspelt_key_is_an_error() -> None:
    error = _broken("  centre_wijk: WK039201", "  centre_wyk: WK039201")
    line = _line_of("  centre_wijk")
    assert {(p.line, p.field, p.reason) for p in error.problems} == {
        (line, "nightlife.centre_wijk", "Field required"),
        (line, "nightlife.centre_wyk", "Extra inputs are not permitted"),
    }


def test_an_unquoted_time_is_an_error() -> None:
    error = _broken('starts: "22:00"', "starts: 22:00")
    assert [(p.line, p.field) for p in error.problems] == [
        (_line_of('starts: "22:00"'), "nightlife.starts")
    ]


def test_a_recipient_that_is_not_listed_is_an_error() -> None:
    error = _broken(
        "      - code: jeugd.team\n      - code: buurtpapas",
        "      - code: jeugdteam\n      - code: buurtpapas",
    )
    (problem,) = error.problems
    assert problem.field == "categories[8].recipients[1].code"
    assert problem.line == _line_of("      - code: jeugd.team\n      - code: buurtpapas")
    assert "'jeugdteam' is not a listed recipient" in problem.reason


def test_a_raise_that_does_not_raise_is_an_error() -> None:
    error = _broken("{priority: P1, when: [in_progress]}", "{priority: P3, when: [in_progress]}")
    assert [p.field for p in error.problems] == ["categories[0].raised_priority[0].priority"]


def test_a_duplicate_key_is_an_error() -> None:
    error = _broken(
        "    label_en: vandalism\n", "    label_en: vandalism\n    label_en: graffiti\n"
    )
    assert [(p.line, p.field) for p in error.problems] == [
        (_line_of("label_en: vandalism") + 1, "categories[13]")
    ]
    assert "duplicate key 'label_en'" in str(error)


def test_broken_yaml_syntax_names_the_line() -> None:
    error = _broken("  P3:\n", "  P3: [\n")
    (problem,) = error.problems
    assert problem.line == _line_of("  P3:") + 2  # where the parser gave up
    assert problem.reason.startswith("YAML: expected ',' or ']'")
