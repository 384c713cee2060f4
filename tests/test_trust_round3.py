"""Trust, round 3 (issue #24): label-mistake flags from confident learning, closeness on an absolute scale, one
name per parameter count, a trade-off line, scores that follow the number of results, a legible palette."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.label_noise import flip_labels
from precompute.label_issues import calibrate, detect_label_issues, evidence_layers, find_label_issues
from precompute.schema import DatasetEntry


# ------------------------------------------------------------------------------------- label issues
def _clusters(n_per_class: int = 30, n_classes: int = 4, dim: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 3
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels.astype(str)


def test_confident_learning_finds_flipped_labels_and_suggests_the_true_class():
    # The benchmark's regime: 10 classes of 20 images, 5 % of the labels flipped.
    features, labels = _clusters(n_per_class=20, n_classes=10)
    noisy, flipped = flip_labels(labels, 0.05, seed=3)
    assert len(flipped) == 10 and (noisy[flipped] != labels[flipped]).all()
    kept_rows = np.setdiff1d(np.arange(len(labels)), flipped)
    assert (noisy[kept_rows] == labels[kept_rows]).all()
    details: dict = {}
    issues = detect_label_issues([features, features + 0.1], noisy, seed=0, details=details)
    # Every flag names a flipped label, and most flipped labels are flagged (8 of 10 here: the calibrated
    # probability of a wrong label sits near the noise rate over the other classes, about 0.005, and some end
    # above MAX_QUALITY).
    assert set(issues["id"]) <= set(flipped) and len(issues) >= 6
    assert (issues["suggested"].to_numpy() == labels[issues["id"]]).all()
    assert (issues["label"].to_numpy() == noisy[issues["id"]]).all()
    assert issues["quality"].is_monotonic_increasing and (issues["confidence"] > 0.5).all()
    assert details["kept"] == [0, 1]


def test_calibration_brings_over_confident_probabilities_to_the_given_labels_scale():
    labels = np.repeat([0, 1], 50)
    wrong = np.zeros(100, dtype=bool)
    wrong[[0, 50]] = True  # 2 % of the labels disagree with the classifier
    predicted = np.where(wrong, 1 - labels, labels)
    log_probabilities = np.where(np.arange(2) == predicted[:, None], 0.0, -40.0)  # probability 4e-18
    probabilities, temperature = calibrate(log_probabilities, labels)
    assert temperature > 5
    # The calibrated probability of the given label matches the share of disagreements (maximum likelihood).
    assert probabilities[wrong, labels[wrong]] == pytest.approx(0.02, rel=0.01)
    assert (probabilities.argmax(axis=1) == predicted).all()


def test_clean_labels_are_not_accused_and_a_layer_that_knows_nothing_is_left_out():
    features, labels = _clusters(seed=1)
    noise = np.random.default_rng(2).normal(size=features.shape)  # an "untrained" layer: no class structure
    details: dict = {}
    assert detect_label_issues([features, noise], labels, seed=0, details=details).empty
    assert details["kept"] == [0]  # its accuracy is far below the trained layer's


def test_only_a_confident_low_quality_label_is_flagged():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.005, 0.995], [0.1, 0.9], [0.5, 0.5]])
    issues = find_label_issues(probabilities, labels)
    assert issues["id"].tolist() == [1] and issues["suggested"].tolist() == [1]


def test_evidence_is_the_deepest_layer_of_trained_float_models_never_pixels_or_random_weights_or_heads():
    def model(source, layers, quantize=None, head_file=None):
        return {"backbone": "x", "weights": {"source": source},
                "config": {"backbone": "x", "weights_source": source, "quantize": quantize, "head_file": head_file},
                "layers": {name: {"dim": 4, "order": i} for i, name in enumerate(layers)}}

    entry = DatasetEntry.from_dict({"n_images": 3, "models": {
        "lite0": model("imagenet", ["stem_conv", "top_conv"]),
        "lite0-random": model("random", ["stem_conv", "top_conv"]),
        "pixels": model("none", ["pixels_8x8"]),
        "lite0-int8": model("imagenet", ["top_conv"], quantize="int8"),
        "mobilenetv2-nsfwjs": model("nsfwjs", ["Conv1", "block_10_project"]),
        # Trained on the very labels under test: its vote would be circular.
        "lite0+head": model("imagenet", ["top_conv"], head_file="heads/lite0.h5"),
    }})
    assert evidence_layers(entry) == [("lite0", "top_conv"), ("mobilenetv2-nsfwjs", "block_10_project")]


def test_the_pipeline_writes_no_label_flags_without_a_trained_model(playground_artifacts):
    """The test artifacts hold only pixels and an untrained EfficientNet-Lite0: no flag may come from them."""
    from precompute import artifacts as art

    entry = art.read_index(playground_artifacts).datasets["shapes"]
    assert entry.labeled and entry.label_issues is None
    assert not art.label_issues_path(playground_artifacts, "shapes").exists()


def _toy_dataset(root):
    """An index with one trained model's deepest layer over three labelled clusters: (features, manifest, features
    file), the dataset named "toy"."""
    from precompute import artifacts as art
    from precompute.schema import ArtifactIndex

    features, labels = _clusters(n_per_class=20, n_classes=3, dim=8)
    manifest = pd.DataFrame({"path": [f"{label}/{i}.png" for i, label in enumerate(labels)], "label": labels})
    model = {"backbone": "x", "weights": {"source": "imagenet"},
             "config": {"backbone": "x", "weights_source": "imagenet"}, "layers": {"top_conv": {"dim": 8, "order": 0}}}
    art.write_index(root, ArtifactIndex.from_dict({"schema_version": art.SCHEMA_VERSION, "datasets": {
        "toy": {"n_images": len(labels), "labeled": True, "models": {"lite0": model}}}}))
    features_file = art.features_path(root, "toy", "lite0", "top_conv")
    features_file.parent.mkdir(parents=True)
    art.write_array(features_file, features.astype(np.float32))
    return features, manifest, features_file


def test_label_checks_are_reused_until_their_features_labels_or_settings_change(tmp_path, monkeypatch):
    """A rerun skips confident learning when the stored flags were computed from the same inputs (a hash of the
    evidence layers' features, the labels and the settings), and redoes it when any of them changes, with
    ``force``, or when the stored file is damaged."""
    from precompute import artifacts as art
    from precompute import label_issues as li

    features, manifest, features_file = _toy_dataset(tmp_path)
    fits = []
    detect = li.detect_label_issues
    monkeypatch.setattr(li, "detect_label_issues", lambda *a, **k: fits.append(1) or detect(*a, **k))

    def run(frame=manifest, **kwargs):
        report = li.write_label_issues(tmp_path, "toy", frame, seed=0, **kwargs)
        return report["reused"], len(fits)

    assert run() == (False, 1)
    stored = art.read_index(tmp_path).datasets["toy"].label_issues
    assert stored.inputs_hash and len(stored.inputs_hash) == 64
    assert run() == (True, 1)  # nothing changed: no fit
    assert run(force=True) == (False, 2)
    labels = manifest["label"].to_numpy()
    relabelled = manifest.assign(label=np.where(np.arange(len(labels)) == 0, "1", labels))
    assert run(relabelled) == (False, 3)
    assert run(relabelled) == (True, 3)
    art.write_array(features_file, (features + 0.5).astype(np.float32))  # re-extracted features
    assert run(relabelled) == (False, 4)
    monkeypatch.setattr(li, "MAX_QUALITY", 0.02)  # another setting
    assert run(relabelled) == (False, 5)
    art.label_issues_path(tmp_path, "toy").write_bytes(b"damaged")
    assert run(relabelled) == (False, 6)
    assert run(relabelled) == (True, 6)


def test_bench_label_noise_line_format(tmp_path, monkeypatch, capsys):
    from bench import label_noise

    def fake(root, dataset, seeds, fraction):
        return label_noise.NoiseResult(dataset, list(seeds), fraction, 50, 40, 34, ["m/l"], [])

    monkeypatch.setattr(label_noise, "measure", fake)
    monkeypatch.setattr(label_noise, "_artifacts_for", lambda folder, root, stack: (root, folder.name))
    folder = tmp_path / "birds"
    folder.mkdir()
    assert label_noise.main(["--data", str(folder), "--artifacts", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "birds: label-mistake flags precision 0.85 recall 0.68 (5 seeds, 5 % flipped)\n"


# ------------------------------------------------------------------- closeness on an absolute scale
def test_distance_reference_places_a_distance_among_the_collections_pairs():
    from playground.ranking import DistanceReference

    reference = DistanceReference(pairs=np.arange(1, 101, dtype=float), nearest=np.linspace(0.5, 1.5, 21))
    assert reference.closer_than(3.0) == pytest.approx(0.97)
    assert reference.closer_than(0.1) == 1.0 and reference.closer_than(1000) == 0.0
    assert not reference.weak(1.0) and reference.weak(1.49)


def test_result_cards_say_where_the_distance_falls_and_a_far_best_result_is_called_weak(playground_artifacts):
    from playground.store import Store
    from playground.views.upload import render_private_results
    from tests.helpers import find_class, text_of

    store = Store(playground_artifacts)
    features = np.asarray(store.features("shapes", "pixels", "pixels_8x8"))
    near = {"dataset": "shapes", "model": "pixels", "layer": "pixels_8x8", "metric": "euclidean", "k": 3,
            "features": features[4].tolist()}
    panel = render_private_results(store, near)
    cards = find_class(panel, "result-card")
    closer = find_class(cards[0], "closer-than")
    assert text_of(closer) == "closer than 100 % of pairs"
    assert "closer than 100 % of pairs in this collection" in closer[0].title  # the tooltip says of what
    assert not find_class(panel, "weak-match")
    far = dict(near, features=(features.max(axis=0) * 5).tolist())
    panel = render_private_results(store, far)
    assert "Weak match: even the best result" in text_of(find_class(panel, "weak-match"))
    assert "closer than 0 % of pairs" in text_of(panel)


# --------------------------------------------------------------- parameter counts, timings, trade-off
def test_significant_digits():
    from playground.tables import significant

    assert [significant(v) for v in (10.950, 6.307, 7259.68, 0.5)] == ["10.9", "6.31", "7,260", "0.500"]


def test_both_parameter_counts_are_named_alike_in_the_cost_table_and_the_size_chart(playground_artifacts):
    from playground import figures
    from playground.store import Store
    from playground.tables import PARAMS_RUN, PARAMS_WHOLE, cost_table, family_table

    store = Store(playground_artifacts)
    costs = cost_table(store, "shapes", "cosine", "rwp@15")
    assert {PARAMS_RUN, PARAMS_WHOLE} <= set(costs.columns) and "parameters" not in costs.columns
    lite = costs.set_index("model").loc["efficientnet-lite0-random"]
    assert 0 < lite[PARAMS_RUN] <= lite[PARAMS_WHOLE]
    figure = figures.family_figure(family_table(store, "shapes", "rwp@15"), "rwp@15")
    assert PARAMS_RUN in figure.layout.xaxis.title.text
    hover = next(trace.hovertemplate for trace in figure.data if trace.hovertemplate)
    assert PARAMS_RUN in hover and PARAMS_WHOLE in hover


def test_the_compare_answer_has_a_trade_off_line_and_explains_rwp():
    from playground import tables
    from playground.views.compare import render_answer, trade_off_line
    from precompute.schema import ModelCost
    from tests.helpers import text_of

    best = pd.Series({"model": "lite2", "layer": "top_conv", "metric": "cosine", "rwp@15": 0.60,
                      "layer GFLOPs": 0.88, "layer parameters": 4.0e6})
    near = pd.Series({"model": "efficientnet-lite0", "layer": "top_conv", "metric": "cosine", "rwp@15": 0.558,
                      "layer GFLOPs": 0.396, "layer parameters": 3.0e6, "verdict": tables.BELOW,
                      "difference": 0.03, "difference low": 0.01, "difference high": 0.05, "p_value": 0.01})
    cheapest = pd.concat([best, pd.Series({"verdict": tables.BEST, "difference": 0.0, "difference low": 0.0,
                                           "difference high": 0.0, "p_value": 1.0})])
    answer = tables.Answer(score="rwp@15", best=best, baseline=0.1, model_cost=ModelCost(), cheapest=cheapest,
                           near=near, share=0.95, n_tested=20, n_ruled_out=132)
    assert trade_off_line(answer) == ("efficientnet-lite0 / top_conv: 93 % of the best rwp@15 at 45 % of its GFLOPs "
                                      "(best minus it, paired over the same queries: 0.030 [0.010, 0.050]).")
    text = text_of(render_answer(answer))
    assert "Trade-off:" in text and "efficientnet-lite0 / top_conv: 93 % of the best rwp@15" in text
    assert "rwp@15 (rank-weighted precision at 15)" in text
    # Nothing within 95 % is cheaper: the cheapest configuration within 90 % is the trade-off.
    trade = near.copy()
    answer = tables.Answer(score="rwp@15", best=best, baseline=0.1, model_cost=ModelCost(), cheapest=cheapest,
                           near=None, share=0.95, n_tested=20, n_ruled_out=132, trade_off=trade)
    assert trade_off_line(answer).startswith("efficientnet-lite0 / top_conv: 93 % of the best rwp@15")
    assert trade_off_line(tables.Answer(score="rwp@15", best=best, baseline=0.1, model_cost=ModelCost(),
                                        cheapest=cheapest, near=None, share=0.95, n_tested=1)) is None


# ----------------------------------------------------------------- scores follow the results shown
def test_the_query_scores_start_with_precision_at_the_number_of_results_shown(playground_artifacts):
    from playground.ranking import query_results, query_scores
    from playground.state import resolve_selection
    from playground.store import Store
    from playground.views.search import render_query_panel, render_results
    from tests.helpers import text_of

    store = Store(playground_artifacts)
    table = query_scores(store, "shapes", "pixels", "pixels_8x8", "cosine", 2, k=3)
    results = query_results(store, "shapes", "pixels", "pixels_8x8", "cosine", 2, 3)
    assert table.index[0] == "precision@3"
    assert table.loc["precision@3", "query"] == pytest.approx(np.mean([r.same_class for r in results]))
    assert 0 < table.loc["precision@3", "random"] < 1
    sel = resolve_selection(store, {"dataset": "shapes", "model": "pixels", "layer": "pixels_8x8", "query": 2,
                                    "k": 3})
    same = sum(r.same_class for r in results)
    assert f"{same} of 3 results share the query's class (precision@3 {same / 3:.2f}" in text_of(
        render_results(store, sel))
    assert "precision@3" in text_of(render_query_panel(store, sel))
    # At a stored cut-off the row is moved first, not repeated.
    table = query_scores(store, "shapes", "pixels", "pixels_8x8", "cosine", 2, k=5)
    assert table.index[0] == "precision@5" and list(table.index).count("precision@5") == 1


# ------------------------------------------------------------------------- private mode and errors
def test_private_mode_off_is_said_in_words_and_hides_the_model_download():
    from playground.views.upload import private_mode_state

    label, class_name, style = private_mode_state(False)
    assert label.startswith("Private mode off") and "server computes" in label and "browser" not in label
    assert "off" in class_name.split() and style == {"display": "none"}
    label, class_name, style = private_mode_state(True)
    assert label.startswith("Private mode on") and "off" not in class_name.split() and style == {}


def test_upload_errors_use_one_unit_and_no_library_names():
    from playground.uploads import too_big_message
    from precompute.datasets import ImageDecodeError, decode_image

    text = too_big_message(12_005_939)
    assert text.startswith("The file is 11.4 MiB (12,005,939 bytes); the limit is 10 MiB.") and " MB" not in text
    with pytest.raises(ImageDecodeError) as error:
        decode_image(b"plain text, not an image")
    assert "PIL" not in str(error.value) and "not an image file" in str(error.value)


# ------------------------------------------------------------------------------- layout at 1000 px
def test_the_cost_table_starts_with_the_best_layer_and_score(playground_artifacts):
    from playground.store import Store
    from playground.tables import cost_table

    costs = cost_table(Store(playground_artifacts), "shapes", "cosine", "rwp@15")
    assert list(costs.columns[:3]) == ["model", "best layer", "best rwp@15"]


def test_a_label_does_not_sit_beside_another_models_marker():
    from playground.figures import place_labels

    # Two markers 24 px apart, as lite0 and lite1 on the quality-vs-cost chart: a name centred above or below
    # its own dot spans the other dot too (the old placement); each goes on its outer side instead.
    x, y = [0.0, 0.12], [0.5, 0.5]
    positions = place_labels(x, y, ["efficientnet-lite0", "efficientnet-lite1"], [-1, 1], [0, 1], sizes=20)
    assert positions == ["middle left", "middle right"]


def test_the_map_legend_sits_under_it_and_a_note_says_umap_distorts_distances():
    from playground.map_figure import umap_figure
    from playground.views.embeddings import layout
    from tests.helpers import text_of

    coords = np.random.default_rng(0).normal(size=(30, 2))
    labels = np.array([f"c{i % 10}" for i in range(30)])
    figure = umap_figure(coords, labels, 0, [1, 2, 3])
    assert figure.layout.legend.orientation == "h" and figure.layout.legend.y < 0
    assert "distorts distances" in text_of(layout())


# ----------------------------------------------------------------------------------------- palette
def test_class_colours_contrast_with_the_map_and_differ_by_30_ciede2000():
    from itertools import combinations

    from skimage.color import deltaE_ciede2000, rgb2lab

    from playground.map_figure import CLASS_COLOURS

    def luminance(colour: str) -> float:
        rgb = np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
        linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        return float(linear @ [0.2126, 0.7152, 0.0722])

    background = "#FFFFFF"  # plotly_white: the map's plot area
    for colour in CLASS_COLOURS[:10]:
        contrast = (luminance(background) + 0.05) / (luminance(colour) + 0.05)
        assert contrast >= 3.0, (colour, round(contrast, 2))
    lab = rgb2lab(np.array([[[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in CLASS_COLOURS[:10]]]))[0]
    smallest = min(deltaE_ciede2000(lab[i], lab[j]) for i, j in combinations(range(10), 2))
    assert smallest >= 30, round(float(smallest), 1)


def test_label_checks_started_early_are_used_only_for_the_same_inputs(tmp_path):
    """Issue #27: a run whose remaining models cannot add evidence starts the label checks in a worker
    (start_label_checks); write_label_issues takes that result only when the evidence and labels are still the
    same, and its flags equal those computed in place; otherwise it fits again."""
    import multiprocessing

    from precompute import artifacts as art
    from precompute import label_issues as li
    from precompute.pipeline import ModelRequest, _may_add_evidence

    features, manifest, features_file = _toy_dataset(tmp_path)

    # A daemonic worker process, as the run's UMAP pool: cleanlab may not start processes of its own there.
    with multiprocessing.get_context("fork").Pool(1) as pool:
        job = li.start_label_checks(tmp_path, "toy", manifest, 0, False, lambda f, *a: pool.apply_async(f, a))
        timing = {}
        early = li.write_label_issues(tmp_path, "toy", manifest, seed=0, job=job, timing=timing)
    assert job.result.ready() and timing["seconds"] > 0 and not early["reused"]
    flags = art.read_table(art.label_issues_path(tmp_path, "toy"))
    in_place = li.write_label_issues(tmp_path, "toy", manifest, seed=0, force=True)
    assert in_place["found"] == early["found"] and in_place["issues"] == early["issues"]
    pd.testing.assert_frame_equal(art.read_table(art.label_issues_path(tmp_path, "toy")), flags)
    assert li.start_label_checks(tmp_path, "toy", manifest, 0, False, None) is None  # current: nothing to start

    stale = li.LabelCheckJob("another run's inputs", None)  # features re-extracted since: fitted again, here
    art.write_array(features_file, (features + 0.5).astype(np.float32))
    assert not li.write_label_issues(tmp_path, "toy", manifest, seed=0, job=stale)["reused"]

    assert _may_add_evidence(ModelRequest("efficientnet-lite0")) and _may_add_evidence(ModelRequest("vgg16", "file"))
    assert not _may_add_evidence(ModelRequest("pixels"))
    assert not _may_add_evidence(ModelRequest("efficientnet-lite0", "random"))
    assert not _may_add_evidence(ModelRequest("efficientnet-lite0", quantize="int8"))


def test_label_checks_start_in_the_workers_once_no_later_model_can_add_evidence(monkeypatch):
    """Run.workers_ready (the layer stage calls it when its workers run, before queueing a layout): the label checks
    are queued once, as soon as the model being computed is the last one that can add evidence; not while a later
    model may (a trained backbone), not without workers, not for an unlabeled dataset."""
    import precompute.label_issues as li
    import precompute.pipeline as pipeline

    started: list[object] = []
    monkeypatch.setattr(li, "start_label_checks", lambda *args: started.append(args[-1]) or "job")
    run = pipeline.Run.__new__(pipeline.Run)
    run.root, run.dataset = None, "toy"
    run.config = pipeline.RunConfig.__new__(pipeline.RunConfig)
    run.config.seed, run.config.force = 0, False
    run._umap_worker = None
    run._label_checks = pipeline.LabelChecksPlan(pd.DataFrame({"label": ["a", "b"]}), labeled=True)
    run._label_checks.later = [pipeline.ModelRequest("pixels")]
    run.workers_ready()
    assert not started  # no workers
    run._umap_worker = type("Worker", (), {"submit_call": "submit"})()
    run._label_checks.later = [pipeline.ModelRequest("efficientnet-lite0")]
    run.workers_ready()
    assert not started  # a later trained model may add evidence
    quantised = pipeline.ModelRequest("efficientnet-lite0", quantize="int8")
    run._label_checks.later = [pipeline.ModelRequest("pixels"), quantised]
    run.workers_ready()
    run.workers_ready()
    assert started == ["submit"] and run._label_checks.job == "job"
    run._label_checks = pipeline.LabelChecksPlan(pd.DataFrame({"label": [None]}), labeled=False)
    run.workers_ready()
    assert started == ["submit"]
