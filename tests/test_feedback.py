"""Relevance feedback (issue #23): ``assets/feedback.js`` against ``precompute/feedback.py``.

- Node (fast tier): after a refine, the browser's Rocchio query and ranking equal the Python engine's, float32
  for float32, for every metric the browser searches, with ties (duplicated rows, scaled copies, a zero row,
  small integers); several rounds; uploads (no row excluded); the deep link's marks parsed with a problem per
  bad value; the in-browser head (TF.js ``fit`` in node, CPU backend) ranks by scores that Python recomputes
  exactly from its weights, and lifts precision on clustered features.
- Stored features (slow): the same parity on every layer the real pipeline stored for the playground fixtures.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.feedback import run_node_heads
from precompute import feedback, similarity
from tests.test_private_js import CODEC_JS, METRICS, NODE, JsError, _results, _wire, needs_node, tied_features
from tests.tfjs_node import tfjs_unavailable

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"

DRIVER = (
    CODEC_JS.replace("window.sispPrivate[call.fn]", "window.sispFeedback[call.fn]")
    + r"""
globalThis.window = globalThis;
require(process.env.SISP_ASSETS + "/private_search.js");
require(process.env.SISP_ASSETS + "/feedback.js");
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", async () => { process.stdout.write(await runCalls(JSON.parse(input))); });
"""
)


def call_feedback(calls: list[tuple[str, list]]) -> list:
    """``window.sispFeedback[fn](*args)`` for each call in one node process; results or JsError messages."""
    payload = json.dumps([{"fn": fn, "args": _wire(list(args))} for fn, args in calls])
    done = subprocess.run(
        [NODE, "-e", DRIVER],
        input=payload,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "SISP_ASSETS": str(ASSETS)},
    )
    assert done.returncode == 0, done.stderr
    return _results(done.stdout)


def _plain(values) -> list[int]:
    return [int(v) for v in values]


def _listed(value: dict) -> list:
    return [value[str(i)] for i in range(len(value))]


def marks_cases(seed: int = 5) -> list[tuple[str, np.ndarray, int | None, list[int], list[int], int]]:
    """(metric, features, query id or None for an upload, relevant, not relevant, k): ties of every kind."""
    rng = np.random.default_rng(seed)
    cases = []
    for metric in METRICS:
        features = tied_features(rng, 300, 16)
        for query, n_rel, n_not, k in (
            (5, 3, 2, 15),
            (3, 1, 0, 15),
            (40, 0, 4, 50),
            (7, 2, 2, 10),
            (None, 5, 5, 15),
            (9, 6, 9, 299),
        ):
            pool = rng.permutation(300)
            pool = pool[pool != (query if query is not None else -1)]
            relevant = _plain(pool[:n_rel])
            not_relevant = _plain(pool[n_rel : n_rel + n_not])
            if query == 5:
                relevant = [17, 40, 7, *relevant[1:]]  # duplicates of the query, and the zero row
            cases.append((metric, features, query, relevant, not_relevant, k))
    return cases


@needs_node
def test_browser_refine_equals_python_for_every_metric_with_ties():
    cases = marks_cases()
    calls = []
    for metric, features, query, relevant, not_relevant, _k in cases:
        vector = features[query] if query is not None else np.linspace(-2, 2, features.shape[1], dtype=np.float32)
        calls.append(("rocchio", [vector, features.ravel(), features.shape[1], relevant, not_relevant, metric, None]))
    vectors = call_feedback(calls)
    rank_calls = []
    for (metric, features, query, relevant, not_relevant, k), got in zip(cases, vectors, strict=True):
        assert not isinstance(got, JsError), got
        vector = features[query] if query is not None else np.linspace(-2, 2, features.shape[1], dtype=np.float32)
        want = feedback.rocchio_query(vector, features, relevant, not_relevant, metric)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want, err_msg=f"{metric}, query {query}")
        rank_calls.append(
            ("rankRefined", [got, features.ravel(), features.shape[1], metric, k, -1 if query is None else query])
        )
    rankings = call_feedback(rank_calls)
    n_ties = 0
    for (metric, features, query, relevant, not_relevant, k), got in zip(cases, rankings, strict=True):
        assert not isinstance(got, JsError), got
        vector = features[query] if query is not None else np.linspace(-2, 2, features.shape[1], dtype=np.float32)
        want = feedback.refine(vector, features, relevant, not_relevant, metric, k, exclude=query)
        np.testing.assert_array_equal(got["ids"], want.indices[0], err_msg=f"{metric}, query {query}, k={k}")
        np.testing.assert_array_equal(got["distances"], want.distances[0].astype(np.float64), err_msg=metric)
        assert query not in _plain(got["ids"])
        n_ties += int(np.sum(np.diff(want.distances[0]) == 0))
    assert n_ties > 20, "the cases must hold ties for the tie order to be tested"


@needs_node
def test_several_rounds_stay_identical():
    """Round after round (the marks of each round added to the last), the two stay equal."""
    rng = np.random.default_rng(8)
    features = rng.normal(size=(400, 24)).astype(np.float32)
    labels = rng.integers(0, 8, 400)
    features += 2.0 * np.eye(8, 24, dtype=np.float32)[labels]
    calls, wanted = [], []
    for metric in ("cosine", "euclidean", "manhattan", "minkowski-p3"):
        query, relevant, not_relevant = 11, [], []
        ids = similarity.search_exact(features[query], features, metric, 15, exclude=np.array([query])).indices[0]
        for round_ in range(3):
            for i in _plain(ids):
                if i not in relevant and i not in not_relevant:
                    (relevant if labels[i] == labels[query] else not_relevant).append(i)
            want = feedback.refine(features[query], features, relevant, not_relevant, metric, 15, exclude=query)
            vector = feedback.rocchio_query(features[query], features, relevant, not_relevant, metric)
            calls += [
                ("rocchio", [features[query], features.ravel(), 24, list(relevant), list(not_relevant), metric, None]),
                ("rankRefined", [vector, features.ravel(), 24, metric, 15, query]),
            ]
            wanted.append((f"{metric}, round {round_ + 1}", vector, want.indices[0]))
            ids = want.indices[0]
    got = call_feedback(calls)
    for (what, vector, ids), got_vector, got_ranking in zip(wanted, got[::2], got[1::2], strict=True):
        np.testing.assert_array_equal(got_vector, vector, err_msg=what)
        np.testing.assert_array_equal(got_ranking["ids"], ids, err_msg=what)


@needs_node
def test_rocchio_errors_and_weights():
    features = np.eye(4, dtype=np.float32) * 3
    bad_id, bad_dim, custom = call_feedback(
        [
            ("rocchio", [features[0], features.ravel(), 4, [9], [], "cosine", None]),
            ("rocchio", [features[0, :3], features.ravel(), 4, [1], [], "cosine", None]),
            ("rocchio", [features[0], features.ravel(), 4, [1], [2], "euclidean", {"alpha": 2, "beta": 1, "gamma": 1}]),
        ]
    )
    assert "relevant mark 9 is not an image id (0..3)" in bad_id
    assert "Query dim 3 != dataset dim 4" in bad_dim
    want = feedback.rocchio_query(features[0], features, [1], [2], "euclidean", feedback.RocchioParams(2, 1, 1))
    np.testing.assert_array_equal(custom, want)
    np.testing.assert_array_equal(want, np.array([3.0, 1.5, -1.5, 0.0], np.float32))
    with pytest.raises(ValueError, match=r"images \[1\] are marked both"):
        feedback.rocchio_query(features[0], features, [1], [1], "cosine")
    with pytest.raises(ValueError, match="Unknown metric|hamming"):
        feedback.rocchio_query(features[0], features, [1], [], "hamming")


@needs_node
def test_deep_link_marks_parse_with_a_problem_per_bad_value():
    ok, bad, fmt = call_feedback(
        [
            ("parseMarks", ["#rel=3,17&not=5&other=1", 200]),
            ("parseMarks", ["rel=3,x,900,-2&not=3,4,4&rel=", 200]),
            ("formatMarks", [{"relevant": [3, 17], "notRelevant": [5]}]),
        ]
    )
    ok, bad = ({key: _listed(value) for key, value in got.items()} for got in (ok, bad))  # arrays travel as {i: v}
    assert ok == {"relevant": [3, 17], "notRelevant": [5], "problems": []}
    assert bad["relevant"] == [] and bad["notRelevant"] == [4]
    problems = " | ".join(bad["problems"])
    assert '"x"' in problems and "900 is not in this dataset (0..199)" in problems and '"-2"' in problems
    assert "Image 3 is marked both relevant and not relevant" in problems
    assert fmt == "rel=3,17&not=5"


needs_tfjs = pytest.mark.skipif(tfjs_unavailable() is not None, reason=f"TF.js in node: {tfjs_unavailable()}")


@needs_tfjs
def test_head_ranks_by_its_scores_and_learns_from_marks():
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(10), 20)
    centres = rng.normal(size=(10, 32))
    features = (centres[labels] * 0.6 + rng.normal(size=(200, 32))).astype(np.float32)
    tasks, expected = [], []
    before, after = [], []
    for query in range(0, 200, 40):
        top = similarity.search_exact(features[query], features, "cosine", 15, exclude=np.array([query])).indices[0]
        relevant = [int(i) for i in top if labels[i] == labels[query]]
        not_relevant = [int(i) for i in top if labels[i] != labels[query]]
        tasks.append({"query": query, "relevant": relevant, "notRelevant": not_relevant, "kernel": True})
        expected.append(query)
        before.append(np.mean(labels[top] == labels[query]))
    for query, row in zip(expected, run_node_heads(features, "cosine", tasks, timeout=600), strict=True):
        np.testing.assert_array_equal(row["scores"], feedback.head_scores(row["kernel"], row["bias"], features))
        top = feedback.rank_by_scores(row["scores"], 15, exclude=query)
        assert query not in top
        after.append(np.mean(labels[top] == labels[query]))
    assert np.mean(after) > np.mean(before) + 0.05, (np.mean(before), np.mean(after))


@needs_node
def test_rank_by_scores_ties_by_lower_id():
    scores = np.array([0.5, 0.9, 0.5, 0.9, 0.1], np.float32)
    (got,) = call_feedback([("rankByScores", [scores, 4, 1])])
    np.testing.assert_array_equal(got["ids"], [3, 0, 2, 4])
    np.testing.assert_array_equal(feedback.rank_by_scores(scores, 4, exclude=1), [3, 0, 2, 4])


def test_hybrid_scores_are_the_unit_head_outputs_dotted_with_the_direction():
    rng = np.random.default_rng(0)
    features, kernel, bias = rng.normal(size=(6, 4)), rng.normal(size=(4, 3)), rng.normal(size=3)
    direction, offset = rng.normal(size=3), 0.25
    z = features @ kernel.astype(np.float32) + bias.astype(np.float32)
    want = (z / np.linalg.norm(z, axis=1, keepdims=True)) @ direction.astype(np.float32) + offset
    got = feedback.hybrid_scores(kernel.reshape(-1), bias, direction, offset, features)  # flat, as TF.js holds it
    assert got.dtype == np.float32 and np.allclose(got, want, atol=1e-6)


@needs_node
@pytest.mark.slow
def test_refine_parity_on_stored_features(playground_artifacts):
    """Features stored by the real pipeline (tests/playground_fixtures.py): every model, layer and metric computed,
    every query, marks from the labels."""
    from playground.store import Store

    store = Store(playground_artifacts)
    dataset = "shapes"
    for model in store.models(dataset):
        for layer in store.layers(dataset, model):
            _check_stored(store, dataset, model, layer)


def _check_stored(store, dataset: str, model: str, layer: str) -> None:
    features = np.asarray(store.features(dataset, model, layer), dtype=np.float32)
    labels = np.asarray(store.labels(dataset)).astype(str)
    metrics = [m for m in store.all_metrics(dataset) if m in METRICS or m.startswith("minkowski-p")]
    calls, cases = [], []
    for metric in metrics:
        for query in range(len(features)):
            top = similarity.search_exact(features[query], features, metric, 15, exclude=np.array([query])).indices[0]
            rel = [int(i) for i in top if labels[i] == labels[query]]
            nrel = [int(i) for i in top if labels[i] != labels[query]]
            vector = feedback.rocchio_query(features[query], features, rel, nrel, metric)
            cases.append((metric, query, rel, nrel))
            calls.append(("rankRefined", [vector, features.ravel(), features.shape[1], metric, 15, query]))
    (check,) = call_feedback(
        [("rocchio", [features[0], features.ravel(), features.shape[1], cases[0][2], cases[0][3], cases[0][0], None])]
    )
    np.testing.assert_array_equal(
        check, feedback.rocchio_query(features[0], features, cases[0][2], cases[0][3], cases[0][0])
    )
    for (metric, query, rel, nrel), got in zip(cases, call_feedback(calls), strict=True):
        want = feedback.refine(features[query], features, rel, nrel, metric, 15, exclude=query)
        np.testing.assert_array_equal(got["ids"], want.indices[0], err_msg=f"{metric}, query {query}")


# ------------------------------------------------------------------------------------------- the page's context


def test_results_panel_carries_what_the_browser_needs_and_says_when_too_big(playground_artifacts, monkeypatch):
    from playground import feedback as page_feedback
    from playground import private
    from playground.state import Selection
    from playground.static_html import to_tree
    from playground.store import Store
    from playground.views.search import render_results

    store = Store(playground_artifacts)
    layer = store.layers("shapes", "pixels")[-1]
    sel = Selection(
        view="search", dataset="shapes", model="pixels", layer=layer, metric="cosine", query=3, k=10, labeled=True
    )
    tree = json.dumps(to_tree(render_results(store, sel)))
    assert page_feedback.CONTEXT_CLASS in tree
    data = page_feedback.context_data(store, "shapes", "pixels", layer, "cosine", 3, 10, "search")
    n, dim = store.features("shapes", "pixels", layer).shape
    assert data["available"] and data["n_images"] == n and data["dim"] == dim and data["query"] == 3
    assert data["urls"]["features"].startswith(f"/private/shapes/pixels/{layer}/features.f32?v=")
    assert data["rocchio"] == {"alpha": 1.0, "beta": 1.0, "gamma": 0.5}
    assert data["default_method"] == feedback.DEFAULT_METHOD and "hybrid" not in data  # no head stored here
    vector = np.arange(dim, dtype=np.float32)
    upload = page_feedback.context_data(store, "shapes", "pixels", layer, "cosine", None, 10, "upload", vector)
    assert np.array_equal(np.frombuffer(base64.b64decode(upload["query_vector"]), "<f4"), vector)
    monkeypatch.setattr(private, "LOCAL_SEARCH_MAX_IMAGES", 5)
    monkeypatch.setattr(page_feedback, "searchable_in_browser", lambda n, d: n <= private.LOCAL_SEARCH_MAX_IMAGES)
    big = page_feedback.context_data(store, "shapes", "pixels", layer, "cosine", 3, 10, "search")
    assert big["available"] and big["local"] is False  # the vector path: rows of the results, the vector sent
    assert big["urls"]["rows"] == f"/feedback/shapes/pixels/{layer}/rows" and big["urls"]["rank"] == "/feedback/rank"


# ------------------------------------------------------------------------------------------- marks as labels


def _pairs_csv(tmp_path: Path, rows: list[str], dataset: str = "shapes", fingerprint: str = "fp1") -> str:
    path = tmp_path / f"marks-{len(list(tmp_path.glob('marks-*.csv')))}.csv"
    path.write_text(
        f"{feedback.PAIRS_COMMENT}: dataset={dataset}, fingerprint={fingerprint}\n"
        "query id,result id,relevant\n" + "\n".join(rows) + "\n"
    )
    return str(path)


def test_pairs_csv_is_read_and_checked_naming_the_rows(tmp_path):
    good = feedback.read_pairs(_pairs_csv(tmp_path, ["3,5,1", "3,7,0", "3,5,true"]), "shapes", "fp1", 24)
    assert good.query.tolist() == [3, 3] and good.result.tolist() == [5, 7] and good.relevant.tolist() == [True, False]
    with pytest.raises(feedback.PairsError, match="made for dataset 'other', not 'shapes'"):
        feedback.read_pairs(_pairs_csv(tmp_path, ["3,5,1"], dataset="other"), "shapes", "fp1", 24)
    with pytest.raises(feedback.PairsError, match="stale: .*'fp0'.*now 'fp1'"):
        feedback.read_pairs(_pairs_csv(tmp_path, ["3,5,1"], fingerprint="fp0"), "shapes", "fp1", 24)
    rows = ["3,5,1", "3,99,1", "x,2,0", "4,4,1", "3,5,0", "6,7,maybe"]
    with pytest.raises(feedback.PairsError) as caught:
        feedback.read_pairs(_pairs_csv(tmp_path, rows), "shapes", "fp1", 24)
    text = str(caught.value)
    assert "5 bad rows, nothing was changed" in text
    assert "line 4: result id '99' is not an image id of shapes (0..23)" in text
    assert "line 5: query id 'x'" in text and "line 6: the result is the query itself" in text
    assert "lines 3 and 7: pair 3,5 is marked both relevant and not relevant" in text
    assert "line 8: relevant 'maybe'" in text
    missing = tmp_path / "none.csv"
    with pytest.raises(feedback.PairsError, match="cannot read it"):
        feedback.read_pairs(str(missing), "shapes", "fp1", 24)


def test_pairs_add_to_the_heads_training_rows():
    features = np.arange(12, dtype=np.float32).reshape(6, 2)
    labels = np.array(["a", "a", "a", "b", "b", "b"])
    pairs = feedback.Pairs(np.array([0, 0]), np.array([4, 1]), np.array([True, False]), "d", "f")
    x, y = feedback.training_set(features, labels, pairs)
    # image 4 joins the query's class "a" once more; image 1 (labelled "a", marked not relevant) leaves
    assert y.tolist() == ["a", "a", "b", "b", "b", "a"]
    np.testing.assert_array_equal(x, features[[0, 2, 3, 4, 5, 4]])
    same = feedback.training_set(features, labels, None)
    assert same[0] is not None and np.array_equal(same[1], labels)


def _stored_photos(tmp_path: Path) -> tuple[Path, Path, str]:
    from precompute import artifacts as art
    from tests.test_head_stage import _stored

    folder, out = _stored(tmp_path, {"a": 4, "b": 4})
    return folder, out, art.read_index(out).datasets["photos"].fingerprint


def test_train_head_refuses_a_bad_pairs_csv_naming_the_rows_and_changes_nothing(tmp_path, capsys):
    from precompute import artifacts as art
    from precompute.cli import main

    folder, out, fingerprint = _stored_photos(tmp_path)
    before = art.index_path(out).read_bytes()
    files = sorted(p for p in out.rglob("*") if p.is_file())
    cases = [
        (_pairs_csv(tmp_path, ["0,1,1"], dataset="photos", fingerprint="old"), "stale: made when photos had"),
        (_pairs_csv(tmp_path, ["0,1,1"], dataset="shapes", fingerprint=fingerprint), "made for dataset 'shapes'"),
        (
            _pairs_csv(tmp_path, ["0,1,1", "0,40,1", "0,1,0"], dataset="photos", fingerprint=fingerprint),
            r"2 bad rows.*line 4: result id '40'.*lines 3 and 5",
        ),
    ]
    for path, expected in cases:
        args = [str(folder), "--out", str(out), "--train-head", "pixels/pixels_8x8", "--pairs", path, "--no-progress"]
        assert main(args) == 2
        message = capsys.readouterr().err
        assert re.search(expected, message, flags=re.S), message
        assert art.index_path(out).read_bytes() == before
        assert sorted(p for p in out.rglob("*") if p.is_file()) == files
    assert main([str(folder), "--out", str(out), "--pairs", cases[0][0], "--no-progress"]) == 2
    assert "needs --train-head" in capsys.readouterr().err


@pytest.mark.slow
def test_train_head_learns_from_a_good_pairs_csv(tmp_path):
    from precompute import artifacts as art
    from precompute.cli import main

    folder, out, fingerprint = _stored_photos(tmp_path)
    base = [
        str(folder),
        "--out",
        str(out),
        "--train-head",
        "pixels/pixels_8x8",
        "--head-kind",
        "lda",
        "--tfjs",
        "none",
        "--no-progress",
    ]
    assert main(base) == 0
    plain = art.read_index(out).datasets["photos"].models["pixels+head"].trained_heads["pixels_8x8"].labels_sha256
    path = _pairs_csv(tmp_path, ["0,5,1", "0,1,0"], dataset="photos", fingerprint=fingerprint)
    assert main([*base, "--pairs", path]) == 0
    taught = art.read_index(out).datasets["photos"].models["pixels+head"].trained_heads["pixels_8x8"].labels_sha256
    assert taught != plain, "other marks make another head (retrained, not reused)"
