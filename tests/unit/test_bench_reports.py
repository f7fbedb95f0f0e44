"""The benchmark's reports: each one an incident of its own with a delivery to make."""

from __future__ import annotations

import pytest

from schemas import geo
from schemas.submission import IncidentSubmission
from schemas.taxonomy import taxonomy
from services.triage.classifier import Classifier
from tools.bench.reports import DESCRIPTIONS, record_size, submission


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier()


def test_every_wording_in_every_buurt_is_confidently_vandalism(classifier: Classifier) -> None:
    # Confident: not held for review, so triage routes it to handhaving and notify delivers.
    count = len(geo.buurten()) * len(DESCRIPTIONS)
    for index in range(count):
        report = IncidentSubmission.model_validate(submission("t", index))
        decision = classifier.classify(report.description, source="other")
        assert (decision.category, decision.needs_review) == ("vandalisme", False), report
    defaults = taxonomy().category("vandalisme").recipients
    assert [r.code for r in defaults] == ["handhaving"] and not defaults[0].when


def test_reports_spread_over_every_buurt_by_code_never_by_point() -> None:
    reports = [submission("run1", i) for i in range(len(geo.buurten()))]
    assert {r["location"]["buurt_code"] for r in reports} == {b.code for b in geo.buurten()}
    assert all(set(r["location"]) == {"buurt_code"} for r in reports)  # never merged
    assert len({r["external_id"] for r in reports}) == len(reports)
    assert submission("run1", 5) == submission("run1", 5)


def test_record_size_is_the_mean_json_size() -> None:
    assert 150 < record_size("abcd1234") < 300
