/* Semantic Image Search Playground: relevance feedback, the maths (issue #23). precompute/feedback.py is the
   Python engine this file mirrors number for number (tests/test_feedback.py runs both). Loading this file only
   defines window.sispFeedback (self in a Worker, globalThis in node); the page's glue is feedback_ui.js.

     ROCCHIO                                       {alpha, beta, gamma}: the weights the page's help shows
     rocchio(query, features, dim, relevant, notRelevant, metric, params) -> Float32Array: the refined query
     rankRefined(vector, features, dim, metric, k, exclude) -> {ids, distances}: sispPrivate.search without
                                                   the query's own row (exclude: its id, or -1 for an upload)
     trainHead(tf, features, dim, query, relevant, notRelevant, metric, options)
                                                   -> Promise<{kernel, bias, scores, ms, epochs, loss}>
     trainHybrid(tf, features, dim, query, relevant, notRelevant, project, options)
                                                   -> Promise<{scores, ms, epochs, loss, fitted}>: a server head fine-tuned
     rankByScores(scores, k, exclude)              -> {ids, scores}: highest first, ties by the lower id
     parseMarks(text, n) / formatMarks(marks)      the deep link's form of the marks (image ids only)

   Rocchio (Rocchio 1971; Manning et al., Introduction to IR, ch. 9):
     q' = (alpha * q + beta * mean(relevant) - gamma * mean(not relevant)) / (alpha + beta - gamma),
   a term only where it has marks. Under cosine every vector is first divided by its L2 norm (each mark counts
   the same, whatever its magnitude), and the division by the weights' sum changes no cosine ranking. Under the
   other metrics (euclidean, manhattan, chebyshev, minkowski) the vectors are averaged as they are and the
   division keeps q' an affine combination of the inputs: the query moves inside the data's own coordinates,
   where the metric measures.

   Sums run in double in a fixed order (mark by mark, in the order given; a norm over the dimensions in order)
   and the refined query is rounded to float32 once, as precompute/feedback.py does: both then rank the same
   float32 vector with the same search, ties included. */
(function () {
  "use strict";

  var ROCCHIO = Object.freeze({ alpha: 1.0, beta: 1.0, gamma: 0.5 });
  // The in-browser head: a logistic layer on L2-normalised features, started at the Rocchio direction and
  // fitted on the marks (the query counts as one relevant mark).
  var HEAD = Object.freeze({ epochs: 30, learningRate: 0.01, scale: 10.0 });

  function searcher() {
    var root = typeof window !== "undefined" ? window : typeof self !== "undefined" ? self : globalThis;
    if (!root.sispPrivate) throw new Error("feedback.js needs private_search.js (window.sispPrivate) first.");
    return root.sispPrivate;
  }

  function isCosine(metric) {
    return metric === "cosine";
  }

  function checkIds(ids, n, what) {
    (ids || []).forEach(function (id) {
      if (!(id >= 0 && id < n && id === Math.floor(id))) {
        throw new Error(what + " mark " + id + " is not an image id (0.." + (n - 1) + ").");
      }
    });
  }

  function norm(values, start, dim) {
    var s = 0.0;
    for (var j = 0; j < dim; j++) s += values[start + j] * values[start + j];
    return Math.sqrt(s);
  }

  // acc += weight * row / (its norm under cosine); a zero row adds nothing (cosine's convention: similarity 0).
  function addRow(acc, values, start, dim, weight, cosine) {
    var scale = weight;
    if (cosine) {
      var length = norm(values, start, dim);
      if (!(length > 0)) return;
      scale = weight / length;
    }
    for (var j = 0; j < dim; j++) acc[j] += values[start + j] * scale;
  }

  function meanOf(ids, features, dim, cosine) {
    var acc = new Float64Array(dim);
    ids.forEach(function (id) { addRow(acc, features, id * dim, dim, 1.0, cosine); });
    for (var j = 0; j < dim; j++) acc[j] /= ids.length;
    return acc;
  }

  function rocchio(query, features, dim, relevant, notRelevant, metric, params) {
    var p = params || ROCCHIO;
    var n = features.length / dim;
    if (query.length !== dim) throw new Error("Query dim " + query.length + " != dataset dim " + dim + ".");
    checkIds(relevant, n, "relevant");
    checkIds(notRelevant, n, "not relevant");
    var cosine = isCosine(metric);
    var out = new Float64Array(dim);
    addRow(out, query, 0, dim, p.alpha, cosine);
    var total = p.alpha;
    var j;
    if (relevant && relevant.length) {
      var rel = meanOf(relevant, features, dim, cosine);
      for (j = 0; j < dim; j++) out[j] += p.beta * rel[j];
      total += p.beta;
    }
    if (notRelevant && notRelevant.length) {
      var not = meanOf(notRelevant, features, dim, cosine);
      for (j = 0; j < dim; j++) out[j] -= p.gamma * not[j];
      total -= p.gamma;
    }
    for (j = 0; j < dim; j++) out[j] /= total;
    return Float32Array.from(out);
  }

  function rankRefined(vector, features, dim, metric, k, exclude) {
    var n = features.length / dim;
    var skip = exclude >= 0 ? 1 : 0;
    var found = searcher().search(vector, features, dim, metric, Math.min(k + skip, n));
    var ids = [], distances = [];
    for (var i = 0; i < found.ids.length && ids.length < Math.min(k, n - skip); i++) {
      if (found.ids[i] === exclude) continue;
      ids.push(found.ids[i]);
      distances.push(found.distances[i]);
    }
    return { ids: Int32Array.from(ids), distances: Float64Array.from(distances) };
  }

  function rankByScores(scores, k, exclude) {
    var n = scores.length;
    var order = [];
    for (var i = 0; i < n; i++) if (i !== exclude) order.push(i);
    order.sort(function (a, b) { return scores[b] - scores[a] || a - b; });
    var ids = Int32Array.from(order.slice(0, Math.min(k, order.length)));
    return { ids: ids, scores: Float64Array.from(ids, function (id) { return scores[id]; }) };
  }

  // The marked rows (and the query) as L2-normalised float32 rows, and their 0/1 targets.
  function examples(query, features, dim, relevant, notRelevant) {
    var rows = [query].concat(relevant.map(function (id) { return features.subarray(id * dim, (id + 1) * dim); }),
      notRelevant.map(function (id) { return features.subarray(id * dim, (id + 1) * dim); }));
    var xs = new Float32Array(rows.length * dim);
    rows.forEach(function (row, i) {
      var length = norm(row, 0, dim) || 1;
      for (var j = 0; j < dim; j++) xs[i * dim + j] = row[j] / length;
    });
    var ys = new Float32Array(rows.length);
    for (var i = 0; i <= relevant.length; i++) ys[i] = 1;
    return { xs: xs, ys: ys, n: rows.length };
  }

  // A logistic layer w.x + b on L2-normalised features, fitted with TF.js on the marks. It starts from the
  // Rocchio direction under cosine (scaled by HEAD.scale, bias so that the marks' mean logit is 0): with one
  // kind of mark only, or a few marks, the fit moves it a little; with both kinds it learns what separates them.
  // `init` ({kernel: Float32Array(dim), bias}) starts it elsewhere instead (the hybrid flow: a server head).
  function trainHead(tf, features, dim, query, relevant, notRelevant, metric, options) {
    var o = Object.assign({}, HEAD, options || {});
    var n = features.length / dim;
    checkIds(relevant, n, "relevant");
    checkIds(notRelevant, n, "not relevant");
    var t0 = typeof performance !== "undefined" ? performance.now() : Date.now();
    var data = examples(query, features, dim, relevant, notRelevant);
    var kernel, bias;
    if (o.init) {
      kernel = Float32Array.from(o.init.kernel);
      bias = o.init.bias;
    } else {
      var direction = rocchio(query, features, dim, relevant, notRelevant, "cosine", o.rocchio);
      var length = norm(direction, 0, dim) || 1;
      kernel = Float32Array.from(direction, function (v) { return o.scale * v / length; });
      var mean = 0;
      for (var i = 0; i < data.n; i++) {
        var dot = 0;
        for (var j = 0; j < dim; j++) dot += data.xs[i * dim + j] * kernel[j];
        mean += dot / data.n;
      }
      bias = -mean;
    }
    var model = tf.sequential();
    model.add(tf.layers.dense({ units: 1, inputShape: [dim], activation: "sigmoid" }));
    model.setWeights([tf.tensor2d(kernel, [dim, 1]), tf.tensor1d([bias])]);
    model.compile({ optimizer: tf.train.adam(o.learningRate), loss: "binaryCrossentropy" });
    var xs = tf.tensor2d(data.xs, [data.n, dim]);
    var ys = tf.tensor2d(data.ys, [data.n, 1]);
    return model.fit(xs, ys, { epochs: o.epochs, batchSize: data.n, shuffle: false, verbose: 0,
      yieldEvery: "never" }).then(function (h) {  // no waits for the next frame between the steps
      var weights = model.getWeights();
      return Promise.all([weights[0].data(), weights[1].data()]).then(function (values) {
        var w = values[0], b = values[1][0];
        // Scores of every image: w . x / |x| + b in double (the ranking must not depend on the backend's
        // float32 matmul order), then rounded to float32.
        var scores = new Float32Array(n);
        for (var r = 0; r < n; r++) {
          var s = 0, xx = 0;
          for (var c = 0; c < dim; c++) {
            var x = features[r * dim + c];
            s += w[c] * x; xx += x * x;
          }
          scores[r] = xx > 0 ? s / Math.sqrt(xx) + b : b;
        }
        xs.dispose(); ys.dispose(); model.dispose();
        var t1 = typeof performance !== "undefined" ? performance.now() : Date.now();
        var losses = h.history.loss || [];
        return { kernel: Float32Array.from(w), bias: b, scores: scores, ms: t1 - t0, epochs: o.epochs,
          loss: losses.length ? losses[losses.length - 1] : null };
      });
    });
  }

  // The hybrid flow: a head trained on the server (precompute/head.py: z = x K + b, searched by cosine), loaded
  // from its TF.js export, fine-tuned here on the marks. The model scores s(x) = v . z(x)/|z(x)| + c: v starts at
  // the Rocchio direction in the head's space (so before any step it ranks like Rocchio there), and K, b, v, c
  // are all fitted on the marks and the query with a logistic loss, K and b at a smaller learning rate and held
  // near the server's weights by an L2 penalty (a few marks must not undo what thousands of labels taught).
  var HYBRID = Object.freeze({ epochs: 30, learningRate: 0.01, headLearningRate: 0.0002, anchor: 1.0, scale: 10.0 });

  function trainHybrid(tf, features, dim, query, relevant, notRelevant, project, options) {
    var o = Object.assign({}, HYBRID, options || {});
    var n = features.length / dim;
    var m = project.bias.length;
    if (project.kernel.length !== dim * m) {
      throw new Error("the server head's kernel holds " + project.kernel.length + " values, not " + dim + " x " + m);
    }
    checkIds(relevant, n, "relevant");
    checkIds(notRelevant, n, "not relevant");
    var t0 = typeof performance !== "undefined" ? performance.now() : Date.now();
    var rows = [query].concat(relevant.map(function (id) { return features.subarray(id * dim, (id + 1) * dim); }),
      notRelevant.map(function (id) { return features.subarray(id * dim, (id + 1) * dim); }));
    var xs = new Float32Array(rows.length * dim);
    rows.forEach(function (row, i) { xs.set(row, i * dim); });
    var ys = new Float32Array(rows.length);
    for (var i = 0; i <= relevant.length; i++) ys[i] = 1;
    var K0 = tf.tensor2d(project.kernel, [dim, m]);
    var b0 = tf.tensor1d(project.bias);
    var X = tf.tensor2d(xs, [rows.length, dim]);
    var Y = tf.tensor2d(ys, [rows.length, 1]);
    var embed = function (x, K, b) {
      var z = tf.add(tf.matMul(x, K), b);
      return tf.div(z, tf.maximum(tf.norm(z, 2, 1, true), 1e-12));
    };
    // v0: the Rocchio direction among the marks' unit head features; c0: the marks' mean logit at 0.
    var init = tf.tidy(function () {
      var Z = embed(X, K0, b0);
      var q = Z.slice([0, 0], [1, m]);
      var dir = q;
      if (relevant.length) dir = tf.add(dir, tf.mul(ROCCHIO.beta, Z.slice([1, 0], [relevant.length, m]).mean(0, true)));
      if (notRelevant.length) {
        dir = tf.sub(dir, tf.mul(ROCCHIO.gamma, Z.slice([1 + relevant.length, 0], [notRelevant.length, m]).mean(0, true)));
      }
      var v = tf.mul(o.scale, tf.div(dir, tf.maximum(tf.norm(dir), 1e-12))).reshape([m, 1]);
      var c = tf.neg(tf.matMul(Z, v).mean());
      return { v: v, c: c };
    });
    var K = tf.variable(K0.clone()), b = tf.variable(b0.clone());
    var v = tf.variable(init.v), c = tf.variable(init.c.reshape([1]));
    var fast = tf.train.adam(o.learningRate), slow = tf.train.adam(o.headLearningRate);
    var lossOf = function () {
      var logits = tf.add(tf.matMul(embed(X, K, b), v), c);
      var anchor = tf.mul(o.anchor, tf.add(tf.sum(tf.square(tf.sub(K, K0))), tf.sum(tf.square(tf.sub(b, b0)))));
      return tf.add(tf.losses.sigmoidCrossEntropy(Y, logits), anchor);
    };
    var last = null;
    for (var step = 0; step < o.epochs; step++) {
      // One loss, two learning rates: the gradients once, each optimizer applies its own variables'.
      var grads = tf.variableGrads(lossOf);
      fast.applyGradients({ [v.name]: grads.grads[v.name], [c.name]: grads.grads[c.name] });
      slow.applyGradients({ [K.name]: grads.grads[K.name], [b.name]: grads.grads[b.name] });
      if (step === o.epochs - 1) last = grads.value.dataSync()[0];
      grads.value.dispose();
      Object.keys(grads.grads).forEach(function (key) { grads.grads[key].dispose(); });
    }
    var scores = tf.tidy(function () {
      var F = tf.tensor2d(features, [n, dim]);
      return tf.add(tf.matMul(embed(F, K, b), v), c).reshape([n]);
    });
    return scores.data().then(function (values) {
      var t1 = typeof performance !== "undefined" ? performance.now() : Date.now();
      // The fitted weights (for a check of the scores from them: tests/test_feedback_browser.py).
      var fitted = { kernel: K.dataSync().slice(), bias: b.dataSync().slice(), direction: v.dataSync().slice(),
        offset: c.dataSync()[0] };
      [K0, b0, X, Y, K, b, v, c, init.v, init.c, scores].forEach(function (t) { t.dispose(); });
      fast.dispose(); slow.dispose();
      return { scores: Float32Array.from(values), ms: t1 - t0, epochs: o.epochs, loss: last, fitted: fitted };
    });
  }

  // ------------------------------------------------------------------------------------ deep links
  // "rel=3,17&not=5" in the URL's fragment (never sent to a server). Returns the marks that are image ids
  // of this dataset, and a problem per value that is not (the page shows them as notices).
  var MARK_KEYS = { rel: "relevant", not: "notRelevant" };

  function parseMarks(text, n) {
    var out = { relevant: [], notRelevant: [], problems: [] };
    var seen = {};
    String(text || "").replace(/^#/, "").split("&").forEach(function (part) {
      if (!part) return;
      var eq = part.indexOf("=");
      var key = eq < 0 ? part : part.slice(0, eq);
      if (!(key in MARK_KEYS)) return;  // other keys of the fragment are not ours
      var value = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1));
      value.split(",").forEach(function (item) {
        var raw = item.trim();
        if (!raw) return;
        if (!/^\d+$/.test(raw)) {
          out.problems.push("Mark " + JSON.stringify(raw) + " in " + key + "= is not an image id (a whole number); " +
            "it was left out.");
          return;
        }
        var id = Number(raw);
        if (!(id < n)) {
          out.problems.push("Marked image " + id + " is not in this dataset (0.." + (n - 1) + "); it was left out.");
          return;
        }
        if (id in seen) {
          if (seen[id] !== key) {
            out.problems.push("Image " + id + " is marked both relevant and not relevant; the mark was dropped.");
            out[seen[id] === "rel" ? "relevant" : "notRelevant"] =
              out[seen[id] === "rel" ? "relevant" : "notRelevant"].filter(function (x) { return x !== id; });
            seen[id] = "dropped";
          }
          return;
        }
        seen[id] = key;
        out[MARK_KEYS[key]].push(id);
      });
    });
    return out;
  }

  function formatMarks(marks) {
    var parts = [];
    if (marks.relevant && marks.relevant.length) parts.push("rel=" + marks.relevant.join(","));
    if (marks.notRelevant && marks.notRelevant.length) parts.push("not=" + marks.notRelevant.join(","));
    return parts.join("&");
  }

  var api = Object.freeze({
    ROCCHIO: ROCCHIO,
    HEAD: HEAD,
    rocchio: rocchio,
    rankRefined: rankRefined,
    rankByScores: rankByScores,
    trainHead: trainHead,
    HYBRID: HYBRID,
    trainHybrid: trainHybrid,
    parseMarks: parseMarks,
    formatMarks: formatMarks,
  });
  (typeof window !== "undefined" ? window : typeof self !== "undefined" ? self : globalThis).sispFeedback = api;
})();
