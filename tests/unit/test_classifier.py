"""The triage classifier: corpus, deterministic rules, text model, hint handling, evaluation."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

from services.cli import app as veilig
from services.triage.classifier import (
    Classifier,
    Decision,
    _build_model,
    _logits,
    _Scorer,
    evaluate,
    load_corpus,
    normalise,
)
from services.triage.rules import NO_FLAGS, RULES, Flags, fired_rules

# The category codes of DOMAIN.md, which are part of the contract.
DOMAIN_CODES = {
    "hic.woninginbraak",
    "hic.overval",
    "hic.straatroof",
    "hic.geweld",
    "brand",
    "gevaarlijke-stoffen",
    "vpt",
    "uitgaansoverlast",
    "jeugdoverlast",
    "jeugdcriminaliteit",
    "verward-gedrag",
    "drugsoverlast",
    "woonoverlast",
    "vandalisme",
    "verdachte-situatie",
    "privacy.datalek",
    "overig",
}
PARTNER_KINDS = {
    "police",
    "fire",
    "enforcement",
    "school",
    "horeca",
    "ov",
    "care",
    "sus",
    "buurtpreventie",
    "buurtpapa",
    "citizen",
    "open311",
}


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier()


def _fired_ids(text: str, flags: Flags = NO_FLAGS) -> list[str]:
    return [rule.id for rule in fired_rules(normalise(text), flags)]


# --- corpus ---------------------------------------------------------------------------------


def test_corpus_covers_exactly_the_domain_categories_with_enough_examples() -> None:
    corpus = load_corpus()
    counts = Counter(e.category for e in corpus)
    assert set(counts) == DOMAIN_CODES
    assert min(counts.values()) >= 40, counts


def test_corpus_rows_are_well_formed_and_distinct() -> None:
    corpus = load_corpus()
    assert {e.source for e in corpus} <= PARTNER_KINDS
    assert all(e.text.strip() for e in corpus)
    normalised = [normalise(e.text) for e in corpus]
    duplicates = [text for text, n in Counter(normalised).items() if n > 1]
    assert not duplicates


# --- rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("Er is brand in de keuken van de bovenwoning", "text.fire"),
        ("woningbrand aan de Zijlweg, bewoners buiten", "text.fire"),
        ("de auto van de buren staat in de fik", "text.fire"),
        ("Rookontwikkeling uit de kelder van het pand", "text.fire"),
        ("harde explosie gehoord bij de flat", "text.fire"),
        ("the house across the street is on fire", "text.fire"),
        ("Sterke GASLUCHT in het portiek", "text.hazardous_substances"),
        ("gaslek bij graafwerkzaamheden", "text.hazardous_substances"),
        ("vaten met chemicaliën gedumpt in de berm", "text.hazardous_substances"),
        ("it smells really strongly of gas in our street", "text.hazardous_substances"),
        ("mogelijk datalek: brief met andermans BSN ontvangen", "text.data_breach"),
        ("E33 persoon op het Stationsplein", "text.police_code_e33"),
    ],
)
def test_rule_fires_for_its_cases(text: str, rule_id: str) -> None:
    assert rule_id in _fired_ids(text)


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("De brandweer heeft de kat uit de boom gehaald", "text.fire"),
        ("brandstof afgetapt uit geparkeerde bestelbussen", "text.fire"),
        ("de lantaarnpaal brandt niet meer", "text.fire"),
        ("de rook van de bbq van de buren komt mijn huis in", "text.fire"),
        ("my brand new bike was stolen at the station", "text.fire"),
        ("Er is geen brand, alleen rook van de vuurkorf", "text.fire"),
        ("het eten is aangebrand en de rookmelder ging af", "text.fire"),
        ("ik heb mijn hand verbrand aan de pan", "text.fire"),
        ("jongeren hangen in de brandgang achter de huizen", "text.fire"),
        ("groot risico bij brand door opslag van gasflessen", "text.fire"),
        ("explosieve groei van het aantal fietsendiefstallen", "text.fire"),
        ("nieuwe gasfles voor de bbq gekocht", "text.hazardous_substances"),
        ("er is geen gaslucht meer, alles in orde", "text.hazardous_substances"),
    ],
)
def test_rule_does_not_fire_for_tricky_negatives(text: str, rule_id: str) -> None:
    assert rule_id not in _fired_ids(text)


def test_every_rule_names_a_corpus_category() -> None:
    assert {rule.category for rule in RULES} <= {e.category for e in load_corpus()}


def test_public_task_victim_flag_means_vpt(classifier: Classifier) -> None:
    decision = classifier.classify(
        "Man op het Stationsplein in elkaar geslagen",
        category_hint="hic.geweld",
        flags=Flags(public_task_victim=True, injuries=True),
        source="ov",
    )
    assert decision.category == "vpt"
    assert not decision.needs_review
    assert any("flag.public_task_victim" in reason for reason in decision.reasons)
    assert any("hic.geweld" in reason for reason in decision.reasons)


def test_rule_cannot_be_configured_for_a_category_the_corpus_lacks() -> None:
    rule = RULES[0]
    stray = type(rule)(rule.id, "no-such-category", rule.matcher, rule.description, rule.weight)
    with pytest.raises(ValueError, match="no-such-category"):
        Classifier(rules=(stray,))


def test_review_threshold_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="review_threshold"):
        Classifier(review_threshold=1.5)


# --- the classifier ---------------------------------------------------------------------------


def test_clear_dutch_fire_report_is_brand_with_high_confidence(classifier: Classifier) -> None:
    decision = classifier.classify(
        "Er staat een woning in brand aan de Rijksstraatweg, er komen vlammen uit het dak "
        "en er zijn misschien nog mensen binnen"
    )
    assert decision.category == "brand"
    assert decision.confidence >= 0.8
    assert not decision.needs_review


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "My phone was snatched out of my hand by a guy on a scooter near the station",
            "hic.straatroof",
        ),
        ("There is a strong smell of gas in the stairwell of our building", "gevaarlijke-stoffen"),
        (
            "Our upstairs neighbours play loud music and stomp around every night until 3am",
            "woonoverlast",
        ),
    ],
)
def test_english_reports_classify_sensibly(
    classifier: Classifier, text: str, expected: str
) -> None:
    assert classifier.classify(text).category == expected


@pytest.mark.parametrize("text", ["asdf qwer zxcv", "hoi", "???", "test 123", ""])
def test_gibberish_and_very_short_text_goes_to_review(classifier: Classifier, text: str) -> None:
    assert classifier.classify(text).needs_review


def test_negated_fire_keyword_does_not_pass_as_a_confident_fire(classifier: Classifier) -> None:
    decision = classifier.classify("Er is geen brand, alleen wat rook van de vuurkorf van de buren")
    assert decision.category != "brand" or decision.needs_review


def test_overig_always_needs_review(classifier: Classifier) -> None:
    decision = classifier.classify("Wanneer wordt het grofvuil opgehaald in de Europawijk?")
    assert decision.category == "overig"
    assert decision.needs_review


def test_decisions_carry_reasons_and_a_top3(classifier: Classifier) -> None:
    for example in load_corpus()[::40]:
        decision = classifier.classify(example.text, source=example.source)
        assert isinstance(decision, Decision)
        assert decision.reasons
        assert decision.category in classifier.categories
        assert 0.0 <= decision.confidence <= 1.0
        assert len(decision.top3) == 3
        probabilities = [p for _, p in decision.top3]
        assert probabilities == sorted(probabilities, reverse=True)
        assert math.fsum(probabilities) <= 1.0
        assert all(isinstance(category, str) for category, _ in decision.top3)


def test_priority_flags_do_not_change_the_category(classifier: Classifier) -> None:
    text = "Twee mannen vechten voor de snackbar, een van hen bloedt"
    plain = classifier.classify(text)
    flagged = classifier.classify(text, flags=Flags(in_progress=True, weapon=True, injuries=True))
    assert flagged.category == plain.category
    assert any("priority" in reason for reason in flagged.reasons)


# --- the partner's category hint ------------------------------------------------------------


# Ambiguous on purpose: confused behaviour or a suspicious situation near a school.
AMBIGUOUS = "Een man kijkt al een uur bij de school en praat in zichzelf"


def test_agreeing_hint_raises_confidence(classifier: Classifier) -> None:
    text = AMBIGUOUS
    plain = classifier.classify(text)
    hinted = classifier.classify(text, category_hint=plain.category)
    assert hinted.category == plain.category
    assert hinted.confidence > plain.confidence
    assert any("agrees" in reason for reason in hinted.reasons)


def test_plausible_hint_is_accepted(classifier: Classifier) -> None:
    runner_up, probability = classifier.classify(AMBIGUOUS).top3[1]
    assert probability >= 0.05  # otherwise the hint would not be plausible to begin with
    decision = classifier.classify(AMBIGUOUS, category_hint=runner_up)
    assert decision.category == runner_up
    assert any("accepted partner hint" in reason for reason in decision.reasons)


def test_contradicted_hint_is_noted_and_sent_to_review(classifier: Classifier) -> None:
    text = "Groep jongeren hangt elke avond met harde muziek bij de speeltuin in Meerwijk"
    plain = classifier.classify(text)
    decision = classifier.classify(text, category_hint="privacy.datalek")
    assert decision.category == plain.category
    assert decision.needs_review
    assert any("contradicted" in reason for reason in decision.reasons)


def test_unknown_hint_is_ignored(classifier: Classifier) -> None:
    text = "Groep jongeren hangt elke avond met harde muziek bij de speeltuin in Meerwijk"
    decision = classifier.classify(text, category_hint="no-such-category")
    assert decision.category == classifier.classify(text).category
    assert any("unknown category hint" in reason for reason in decision.reasons)


# --- held-out evaluation ------------------------------------------------------------------------


def test_the_compiled_scorer_gives_the_pipelines_own_probabilities() -> None:
    """The classifier scores with _Scorer, not the scikit-learn pipeline's predict_proba: the
    same numbers, for texts it was trained on and texts it never saw."""
    examples = load_corpus()
    texts = [normalise(e.text) for e in examples]
    model = _build_model().fit(texts, [e.category for e in examples])
    unseen = [
        normalise(t)
        for t in (
            "Someone is breaking into the bike shed at the station",
            "er ligt een dode kat op de stoep voor nummer 12",
            "asdf qwerty",
            "",
        )
    ]
    for batch in (texts, texts[:1], unseen):
        expected = model.predict_proba(batch)
        got = _Scorer.of(model).probabilities(batch)
        assert got.shape == expected.shape
        assert abs(got - expected).max() < 1e-12


def test_margins_are_logits_unless_they_read_as_probabilities() -> None:
    """Temperature scaling's input, as scikit-learn's calibration makes it: margins as they
    are, probabilities (each in [0, 1], rows summing to 1) as their logarithm."""
    margins = np.array([[-1.5, 0.25, 2.0], [0.1, 0.2, 0.3]])
    assert _logits(margins) is margins
    probabilities = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    assert np.allclose(_logits(probabilities), np.log(probabilities + 1e-12))


def test_held_out_evaluation_is_reasonable() -> None:
    report = evaluate()
    # A modest floor: fails if the model breaks, not when the corpus grows a little harder.
    assert report.macro_f1 > 0.6
    assert report.n_test > 0 and report.n_train > report.n_test
    assert all(code in report.report for code in DOMAIN_CODES)


def test_evaluate_command_prints_the_report() -> None:
    result = CliRunner().invoke(veilig, ["triage", "evaluate", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.output
