"""Likely label mistakes, found by confident learning (cleanlab) over out-of-sample class probabilities.

Two images that look alike but carry different labels are weak evidence that either label is wrong: in a
shallow or untrained layer many unrelated pictures are close, and two correct labels can sit on near twins. The
field's method is *confident learning* (Northcutt, Jiang & Chuang 2021, the ``cleanlab`` library): fit a
classifier, get each image's class probabilities **out of sample** (cross-validated, so an image never votes on
its own label), estimate the joint distribution of given and true labels from them, and flag the images whose
given label that joint says is off. Here:

- :func:`evidence_layers`: the features it learns from, the **deepest stored layer of every trained model**
  (ImageNet or another trained source; never ``random`` weights, raw ``pixels`` or quantised twins);
- :func:`out_of_sample_probabilities`: a cross-validated linear discriminant analysis with Ledoit-Wolf
  shrinkage on one layer's L2-normalised features (``StratifiedKFold``, 10 folds, seeded), its over-confident
  probabilities temperature-scaled to the given labels (:func:`calibrate`); the evidence layers whose accuracy
  on the given labels is close to the best one's are averaged (:func:`combine_probabilities`: in practice the
  best layer alone);
- :func:`find_label_issues`: ``cleanlab.filter.find_label_issues`` (:data:`FILTER_BY`) on those
  probabilities, kept where cleanlab's label-quality score (self-confidence: the given label's probability) is at
  most :data:`MAX_QUALITY`, worst first;
- :func:`detect_label_issues`: the whole detection from feature arrays and labels (the pipeline and
  ``python -m bench label_noise`` both call it);
- :func:`write_label_issues`: the pipeline's stage: reads the evidence layers' features of a dataset, writes
  ``<dataset>/label_issues.parquet`` and its counts in the index; a rerun whose features, labels and settings
  hash to the stored key (:func:`inputs_key`, :func:`label_issues_are_current`) reuses the stored flags.

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
([31, 62], True)

Image 0 is missed: its wrong label keeps a calibrated probability of 0.019, above :data:`MAX_QUALITY` (with 3
classes and 3 of 90 labels wrong, calibration gives every other class about 1-2 %).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from precompute import artifacts as art
from precompute.schema import ArtifactIndex, DatasetEntry, LabelIssues

# Weight sources whose features were learned (schema.WeightsInfo.source); random and none (pixels) are not.
TRAINED_SOURCES = ("imagenet", "nsfwjs", "file")
# Folds of the cross-validation: 10 leave 18 of 20 images per class to learn from (5 folds left 16, and ranked the
# flipped labels worse on the tuning seeds: best precision at recall 0.5 0.64 against 0.78 with PCA + LDA).
N_FOLDS = 10
N_REPEATS = 1
# Seconds between redraws of the bar while a run waits for label checks running in a worker.
WAIT_REFRESH_SECONDS = 5.0
# Evidence layers kept: those at least this share of the best one's out-of-sample accuracy (combine_probabilities).
# On openclipart-200's tuning seeds (100..104) 0.9 kept the three EfficientNet-Lite top_conv layers, whose average
# ranked the flipped labels worse than EfficientNet-Lite2's alone (best precision at recall >= 0.5: 0.63-0.76
# against 0.83); 0.97 keeps the best layer and any near tie.
ACCURACY_SHARE = 0.97
# cleanlab alone flags every image the classifier does not trust, ambiguous drawings included (precision 0.17 at
# recall 0.92 on openclipart-200's tuning seeds): a flag must also give its label little calibrated probability.
# Chosen on the tuning seeds (100..104), not the reported ones (openclipart-200: precision 0.77 at recall 0.48 there,
# 0.82 at 0.28 on seeds 0..4, short of the goal 0.8 at 0.5; fashion-mnist-200: 1.00 at 0.50 and 0.54); see
# docs/benchmarks.md section 14.
MAX_QUALITY = 0.01
FILTER_BY = "prune_by_noise_rate"
ISSUE_COLUMNS = ("id", "label", "suggested", "confidence", "quality")
# The detection's own version, part of the staleness key (inputs_key): bump it when the method changes in a way
# the settings that key holds do not show.
METHOD_VERSION = 2


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
    on_fit: Callable[[], None] | None = None,
) -> np.ndarray:
    """Class probabilities of each image from a classifier that never saw its label, calibrated.

    The classifier is scikit-learn's linear discriminant analysis with Ledoit-Wolf shrinkage of the shared
    covariance (``solver="lsqr", shrinkage="auto"``) on L2-normalised features: with 20 images per class and
    1280 dimensions it ranked the flipped labels of openclipart-200 far better than logistic regression (best
    precision at recall 0.5 on the tuning seeds 0.81 against 0.44-0.68 for C in 3..30, 5 to 20 folds, one layer or
    the three concatenated). Its probabilities are far too confident (held-out images get 1e-8 for their own
    class), so they are temperature-scaled (:func:`calibrate`) before confident learning reads them.

    Parameters
    ----------
    features : array (n_images, dim)
    labels : int array (n_images,), values in 0..n_classes-1
    n_classes : number of classes (columns of the result, whatever classes a fold lacks)
    seed : the fold splits' seed
    n_folds : folds of ``StratifiedKFold`` (lowered to the smallest class's size, at least 2)
    n_repeats : cross-validations with different splits, their log-probabilities averaged
    on_fit : called after each fold's fit (a progress bar's update)

    Returns
    -------
    float64 array (n_images, n_classes): each row sums to 1.
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import normalize
    from threadpoolctl import threadpool_limits

    x = normalize(np.nan_to_num(np.asarray(features, dtype=np.float64)).reshape(len(labels), -1))
    counts = np.bincount(labels, minlength=n_classes)
    splits = max(2, min(n_folds, int(counts[counts > 0].min())))
    # A class a training fold lacks gets the log-probability scikit-learn floors its own at (no -inf, no NaN).
    floor = np.log(np.finfo(np.float64).smallest_normal)
    log_probabilities = np.zeros((len(labels), n_classes))
    # One BLAS thread: these fits are small, and on a loaded machine a thread per core made one 5-fold fit of
    # 200 images take 116 s instead of 1 s (measured on the 2-core development machine at load 13).
    with threadpool_limits(limits=1):
        for repeat in range(n_repeats):
            folds = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed * 1000 + repeat)
            one = np.full((len(labels), n_classes), floor)
            for train, test in folds.split(x, labels):
                model = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
                model.fit(x[train], labels[train])
                one[np.ix_(test, model.classes_)] = model.predict_log_proba(x[test])
                if on_fit is not None:
                    on_fit()
            log_probabilities += one / n_repeats
    return calibrate(log_probabilities, labels)[0]


def calibrate(log_probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Temperature scaling (Guo et al. 2017): the probabilities ``softmax(log_probabilities / T)`` and ``T``, with
    ``T`` the one that best predicts the given labels (least mean negative log-likelihood).

    The given labels are mostly right, and the log-probabilities are out of sample, so one scalar fitted to them
    cannot memorise an image's label; it only brings the classifier's confidence to the scale of its accuracy
    (``T`` is 19-32 for the shrinkage LDA on the two embedded datasets). It leaves each image's best class as it
    was.
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    rows = np.arange(len(labels))

    def loss(log_t: float) -> float:
        return -float(log_softmax(log_probabilities / np.exp(log_t), axis=1)[rows, labels].mean())

    temperature = float(np.exp(minimize_scalar(loss, bounds=(-5.0, 10.0), method="bounded").x))
    return np.exp(log_softmax(log_probabilities / temperature, axis=1)), temperature


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


def find_label_issues(probabilities: np.ndarray, labels: np.ndarray, n_jobs: int | None = None) -> pd.DataFrame:
    """The images whose given label confident learning finds off, worst first.

    cleanlab's flags (:data:`FILTER_BY`), kept where the label quality (self-confidence: the given
    label's probability) is at most :data:`MAX_QUALITY` and another class is suggested. ``n_jobs``: cleanlab's
    processes (None: one per CPU; 1 in a worker process, which may not start its own); the same flags either way.

    Returns
    -------
    pandas.DataFrame with columns ``id`` (row), ``label`` and ``suggested`` (class codes), ``confidence`` (the
    suggested class's probability) and ``quality`` (cleanlab's self-confidence label quality, 0..1, low = bad).
    """
    import cleanlab.filter
    import cleanlab.rank

    flagged = cleanlab.filter.find_label_issues(labels, probabilities, filter_by=FILTER_BY, n_jobs=n_jobs)
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
    feature_sets: Sequence[np.ndarray],
    labels: Sequence,
    seed: int = 0,
    details: dict | None = None,
    on_fit: Callable[[], None] | None = None,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Confident learning over the combined out-of-sample probabilities of several feature sets.

    Parameters
    ----------
    feature_sets : arrays (n_images, dim_i), one per evidence layer (:func:`evidence_layers`)
    labels : the given labels, one per image (any values; classes are their sorted unique values)
    seed : the cross-validation splits' seed
    details : a dict to receive ``kept`` (indices of the feature sets used, :func:`combine_probabilities`)
    on_fit : called after each cross-validation fit (``N_REPEATS`` x at most ``N_FOLDS`` per feature set)
    n_jobs : cleanlab's processes (:func:`find_label_issues`)

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
        [out_of_sample_probabilities(f, codes, len(classes), seed, on_fit=on_fit) for f in feature_sets], codes
    )
    if details is not None:
        details["kept"] = kept
    issues = find_label_issues(probabilities, codes, n_jobs)
    issues["label"] = classes[issues["label"].to_numpy()].astype(str)
    issues["suggested"] = classes[issues["suggested"].to_numpy()].astype(str)
    return issues


def inputs_key(
    layers: Sequence[tuple[str, str]], feature_paths: Sequence[Path], labels: Sequence[str], seed: int
) -> str:
    """A sha256 hex digest of everything the flags depend on: the evidence layers' names and feature files (their
    bytes), the labels in row order, the folds' seed, this module's settings and the versions of cleanlab and
    scikit-learn. Stored in the index (``LabelIssues.inputs_hash``); the same key on a rerun means the stored flags are
    the ones this run would compute."""
    import cleanlab
    import sklearn

    settings = {
        "method_version": METHOD_VERSION,
        "n_folds": N_FOLDS,
        "n_repeats": N_REPEATS,
        "accuracy_share": ACCURACY_SHARE,
        "max_quality": MAX_QUALITY,
        "filter_by": FILTER_BY,
        "seed": int(seed),
        "cleanlab": cleanlab.__version__,
        "scikit-learn": sklearn.__version__,
        "layers": [f"{model}/{layer}" for model, layer in layers],
        "labels": [str(label) for label in labels],
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in feature_paths:
        with open(path, "rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


def label_issues_are_current(record: LabelIssues | None, inputs: str, path: Path) -> bool:
    """The stored flags were computed from the same inputs (:func:`inputs_key`) and their file reads back."""
    return record is not None and record.inputs_hash == inputs and art.check_table(path, record.n_issues) is None


@dataclass
class LabelCheckJob:
    """Label checks started early in a worker process (:func:`start_label_checks`): the inputs they were computed
    from (:func:`inputs_key`) and the pending result of :func:`detect_from_files`."""

    inputs: str
    result: Any  # multiprocessing AsyncResult of (issues, details, seconds)


def start_label_checks(
    root: Path, dataset: str, manifest: pd.DataFrame, seed: int, force: bool, submit: Callable[..., Any]
) -> LabelCheckJob | None:
    """Start the label checks from the evidence layers stored now, through ``submit(function, *args)`` (a worker
    process's ``apply_async``); None when there is nothing to compute (no evidence layer, or flags current).

    For a run whose remaining models cannot add evidence (no learned weights): the checks then run beside them.
    :func:`write_label_issues` uses the result only if the inputs are still the same when it is called."""
    entry = art.read_index(root).datasets[dataset]
    layers = evidence_layers(entry)
    if not layers:
        return None
    feature_paths = [art.features_path(root, dataset, model, layer) for model, layer in layers]
    labels = manifest["label"].astype(str).tolist()
    inputs = inputs_key(layers, feature_paths, labels, seed)
    if not force and label_issues_are_current(entry.label_issues, inputs, art.label_issues_path(root, dataset)):
        return None
    return LabelCheckJob(inputs, submit(detect_from_files, [str(p) for p in feature_paths], labels, seed))


def detect_from_files(feature_paths: list[str], labels: list[str], seed: int) -> tuple[pd.DataFrame, dict, float]:
    """:func:`detect_label_issues` over stored feature files: ``(issues, details, seconds)`` (a worker's job)."""
    start = time.perf_counter()
    details: dict[str, Any] = {}
    issues = detect_label_issues(
        [art.read_array(Path(p)) for p in feature_paths], labels, seed=seed, details=details, n_jobs=1
    )
    return issues, details, time.perf_counter() - start


def write_label_issues(
    root: Path,
    dataset: str,
    manifest: pd.DataFrame,
    seed: int = 0,
    force: bool = False,
    progress: bool = False,
    job: LabelCheckJob | None = None,
    timing: dict[str, float] | None = None,
) -> dict[str, Any] | None:
    """The pipeline's stage: label issues of a labeled dataset from its evidence layers, written to
    ``<dataset>/label_issues.parquet`` and the index; returns the report's entry (None when no trained layer was
    computed, and then the index entry is removed: flags from other evidence would be stale).

    Resumable like the other stages: when the stored entry was computed from the same features, labels and settings
    (:func:`label_issues_are_current`) and ``force`` is off, the stored flags are reported and nothing is fitted.
    ``progress`` draws a bar of the cross-validation fits (about 35 s for 10,000 images on 2 cores: issue #27 wants
    no stage silent for 10 s), or, for a ``job`` started early from the same inputs, of the wait for it.
    ``timing`` (a dict) receives ``seconds``, the fits' time in the worker, when the ``job``'s result is used."""
    entry = art.read_index(root).datasets[dataset]
    layers = evidence_layers(entry)
    path = art.label_issues_path(root, dataset)
    if not layers:
        path.unlink(missing_ok=True)
        art.update_index(root, lambda index: setattr(index.datasets[dataset], "label_issues", None))
        return None
    feature_paths = [art.features_path(root, dataset, model, layer) for model, layer in layers]
    labels = manifest["label"].astype(str).tolist()
    inputs = inputs_key(layers, feature_paths, labels, seed)
    if not force and label_issues_are_current(entry.label_issues, inputs, path):
        return _report_entry(art.read_table(path), entry.label_issues, manifest, reused=True)
    from tqdm.auto import tqdm

    details: dict[str, Any] = {}
    fits = len(layers) * N_REPEATS * N_FOLDS  # at most: folds are fewer when a class has fewer images
    if job is not None and job.inputs == inputs:
        issues, details, seconds = _wait(job, tqdm(total=1, desc="label checks", unit="job", disable=not progress))
        if timing is not None:
            timing["seconds"] = seconds
    else:
        with tqdm(total=fits, desc="label checks", unit="fit", disable=not progress) as bar:
            issues = detect_label_issues(
                [art.read_array(p) for p in feature_paths], labels, seed=seed, details=details, on_fit=bar.update
            )
            bar.update(bar.total - bar.n)
    art.write_table(path, issues)
    record = LabelIssues(
        path=art.relative(root, path),
        method=f"cleanlab confident learning ({FILTER_BY}) over shrinkage LDA, temperature-calibrated",
        # The layers the flags come from: those combine_probabilities kept of the evidence layers.
        evidence=[f"{layers[i][0]}/{layers[i][1]}" for i in details.get("kept", range(len(layers)))],
        n_folds=N_FOLDS,
        max_quality=MAX_QUALITY,
        n_issues=len(issues),
        inputs_hash=inputs,
    )

    def change(index: ArtifactIndex) -> None:
        index.datasets[dataset].label_issues = record

    art.update_index(root, change)
    return _report_entry(issues, record, manifest, reused=False)


def _wait(job: LabelCheckJob, bar: Any) -> tuple[pd.DataFrame, dict, float]:
    """The worker's result, the bar redrawn with the seconds waited while it is not ready."""
    import multiprocessing

    start = time.perf_counter()
    with bar:
        while True:
            try:
                found = job.result.get(timeout=WAIT_REFRESH_SECONDS)
            except multiprocessing.TimeoutError:
                bar.set_postfix_str(f"in a worker, waited {time.perf_counter() - start:.0f} s", refresh=True)
                continue
            bar.update(1)
            return found


def _report_entry(issues: pd.DataFrame, record: LabelIssues, manifest: pd.DataFrame, reused: bool) -> dict[str, Any]:
    """The report names things its own way (the index's record is LabelIssues): what was found, from which layers,
    and whether the stored flags were reused."""
    paths = manifest["path"].tolist()
    return {
        "found": len(issues),
        "layers": record.evidence,
        "method": record.method,
        "reused": reused,
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
    "calibrate",
    "detect_label_issues",
    "evidence_layers",
    "find_label_issues",
    "inputs_key",
    "label_issues_are_current",
    "out_of_sample_probabilities",
    "write_label_issues",
]
