"""Classification of incident reports: deterministic rules first, then a text model.

Layers, in order:

1. **Rules** (``rules.RULES``): the unambiguous cases, declared as data. The first rule that
   fires decides the category; its confidence blends the rule's weight with the model's
   probability for that category, so a keyword used in another sense still ends up in review.
2. **Model**: TF-IDF over word 1-2-grams and character 2-5-grams (the latter absorb typos,
   inflections and Dutch compounds) feeding a linear SVM whose margins are turned into
   probabilities by temperature scaling (``softmax(margins / T)``, T fitted by 5-fold
   cross-validation). A plain logistic regression, or per-class Platt scaling, is badly
   under-confident on a corpus this small, which would make the review threshold meaningless
   (measured by cross-validation on the training split). The model is
   trained on ``data/corpus.csv`` when the ``Classifier`` is built (about a second; nothing
   is pickled). The category labels come from the corpus, not from code.
3. **Partner hint**: partners often know what they report. A valid hint that the model finds
   plausible (in its top 3 with p >= 0.05) is accepted, with its confidence raised halfway to
   1 (``p + (1 - p) / 2``); the same boost applies when the hint agrees with the decided
   category. A fired rule is not overruled by a hint. An implausible hint is contradicted by
   the text: the text's category stands, the disagreement is written in the reasons and the
   decision goes to review. Unknown hint codes are ignored (and said so in the reasons).

``needs_review`` is set when the confidence is below the review threshold (configurable,
kept server-side), for ``overig``, for very short text, for a contradicted hint, and when the
text negates the keywords of a rule for the chosen category ("geen brand, alleen rook").

Flags ``in_progress``, ``weapon`` and ``injuries`` raise the *priority*, not the category,
and are only echoed in the reasons. The partner kind (``source``) is deliberately not a model
feature: the corpus's mix of sources is not representative of live traffic, and a model that
learnt it would guess "vpt" for every bus-company report.
"""

from __future__ import annotations

import csv
import functools
import itertools
import math
import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # scikit-learn takes seconds to import: only where a model is built
    from sklearn.pipeline import Pipeline

from services.triage.rules import (
    NO_FLAGS,
    RULES,
    FlagsLike,
    Rule,
    fired_rules,
    negated_rules,
)

CORPUS_PATH = Path(__file__).parent / "data" / "corpus.csv"
REVIEW_CATEGORY = "overig"
DEFAULT_REVIEW_THRESHOLD = 0.55
HINT_WEIGHT = 0.5
HINT_PLAUSIBLE_RANK = 3
HINT_MIN_PROBABILITY = 0.05
# Fewer real words than this is too little to classify on ("hoi", "test 123", "???").
MIN_WORDS = 3
# Chosen by 5-fold cross-validation on the training split of evaluate(), never on its test split.
SVM_C = 1.0
EVALUATION_TEST_SIZE = 0.25
EVALUATION_SEED = 42

_WHITESPACE = re.compile(r"\s+")
_WORD = re.compile(r"[a-z]{2,}")
_FLAGS_THAT_RAISE_PRIORITY = ("in_progress", "weapon", "injuries")


def normalise(text: str) -> str:
    """Lower case, accents stripped (é -> e, ë -> e), whitespace collapsed."""
    lowered = text.lower()
    if lowered.isascii():  # nothing to decompose (most reports): the same result, at once
        return _WHITESPACE.sub(" ", lowered).strip()
    decomposed = unicodedata.normalize("NFKD", lowered)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _WHITESPACE.sub(" ", stripped).strip()


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    category: str
    source: str


def load_corpus(path: Path = CORPUS_PATH) -> list[Example]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            Example(text=row["text"], category=row["category"], source=row["source"])
            for row in csv.DictReader(handle)
        ]


@dataclass(frozen=True, slots=True)
class Decision:
    category: str
    confidence: float
    needs_review: bool
    reasons: tuple[str, ...]
    # The model's three most probable categories with their probabilities (sum <= 1).
    top3: tuple[tuple[str, float], ...]


def _build_model() -> Pipeline:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.svm import LinearSVC

    features = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True
                ),
            ),
        ]
    )
    return Pipeline(
        [
            ("features", features),
            (
                "model",
                CalibratedClassifierCV(
                    LinearSVC(C=SVM_C, random_state=0), method="temperature", cv=5
                ),
            ),
        ]
    )


WORD_CACHE = 1 << 16
"""Words whose character n-grams a vectoriser keeps at hand (a report's words mostly recur)."""


class _Features:
    """A fitted ``TfidfVectorizer``'s ``transform``, the same arithmetic without its per-call
    cost: its own analyser, a count per feature, ``1 + log`` of it (sublinear), times the idf,
    each row scaled to unit length.

    Four fifths of scoring one report went to the vectorisers' ``transform`` (0.9 of 1.1 ms:
    input validation in each, and in the character analyser a Python loop over every n-gram
    of every word; decision 0006, session 20). The character n-grams of ``char_wb`` never
    cross a word, so a text's are its words' together: each word's are looked up once and
    kept (:data:`WORD_CACHE`).
    """

    def __init__(self, vectoriser: Any) -> None:
        if not (
            vectoriser.sublinear_tf
            and vectoriser.use_idf
            and vectoriser.norm == "l2"
            and vectoriser.lowercase
        ):
            raise ValueError("only a lower-cased, sublinear, idf-weighted, l2-normed tf-idf")
        self._vocabulary: dict[str, int] = vectoriser.vocabulary_
        self._idf: np.ndarray = vectoriser.idf_
        self._analyse = vectoriser.build_analyzer()
        self.width = len(self._idf)
        self._indices = (
            functools.lru_cache(maxsize=WORD_CACHE)(self._lookup)
            if vectoriser.analyzer == "char_wb"
            else None
        )

    def _lookup(self, text: str) -> np.ndarray:
        vocabulary = self._vocabulary
        found = [vocabulary[t] for t in self._analyse(text) if t in vocabulary]
        return np.array(found, dtype=np.int64)

    def _columns(self, text: str) -> np.ndarray:
        if self._indices is None:
            return self._lookup(text)
        # char_wb lower-cases, then takes each whitespace-separated word on its own.
        words = [self._indices(word) for word in text.lower().split()]
        return np.concatenate(words) if words else _NONE

    def transform(self, texts: Sequence[str]) -> Any:
        """The texts' rows (CSR); within a row the features in ascending order."""
        from scipy.sparse import csr_matrix

        found = [self._columns(text) for text in texts]
        rows = np.repeat(np.arange(len(texts)), [len(f) for f in found])
        keys, counts = np.unique(rows * self.width + np.concatenate(found), return_counts=True)
        rows, columns = np.divmod(keys, self.width)
        data = (np.log(counts) + 1.0) * self._idf[columns]
        norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=len(texts)))
        norms[norms == 0.0] = 1.0
        data /= norms[rows]
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(texts)), out=indptr[1:])
        return csr_matrix((data, columns, indptr), shape=(len(texts), self.width))


_NONE = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class _Scorer:
    """The fitted pipeline's ``predict_proba``, the same arithmetic without its per-call cost.

    A call into the scikit-learn pipeline costs ~8 ms before any text is looked at (input
    validation in every one of its 5 calibrated estimators, a joblib dispatch per feature
    set): at the rates a report arrives alone, that was most of triage's classification time
    (profile in decision 0006). Inference of this model is plain arithmetic: the two
    vectorisers' features side by side, every fold's linear margins in one sparse product
    per vectoriser, then per fold ``softmax(beta * margins)`` (temperature scaling) and the
    mean over folds.
    ``tests/unit/test_classifier.py`` checks it equals the pipeline's own output.
    """

    vectorisers: tuple[_Features, ...]
    # Per vectoriser, (its features, folds * classes): every fold's coefficients side by side.
    weights: tuple[np.ndarray, ...]
    intercepts: np.ndarray  # (folds * classes,)
    betas: tuple[float, ...]  # the fitted inverse temperature of each fold

    @classmethod
    def of(cls, pipeline: Pipeline) -> _Scorer:
        calibrated = pipeline.named_steps["model"]
        folds = calibrated.calibrated_classifiers_
        if calibrated.method != "temperature" or any(
            len(f.estimator.classes_) != len(calibrated.classes_) for f in folds
        ):
            raise ValueError("only a temperature-scaled model over every class is compiled")
        vectorisers = tuple(
            _Features(v) for _, v in pipeline.named_steps["features"].transformer_list
        )
        weights = np.hstack([f.estimator.coef_.T for f in folds])
        bounds = np.cumsum([0] + [v.width for v in vectorisers])
        return cls(
            vectorisers=vectorisers,
            weights=tuple(
                np.ascontiguousarray(weights[a:b]) for a, b in itertools.pairwise(bounds)
            ),
            intercepts=np.hstack([f.estimator.intercept_ for f in folds]),
            betas=tuple(float(f.calibrators[0].beta_) for f in folds),
        )

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        from sklearn.utils.extmath import softmax

        # The features side by side times the weights: each vectoriser's block on its own.
        margins = self.intercepts + sum(
            np.asarray(v.transform(texts) @ w)
            for v, w in zip(self.vectorisers, self.weights, strict=True)
        )
        classes = margins.shape[1] // len(self.betas)
        total = np.zeros((len(texts), classes))
        for fold, beta in enumerate(self.betas):
            logits = _logits(margins[:, fold * classes : (fold + 1) * classes])
            proba = softmax(beta * logits)
            proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
            total += proba
        return total / len(self.betas)


def _logits(margins: np.ndarray) -> np.ndarray:
    """What temperature scaling takes of a fold's margins, as scikit-learn's calibration does
    (``sklearn.calibration._convert_to_logits`` for a 2-D input over every class): the margins
    themselves, unless they read as probabilities (each in [0, 1], each row summing to 1), whose
    logarithm it takes. Without its input validation, a third of a lone report's scoring."""
    if np.all((margins >= 0) & (margins <= 1)) and np.all(np.isclose(margins.sum(axis=1), 1.0)):
        return np.log(margins + 1e-12)
    return margins


def _boost(confidence: float) -> float:
    return confidence + (1.0 - confidence) * HINT_WEIGHT


@dataclass(frozen=True, slots=True)
class Text:
    """One report as the classifier sees it."""

    text: str
    category_hint: str | None = None
    flags: FlagsLike | None = None
    source: str | None = None


class Classifier:
    """Rules + a text model trained on the corpus when constructed (no pickled state)."""

    def __init__(
        self,
        examples: Sequence[Example] | None = None,
        *,
        review_threshold: float = DEFAULT_REVIEW_THRESHOLD,
        rules: tuple[Rule, ...] = RULES,
    ) -> None:
        if not 0.0 <= review_threshold <= 1.0:
            raise ValueError(f"review_threshold must be within 0..1, got {review_threshold}")
        examples = load_corpus() if examples is None else examples
        unknown = {rule.category for rule in rules} - {e.category for e in examples}
        if unknown:
            raise ValueError(f"rules name categories that the corpus lacks: {sorted(unknown)}")
        self.review_threshold = review_threshold
        self._rules = rules
        started = time.perf_counter()
        model = _build_model().fit(
            [normalise(e.text) for e in examples], [e.category for e in examples]
        )
        self._scorer = _Scorer.of(model)
        self.train_seconds = time.perf_counter() - started
        self.categories: tuple[str, ...] = tuple(str(c) for c in model.classes_)

    def classify(
        self,
        text: str,
        *,
        category_hint: str | None = None,
        flags: FlagsLike | None = None,
        source: str | None = None,
    ) -> Decision:
        return self.classify_many([Text(text, category_hint, flags, source)])[0]

    def classify_many(self, texts: Sequence[Text]) -> list[Decision]:
        """Classify a whole batch with ONE pass of the text model: one vectorisation and one
        sparse product for all of it."""
        if not texts:
            return []
        cleaned = [normalise(t.text) for t in texts]
        scores = self._scorer.probabilities(cleaned)
        return [
            self._decide(clean, row, t.category_hint, t.flags, t.source)
            for t, clean, row in zip(texts, cleaned, scores, strict=True)
        ]

    def _decide(
        self,
        clean: str,
        scores: Sequence[float],
        category_hint: str | None,
        flags: FlagsLike | None,
        source: str | None,
    ) -> Decision:
        flags = NO_FLAGS if flags is None else flags
        probabilities = {c: float(p) for c, p in zip(self.categories, scores, strict=True)}
        ranked = sorted(probabilities, key=probabilities.__getitem__, reverse=True)
        reasons: list[str] = []

        fired = fired_rules(clean, flags, self._rules)
        category, confidence = self._rules_or_model(fired, probabilities, ranked, reasons)
        category, confidence, contradicted = self._apply_hint(
            category_hint, category, confidence, fired, probabilities, ranked, reasons
        )
        review = contradicted

        for rule in negated_rules(clean, self._rules):
            if rule.category == category:
                review = True
                reasons.append(f"the text negates the keywords of rule {rule.id}")
        raised = [name for name in _FLAGS_THAT_RAISE_PRIORITY if getattr(flags, name)]
        if raised:
            reasons.append(f"flags {', '.join(raised)} raise the priority, not the category")
        if source is not None:
            reasons.append(f"source: {source}")
        if len(_WORD.findall(clean)) < MIN_WORDS:
            review = True
            reasons.append("text too short to classify reliably")
        if confidence < self.review_threshold:
            review = True
            reasons.append(f"confidence {confidence:.2f} below {self.review_threshold:.2f}")
        if category == REVIEW_CATEGORY:
            review = True
            reasons.append(f"{REVIEW_CATEGORY} always goes to the triage queue")

        return Decision(
            category=category,
            confidence=round(min(confidence, 1.0), 4),
            needs_review=review,
            reasons=tuple(reasons),
            # Rounded down so that the three never add up to more than 1.
            top3=tuple((c, math.floor(probabilities[c] * 10_000) / 10_000) for c in ranked[:3]),
        )

    @staticmethod
    def _rules_or_model(
        fired: list[Rule],
        probabilities: dict[str, float],
        ranked: list[str],
        reasons: list[str],
    ) -> tuple[str, float]:
        for rule in fired:
            reasons.append(f"rule {rule.id} fired: {rule.description} -> {rule.category}")
        if not fired:
            reasons.append(f"text model: {ranked[0]} (p={probabilities[ranked[0]]:.2f})")
            return ranked[0], probabilities[ranked[0]]
        decisive = fired[0]
        if ranked[0] != decisive.category:
            reasons.append(
                f"the text model prefers {ranked[0]} (p={probabilities[ranked[0]]:.2f}); "
                f"rule {decisive.id} takes precedence"
            )
        blended = decisive.weight + (1.0 - decisive.weight) * probabilities[decisive.category]
        return decisive.category, blended

    @staticmethod
    def _apply_hint(
        hint: str | None,
        category: str,
        confidence: float,
        fired: list[Rule],
        probabilities: dict[str, float],
        ranked: list[str],
        reasons: list[str],
    ) -> tuple[str, float, bool]:
        """Combine the partner's hint with the decision; the flag says "contradicted"."""
        if hint is None:
            return category, confidence, False
        if hint not in probabilities:
            reasons.append(f"ignored unknown category hint {hint!r}")
            return category, confidence, False
        if hint == category:
            reasons.append(f"partner hint {hint} agrees")
            return category, _boost(confidence), False
        rank, p = ranked.index(hint) + 1, probabilities[hint]
        if rank > HINT_PLAUSIBLE_RANK or p < HINT_MIN_PROBABILITY:
            reasons.append(
                f"partner hint {hint} contradicted by the text (model rank {rank}, p={p:.2f}); "
                f"kept {category}"
            )
            return category, confidence, True
        if fired:
            reasons.append(f"partner hint {hint} overruled by rule {fired[0].id}")
            return category, confidence, False
        reasons.append(
            f"accepted partner hint {hint} (model rank {rank}, p={p:.2f}) over {category}"
        )
        return hint, _boost(p), False


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    report: str
    macro_f1: float
    accuracy: float
    # Share of test reports the classifier would send to review, and the accuracy on the rest.
    review_rate: float
    accuracy_without_review: float
    n_train: int
    n_test: int
    train_seconds: float

    def __str__(self) -> str:
        return (
            f"{self.report}\n"
            f"macro-F1: {self.macro_f1:.3f}   accuracy: {self.accuracy:.3f}\n"
            f"sent to review: {self.review_rate:.1%}   "
            f"accuracy of the rest: {self.accuracy_without_review:.3f}\n"
            f"train: {self.n_train} examples in {self.train_seconds:.2f} s   "
            f"test: {self.n_test} examples"
        )


def evaluate(
    path: Path = CORPUS_PATH,
    *,
    test_size: float = EVALUATION_TEST_SIZE,
    seed: int = EVALUATION_SEED,
    review_threshold: float = DEFAULT_REVIEW_THRESHOLD,
) -> EvaluationReport:
    """Train on a stratified split of the corpus and score the whole pipeline on the rest.

    The split is deterministic (fixed seed). Reports are classified as text only (no hint, no
    flags), which is the hardest case the service meets.
    """
    from sklearn.metrics import accuracy_score, classification_report, f1_score
    from sklearn.model_selection import train_test_split

    examples = load_corpus(path)
    train, test = train_test_split(
        examples,
        test_size=test_size,
        random_state=seed,
        stratify=[e.category for e in examples],
    )
    classifier = Classifier(train, review_threshold=review_threshold)
    decisions = [classifier.classify(e.text) for e in test]
    truth = [e.category for e in test]
    predicted = [d.category for d in decisions]
    confident = np.array([not d.needs_review for d in decisions])
    correct = np.array(truth) == np.array(predicted)
    return EvaluationReport(
        report=classification_report(truth, predicted, digits=3, zero_division=0),
        macro_f1=float(f1_score(truth, predicted, average="macro")),
        accuracy=float(accuracy_score(truth, predicted)),
        review_rate=float(1.0 - confident.mean()),
        accuracy_without_review=float(correct[confident].mean()) if confident.any() else 0.0,
        n_train=len(train),
        n_test=len(test),
        train_seconds=classifier.train_seconds,
    )
