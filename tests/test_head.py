"""The head's maths and its honest protocol (precompute.head): small synthetic features, fast tier."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from precompute import head as hd
from precompute.scores import compute_query_scores
from precompute.similarity import rank_neighbors_exact


def _data(n_classes: int = 4, per_class: int = 10, dim: int = 24, noise_dims: int = 20, seed: int = 0):
    """Classes separated along a few directions, buried under louder noise dimensions."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([f"c{i}" for i in range(n_classes)], per_class)
    codes = np.repeat(np.arange(n_classes), per_class)
    signal = np.zeros((len(labels), dim))
    signal[np.arange(len(labels)), codes % (dim - noise_dims)] = 2.5
    noise = rng.normal(size=(len(labels), dim)) * np.r_[np.full(dim - noise_dims, 0.5), np.full(noise_dims, 2.0)]
    return (signal + noise).astype(np.float32), labels


def test_split_halves_is_stratified_and_seeded():
    labels = np.repeat(["a", "b", "c"], [10, 7, 2])
    folds = hd.split_halves(labels, seed=3)
    for c in "abc":
        counts = np.bincount(folds[labels == c], minlength=2)
        assert abs(int(counts[0]) - int(counts[1])) <= 1
    assert np.array_equal(folds, hd.split_halves(labels, seed=3))
    assert not np.array_equal(folds, hd.split_halves(labels, seed=4))


@pytest.mark.parametrize(("per_class", "dim"), [(6, 30), (20, 12)])  # n < D (Woodbury), n > D (direct)
def test_lda_directions_solve_the_generalised_eigenproblem(per_class, dim):
    """The Woodbury / small-eigenproblem route against scipy's D x D generalised eigh with the same W and B."""
    from sklearn.covariance import ledoit_wolf_shrinkage

    x, y = _data(n_classes=4, per_class=per_class, dim=dim, noise_dims=dim - 4)
    x = x.astype(np.float64)
    kernel, bias = hd._fit_lda(x, y)
    classes, codes = np.unique(y, return_inverse=True)
    means = np.stack([x[codes == c].mean(axis=0) for c in range(len(classes))])
    residuals = x - means[codes]
    alpha = ledoit_wolf_shrinkage(residuals, assume_centered=True)
    s = residuals.T @ residuals / len(x)
    w = (1 - alpha) * s + alpha * np.trace(s) / x.shape[1] * np.eye(x.shape[1])
    m = np.sqrt(np.bincount(codes) / len(x))[:, None] * (means - x.mean(axis=0))
    values, vectors = scipy.linalg.eigh(m.T @ m, w)
    reference = vectors[:, np.argsort(values)[::-1][:3]]
    assert kernel.shape == (dim, 3)
    for j in range(3):  # the same directions (up to sign), scaled so that v^T W v = 1
        cosine = abs(kernel[:, j] @ w @ reference[:, j])
        assert cosine == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(np.diag(kernel.T @ w @ kernel), 1.0, rtol=1e-6)
    np.testing.assert_allclose(bias, -x.mean(axis=0) @ kernel, rtol=1e-6, atol=1e-9)


def test_one_label_per_class_still_gives_a_head():
    x, y = _data()
    rows = hd.take_per_class(np.arange(len(y)), y, 1, seed=0)
    assert len(rows) == 4
    head = hd.fit_head(x[rows], y[rows], hd.HeadSettings())
    assert np.isfinite(head.transform(x)).all() and head.dim >= 1


def test_cross_validation_queries_every_image_once_and_the_head_helps():
    x, y = _data(per_class=25)
    result = hd.cross_validate(x, y, hd.HeadSettings(), top_n=20)
    for protocol in hd.PROTOCOLS:
        assert sorted(result[protocol].head.index) == list(range(len(y)))
        assert list(result[protocol].base.index) == list(result[protocol].head.index)
    # The base under the headline protocol is the collection's own ranking (gallery = everything but the query).
    ranking = rank_neighbors_exact(x, "cosine", 20, groups=np.unique(y, return_inverse=True)[1])
    stored = compute_query_scores(
        ranking.indices,
        y,
        ks=(1, 5, 10, 15),
        distances=ranking.distances,
        tied_beyond=ranking.tied_beyond,
        tied_beyond_same=ranking.tied_beyond_same,
    )
    np.testing.assert_allclose(result["headline"].base["precision@5"], stored["precision@5"])
    comparison = hd.compare(result["headline"])
    assert comparison["precision@5"]["difference"] > 0.05 and comparison["precision@5"]["ci"][0] > 0


def test_a_planted_leak_is_caught():
    """A training-row picker that slips one held-out query into the training set: the protocol refuses."""
    x, y = _data()

    def leaky(rows, labels, per_class, seed):
        folds = hd.split_halves(labels, 0)
        held_out = np.flatnonzero(folds == (0 if folds[rows[0]] == 1 else 1))
        return np.concatenate([rows, held_out[:1]])

    with pytest.raises(hd.LeakError, match="1 held-out queries were in the training set"):
        hd.cross_validate(x, y, hd.HeadSettings(), train_rows_of=leaky)
    hd.cross_validate(x, y, hd.HeadSettings())  # the real picker passes


def test_check_no_leak():
    hd.check_no_leak(np.array([0, 1, 2]), np.array([3, 4]))
    with pytest.raises(hd.LeakError):
        hd.check_no_leak(np.array([0, 1, 2]), np.array([2, 4]))


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (None, "have no labels"),
        ([None, None, "a"], "have no labels"),
        (["a", "a", "a"], "at least 2 classes"),
        (["a", "a", "b"], r"b \(1 image\)"),
    ],
)
def test_bad_labels_are_refused_with_the_dataset_and_the_fix(labels, expected):
    with pytest.raises(hd.HeadInputError, match=expected) as info:
        hd.check_trainable(labels, "shapes")
    assert str(info.value).startswith("shapes: ") and "rerun" in str(info.value)


def test_learning_curve_and_summary_line():
    x, y = _data(per_class=12)
    curve = hd.learning_curve(x, y, hd.HeadSettings(), points=(1, 5, "half"), top_n=20)
    assert [row["labels_per_class"] for row in curve] == [1, 5, "half"]
    assert all(row["base"] == curve[0]["base"] for row in curve)  # the base does not learn
    comparison = {"precision@5": {"base": 0.5031, "head": 0.5921, "difference": 0.089, "ci": [0.0521, 0.1274]}}
    line = hd.summary_line("openclipart-200", "efficientnet-lite2+head", "top_conv", comparison)
    assert line == (
        "openclipart-200 efficientnet-lite2+head/top_conv: held-out precision@5 base 0.503 head 0.592 "
        "difference +0.089 [0.052, 0.127]"
    )


def test_settings_are_checked():
    with pytest.raises(ValueError, match="valid: lda, proxy"):
        hd.HeadSettings(kind="svm")


@pytest.mark.slow
def test_the_proxy_head_trains_in_keras_and_beats_the_base_held_out():
    """The Keras normalised-softmax head (imports TensorFlow: slow tier)."""
    x, y = _data(per_class=25)
    settings = hd.HeadSettings(kind="proxy", dim=8, epochs=60)
    head = hd.fit_head(x, y, settings)
    assert head.kernel.shape == (x.shape[1], 8) and np.isfinite(head.transform(x)).all()
    comparison = hd.compare(hd.cross_validate(x, y, settings, top_n=20)["headline"])
    assert comparison["precision@5"]["ci"][0] > 0
