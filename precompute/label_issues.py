"""Likely label mistakes, found by confident learning (cleanlab) over out-of-sample class probabilities.

Two images that look alike but carry different labels are weak evidence that either label is wrong: in a
shallow or untrained layer many unrelated pictures are close, and two correct labels can sit on near twins. The
field's method is *confident learning* (Northcutt, Jiang & Chuang 2021, the ``cleanlab`` library): fit a
classifier, get each image's class probabilities **out of sample** (cross-validated, so an image never votes on
its own label), estimate the joint distribution of given and true labels from them, and flag the images whose
given label that joint says is off. Here:

- :func:`evidence_layers`: the features it learns from, the **deepest stored layer of every trained model**
  (ImageNet or another trained source; never ``random`` weights, raw ``pixels`` or quantised twins);
- :func:`out_of_sample_probabilities`: a cross-validated logistic regression on one layer's L2-normalised
  features (``StratifiedKFold``, seeded, repeated), averaged over the evidence layers that agree with the given
  labels nearly as well as the best one (:func:`combine_probabilities`);
- :func:`find_label_issues`: ``cleanlab.filter.find_label_issues`` (``prune_by_noise_rate``) on those
  probabilities, kept where cleanlab's label-quality score (self-confidence: the given label's probability) is at
  most :data:`MAX_QUALITY`, worst first;
- :func:`detect_label_issues`: the whole detection from feature arrays and labels (the pipeline and
  ``python -m bench label_noise`` both call it);
- :func:`write_label_issues`: the pipeline's stage: reads the evidence layers' features of a dataset, writes
  ``<dataset>/label_issues.parquet`` and its counts in the index.

Measured with ``python -m bench label_noise`` (docs/benchmarks.md): 5 % of the labels flipped to another class,
5 seeds per dataset, precision and recall of the flags against the flipped images.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> centres = rng.normal(size=(3, 16)) * 4
>>> labels = np.repeat(np.arange(3), 30)
>>> features = centres[labels] + rng.normal(size=(90, 16))
>>> noisy = labels.copy(); noisy[[0, 31, 62]] = [1, 2, 0]
>>> issues = detect_label_issues([features], noisy, seed=0)
>>> sorted(issues["id"].tolist()), bool((issues["suggested"] == labels[issues["id"]].astype(str)).all())
([0, 31, 62], True)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from precompute import artifacts as art
from precompute.schema import ArtifactIndex, DatasetEntry, LabelIssues

# Weight sources whose features were learned (schema.WeightsInfo.source); random and none (pixels) are not.
TRAINED_SOURCES = ("imagenet", "nsfwjs", "file")
N_FOLDS = 5
N_REPEATS = 3
# Logistic regression's inverse regularisation on L2-normalised features. Measured on openclipart-200 and
# fashion-mnist-200 with seeds other than the benchmark's (bench/label_noise.py --seeds 100..104).
C = 10.0
# Evidence layers kept: those at least this share of the best one's accuracy (combine_probabilities).
ACCURACY_SHARE = 0.9
# cleanlab alone flags every image the classifier does not trust, ambiguous drawings included (precision 0.19 at
# recall 0.76 on openclipart-200, 0.25 at 0.80 on fashion-mnist-200): a flag must also give its label little
# probability. Chosen on the benchmark's tuning seeds (100..104), not the reported ones: 0.05 kept precision
# 1.00 at recall 0.60 on fashion-mnist-200 and 0.52 at 0.50 on openclipart-200 (0.10: 0.67 / 0.68 and
# 0.34 / 0.60; 0.02: 1.00 / 0.40 and 0.70 / 0.28). Requiring a confident suggestion as well traded recall
# for precision at the same rate on openclipart-200 and was left out.
MAX_QUALITY = 0.05
ISSUE_COLUMNS = ("id", "label", "suggested", "confidence", "quality")


def evidence_layers(entry: DatasetEntry) -> list[tuple[str, str]]:
    """The ``(model, layer)`` pairs confident learning learns from: the deepest layer of each trained model.

    A model counts when its weights were learned (:data:`TRAINED_SOURCES`), it is a float model (a quantised
    variant repeats its float twin) and it is no ``<backbone>+head`` (trained on the labels under test).
    The layer is the last in network order among those stored.
    """
    found = []
    for key, model in entry.models.items():
        source = model.weights.source if model.weights is not None else model.config.weights_source
        # A trained head has seen these very labels: its features would vote for them (circular evidence).
        if source not in TRAINED_SOURCES or model.config.quantize or model.config.head_file or not model.layers:
            continue
        found.append((key, model.layer_names()[-1]))
    return sorted(found)


def out_of_sample_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    seed: int = 0,
    n_folds: int = N_FOLDS,
    n_repeats: int = N_REPEATS,
) -> np.ndarray:
    """Class probabilities of each image from a logistic regression that never saw its label.

    Parameters
    ----------
    features : array (n_images, dim)
    labels : int array (n_images,), values in 0..n_classes-1
    n_classes : number of classes (columns of the result, whatever classes a fold lacks)
    seed : the fold splits' seed
    n_folds : folds of ``StratifiedKFold`` (lowered to the smallest class's size, at least 2)
    n_repeats : cross-validations with different splits, averaged (one split's luck moved the benchmark's
        precision by 0.15 on 200 images)

    Returns
    -------
    float64 array (n_images, n_classes): each row sums to 1.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import normalize
    from threadpoolctl import threadpool_limits

    x = normalize(np.nan_to_num(np.asarray(features, dtype=np.float64)).reshape(len(labels), -1))
    counts = np.bincount(labels, minlength=n_classes)
    splits = max(2, min(n_folds, int(counts[counts > 0].min())))
    probabilities = np.zeros((len(labels), n_classes))
    # One BLAS thread: these fits are small, and on a loaded machine a thread per core made one 5-fold fit of
    # 200 images take 116 s instead of 1 s (measured on the 2-core development machine at load 13).
    with threadpool_limits(limits=1):
        for repeat in range(n_repeats):
            folds = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed * 1000 + repeat)
            for train, test in folds.split(x, labels):
                model = LogisticRegression(C=C, max_iter=2000)
                model.fit(x[train], labels[train])
                probabilities[np.ix_(test, model.classes_)] += model.predict_proba(x[test]) / n_repeats
    return probabilities


def combine_probabilities(probability_sets: Sequence[np.ndarray], labels: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The mean of the evidence layers' probabilities whose accuracy on the given labels is at least
    :data:`ACCURACY_SHARE` of the best one's, and which ones those are.

    A trained layer can still know little of these classes (the nsfwjs models' deep layers were fine-tuned on
    another task: 0.35 accuracy on openclipart-200 against 0.69 for EfficientNet-Lite2's top_conv), and its
    near-uniform probabilities would make every label look doubtful. The given labels are mostly right, so
    their agreement ranks the layers.
    """
    accuracy = np.array([(p.argmax(axis=1) == labels).mean() for p in probability_sets])
    kept = [i for i, a in enumerate(accuracy) if a >= ACCURACY_SHARE * accuracy.max()]
    return np.mean([probability_sets[i] for i in kept], axis=0), kept


def find_label_issues(probabilities: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """The images whose given label confident learning finds off, worst first.

    cleanlab's flags (``prune_by_noise_rate``), kept where the label quality (self-confidence: the given
    label's probability) is at most :data:`MAX_QUALITY` and another class is suggested.

    Returns
    -------
    pandas.DataFrame with columns ``id`` (row), ``label`` and ``suggested`` (class codes), ``confidence`` (the
    suggested class's probability) and ``quality`` (cleanlab's self-confidence label quality, 0..1, low = bad).
    """
    import cleanlab.filter
    import cleanlab.rank

    flagged = cleanlab.filter.find_label_issues(labels, probabilities, filter_by="prune_by_noise_rate")
    quality = cleanlab.rank.get_label_quality_scores(labels, probabilities)
    suggested = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    keep = flagged & (suggested != labels) & (quality <= MAX_QUALITY)
    rows = np.flatnonzero(keep)
    rows = rows[np.argsort(quality[rows], kind="stable")]
    return pd.DataFrame(
        {
            "id": rows.astype(np.int64),
            "label": labels[rows].astype(np.int64),
            "suggested": suggested[rows].astype(np.int64),
            "confidence": confidence[rows],
            "quality": quality[rows],
        },
        columns=list(ISSUE_COLUMNS),
    )


def detect_label_issues(
    feature_sets: Sequence[np.ndarray], labels: Sequence, seed: int = 0, details: dict | None = None
) -> pd.DataFrame:
    """Confident learning over the combined out-of-sample probabilities of several feature sets.

    Parameters
    ----------
    feature_sets : arrays (n_images, dim_i), one per evidence layer (:func:`evidence_layers`)
    labels : the given labels, one per image (any values; classes are their sorted unique values)
    seed : the cross-validation splits' seed
    details : a dict to receive ``kept`` (indices of the feature sets used, :func:`combine_probabilities`)

    Returns
    -------
    pandas.DataFrame as :func:`find_label_issues`, with ``label`` and ``suggested`` as the label values.
    """
    if not feature_sets:
        raise ValueError("detect_label_issues needs the features of at least one trained layer; got none.")
    classes, codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    n = len(codes)
    for i, features in enumerate(feature_sets):
        if len(features) != n:
            raise ValueError(f"feature_sets[{i}] has {len(features)} rows for {n} labels; give one row per image.")
    if len(classes) < 2:
        return pd.DataFrame(columns=list(ISSUE_COLUMNS))
    probabilities, kept = combine_probabilities(
        [out_of_sample_probabilities(f, codes, len(classes), seed) for f in feature_sets], codes
    )
    if details is not None:
        details["kept"] = kept
    issues = find_label_issues(probabilities, codes)
    issues["label"] = classes[issues["label"].to_numpy()].astype(str)
    issues["suggested"] = classes[issues["suggested"].to_numpy()].astype(str)
    return issues


def write_label_issues(root: Path, dataset: str, manifest: pd.DataFrame, seed: int = 0) -> dict[str, Any] | None:
    """The pipeline's stage: label issues of a labeled dataset from its evidence layers, written to
    ``<dataset>/label_issues.parquet`` and the index; returns the report's entry (None when no trained layer was
    computed, and then the index entry is removed: flags from other evidence would be stale)."""
    entry = art.read_index(root).datasets[dataset]
    layers = evidence_layers(entry)
    path = art.label_issues_path(root, dataset)
    if not layers:
        path.unlink(missing_ok=True)
        art.update_index(root, lambda index: setattr(index.datasets[dataset], "label_issues", None))
        return None
    features = [art.read_array(art.features_path(root, dataset, model, layer)) for model, layer in layers]
    issues = detect_label_issues(features, manifest["label"].astype(str).tolist(), seed=seed)
    art.write_table(path, issues)
    record = LabelIssues(
        path=art.relative(root, path),
        method="cleanlab confident learning (prune_by_noise_rate)",
        evidence=[f"{model}/{layer}" for model, layer in layers],
        n_folds=N_FOLDS,
        max_quality=MAX_QUALITY,
        n_issues=len(issues),
    )

    def change(index: ArtifactIndex) -> None:
        index.datasets[dataset].label_issues = record

    art.update_index(root, change)
    paths = manifest["path"].tolist()
    # The report names things its own way (the index's record is LabelIssues): what was found, from which layers.
    return {
        "found": len(issues),
        "layers": record.evidence,
        "method": record.method,
        "issues": [
            {
                "path": paths[int(row.id)],
                "label": row.label,
                "suggested": row.suggested,
                "confidence": round(float(row.confidence), 3),
            }
            for row in issues.itertuples(index=False)
        ],
    }


__all__ = [
    "ISSUE_COLUMNS",
    "MAX_QUALITY",
    "TRAINED_SOURCES",
    "detect_label_issues",
    "evidence_layers",
    "find_label_issues",
    "out_of_sample_probabilities",
    "write_label_issues",
]
