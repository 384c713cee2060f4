/* Relevance feedback in the page (issue #23): marks on the result cards of Search and Upload, Refine, Undo, Reset,
   the sentence on what happened, and the marks in the address's fragment. The maths is feedback.js
   (window.sispFeedback); the results panel says what it needs in a hidden .feedback-context element
   (playground/feedback.py), or, for an upload searched in this browser, private_upload.js's last result.

   Nothing about the marks, the query or the features leaves the browser: on the first mark the page fetches, once
   per layer, the layer's features, the labels and every thumbnail of the dataset (the same requests whatever is
   marked, as private mode does), and from then on marks and refines make no request at all. The marks go into
   the address's fragment (#rel=3,17&not=5), which browsers never send, so that a refined view can be shared.

   Keyboard: every mark is a button (Tab, Enter or Space), and on a focused card R marks it relevant, N not
   relevant, C clears it. Marked cards keep their mark (and their element, so focus stays) when they move. */
(function () {
  "use strict";

  var PANELS = ["search-results", "upload-results"];
  var MARK_TEXT = { relevant: "✓", not: "✗" };
  var MARK_NAME = { relevant: "relevant", not: "not relevant" };
  var sessions = {}; // panel id -> session
  // "dataset fingerprint" -> {query id: Map(image id -> mark)}: every query marked in this tab (sessionStorage:
  // it stays in this browser, and goes with the tab).
  var taught = readTaught();

  function readTaught() {
    var out = {};
    try {
      var saved = JSON.parse(sessionStorage.getItem("sisp-feedback-marks") || "{}");
      Object.keys(saved).forEach(function (key) {
        out[key] = {};
        Object.keys(saved[key]).forEach(function (q) { out[key][q] = new Map(saved[key][q]); });
      });
    } catch (error) {
      return {};
    }
    return out;
  }

  function saveTaught() {
    var plain = {};
    Object.keys(taught).forEach(function (key) {
      plain[key] = {};
      Object.keys(taught[key]).forEach(function (q) { plain[key][q] = Array.from(taught[key][q].entries()); });
    });
    try {
      sessionStorage.setItem("sisp-feedback-marks", JSON.stringify(plain));
    } catch (error) {
      // storage full or off: the marks stay in this page only
    }
  }
  var cache = { data: {}, tf: null };
  var hashPending = typeof location !== "undefined" && /(^|[#&])(rel|not)=/.test(location.hash);

  function now() {
    return performance.now();
  }

  function el(tag, attributes, children) {
    var element = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      if (attributes[name] !== null && attributes[name] !== undefined) element.setAttribute(name, attributes[name]);
    });
    (children || []).forEach(function (child) {
      element.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return element;
  }

  function ms(value) {
    return value >= 1000 ? (value / 1000).toFixed(2) + " s" : value < 10 ? value.toFixed(1) + " ms" :
      Math.round(value) + " ms";
  }

  function formatNumber(d) {
    if (d === null || d === undefined || !isFinite(d)) return "—";
    var m = Math.abs(d);
    if (m >= 1000) return Math.round(d).toLocaleString("en-US");
    if (m >= 1) return d.toFixed(3 - Math.floor(Math.log10(m)));
    return d.toPrecision(4);
  }

  // ------------------------------------------------------------------------------------ context and data
  function readContext(panel) {
    var node = panel.querySelector(".feedback-context");
    if (node) {
      try {
        return JSON.parse(node.getAttribute("data-feedback"));
      } catch (error) {
        return null;
      }
    }
    // An upload searched in this browser (private_upload.js): its info and the features it computed.
    var last = window.sispPrivateLast;
    if (panel.id === "upload-results" && panel.querySelector("[data-ranked-by]") && last && last.info) {
      var info = last.info;
      return {
        view: "upload", dataset: info.dataset, model: info.model, layer: info.layer, metric: info.metric,
        query: null, k: info.k, n_images: info.n_images, dim: info.dim, labeled: info.labeled,
        available: true, reason: null, local: Boolean(info.local),
        thumb_route: info.thumb_route, ids: { view_image: info.ids.view_image, pick: info.ids.pick },
        urls: { features: info.urls.features, labels: info.urls.labels, tf: info.urls.tf, wasm: info.urls.wasm,
          rows: "/feedback/" + [info.dataset, info.model, info.layer].map(encodeURIComponent).join("/") + "/rows",
          rank: "/feedback/rank" },
        rocchio: window.sispFeedback.ROCCHIO, head: window.sispFeedback.HEAD,
        vector: Float32Array.from(last.features), at: last.at,
      };
    }
    return null;
  }

  function contextKey(ctx) {
    return [ctx.view, ctx.dataset, ctx.model, ctx.layer, ctx.metric, ctx.query, ctx.k,
      ctx.query_vector ? ctx.query_vector.slice(0, 64) : "", ctx.at || ""].join("|");
  }

  function fetchOk(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) throw new Error(url.split("?")[0] + " answered " + response.status);
      return response;
    });
  }

  // The layer's features, the labels and every thumbnail (object URLs), once per layer: no request depends on
  // the marks.
  function loadData(ctx) {
    var key = ctx.urls.features;
    if (!cache.data[key]) {
      var thumbs = new Array(ctx.n_images);
      var next = 0;
      var worker = function () {
        if (next >= ctx.n_images) return Promise.resolve();
        var id = next++;
        return fetchOk(ctx.thumb_route + "/" + encodeURIComponent(ctx.dataset) + "/" + id + ".jpg")
          .then(function (r) { return r.blob(); })
          .then(function (blob) { thumbs[id] = URL.createObjectURL(blob); }, function () { thumbs[id] = ""; })
          .then(worker);
      };
      var workers = [];
      for (var i = 0; i < 6; i++) workers.push(worker());
      cache.data[key] = Promise.all([
        fetchOk(ctx.urls.features).then(function (r) { return r.arrayBuffer(); }),
        fetchOk(ctx.urls.labels).then(function (r) { return r.json(); }),
        Promise.all(workers),
      ]).then(function (loaded) {
        var features = new Float32Array(loaded[0]);
        if (features.length !== ctx.n_images * ctx.dim) {
          throw new Error("the layer's features hold " + features.length + " values, not " + ctx.n_images + " x " +
            ctx.dim);
        }
        return { features: features, labels: loaded[1].labels, thumbs: thumbs };
      });
      cache.data[key].catch(function () { delete cache.data[key]; });
    }
    return cache.data[key];
  }

  function loadScript(url) {
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = url;
      script.onload = resolve;
      script.onerror = function () { reject(new Error("TensorFlow.js did not load from " + url.split("?")[0])); };
      document.head.appendChild(script);
    });
  }

  // TF.js with the backend private mode would pick (wasm where WebGL is software); loaded on the first head.
  function loadTF(ctx) {
    if (!cache.tf) {
      var upload = window.sispPrivateUpload;
      cache.tf = upload && upload.pickBackend
        ? upload.pickBackend(ctx.urls.tf, ctx.urls.wasm).then(function (picked) {
          return { tf: window.tf, backend: picked && picked.name ? picked.name : window.tf.getBackend() };
        })
        : (window.tf ? Promise.resolve() : loadScript(ctx.urls.tf)).then(function () {
          return window.tf.ready().then(function () { return { tf: window.tf, backend: window.tf.getBackend() }; });
        });
      cache.tf.catch(function () { cache.tf = null; });
    }
    return cache.tf;
  }

  function loadFeatures(url, n, dim) {
    var key = "features " + url;
    if (!cache.data[key]) {
      cache.data[key] = fetchOk(url).then(function (r) { return r.arrayBuffer(); }).then(function (buffer) {
        var features = new Float32Array(buffer);
        if (features.length !== n * dim) throw new Error("the base layer's features are not " + n + " x " + dim);
        return features;
      });
      cache.data[key].catch(function () { delete cache.data[key]; });
    }
    return cache.data[key];
  }

  // The server head's Dense layer, read from its TF.js export (the whole model is loaded once, as private mode
  // loads it, and only the Dense layer's weights are kept).
  function loadServerHead(ctx, tf) {
    var h = ctx.hybrid;
    var key = "head " + h.model_url;
    if (!cache.data[key]) {
      cache.data[key] = tf.loadLayersModel(h.model_url).then(function (model) {
        var weights = model.getLayer(h.dense).getWeights();
        return Promise.all([weights[0].data(), weights[1].data()]).then(function (values) {
          model.dispose();
          return { kernel: Float32Array.from(values[0]), bias: Float32Array.from(values[1]) };
        });
      });
      cache.data[key].catch(function () { delete cache.data[key]; });
    }
    return cache.data[key];
  }

  function queryVector(session, data) {
    var ctx = session.ctx;
    if (ctx.query !== null && ctx.query !== undefined) {
      return data.features.slice(ctx.query * ctx.dim, (ctx.query + 1) * ctx.dim);
    }
    if (ctx.vector) return ctx.vector;
    var raw = atob(ctx.query_vector);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }

  // ------------------------------------------------------------------------------------ marks
  function markedIds(session, kind) {
    var out = [];
    session.marks.forEach(function (mark, id) { if (mark === kind) out.push(id); });
    return out;
  }

  function snapshot(session) {
    return { marks: Array.from(session.marks.entries()), ranking: session.ranking, values: session.values,
      valueKind: session.valueKind, round: session.round, sentence: session.sentence, method: session.lastMethod };
  }

  function remember(session) {
    session.history.push(snapshot(session));
    if (session.history.length > 200) session.history.shift();
  }

  function setMark(session, id, mark) {
    var before = session.marks.get(id) || null;
    if (before === mark) return;
    remember(session);
    if (mark) session.marks.set(id, mark); else session.marks.delete(id);
    var card = session.cards.get(id);
    if (card) paintMark(card, mark);
    afterChange(session, mark ? "Image " + id + " marked " + MARK_NAME[mark] + "." : "Mark of image " + id +
      " cleared.");
    if (!session.loading) startLoading(session);
  }

  function paintMark(card, mark) {
    card.classList.toggle("fb-relevant", mark === "relevant");
    card.classList.toggle("fb-not", mark === "not");
    card.setAttribute("data-mark", mark || "");
    card.querySelectorAll(".fb-mark").forEach(function (button) {
      var kind = button.getAttribute("data-kind");
      if (kind === "clear") {
        button.disabled = !mark;
      } else {
        button.setAttribute("aria-pressed", String(kind === mark));
      }
    });
  }

  function decorate(session, card) {
    if (card.querySelector(".fb-marks")) return;
    var id = Number(card.getAttribute("data-image-id"));
    var name = "image " + id;
    var buttons = [["relevant", "✓", "Relevant"], ["not", "✗", "Not relevant"], ["clear", "○", "Clear the mark"]]
      .map(function (spec) {
        var attributes = { type: "button", "class": "fb-mark fb-" + spec[0], "data-kind": spec[0],
          title: spec[2] + " (key " + { relevant: "R", not: "N", clear: "C" }[spec[0]] + ")",
          "aria-label": spec[2] + ": " + name };
        if (spec[0] !== "clear") attributes["aria-pressed"] = "false";
        var button = el("button", attributes, [spec[1]]);
        button.addEventListener("click", function (event) {
          event.preventDefault();
          event.stopPropagation();
          var current = session.marks.get(id) || null;
          var kind = spec[0] === "clear" ? null : spec[0];
          setMark(session, id, current === kind ? null : kind);
        });
        return button;
      });
    card.appendChild(el("div", { "class": "fb-marks", role: "group", "aria-label": "Mark " + name }, buttons));
    card.addEventListener("keydown", function (event) {
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      var key = event.key.toLowerCase();
      var kind = key === "r" ? "relevant" : key === "n" ? "not" : key === "c" ? null : undefined;
      if (kind === undefined) return;
      event.preventDefault();
      setMark(session, id, kind);
    });
    paintMark(card, session.marks.get(id) || null);
  }

  // ------------------------------------------------------------------------------------ cards
  function dashId(object) {
    var keys = Object.keys(object).sort();
    return "{" + keys.map(function (k) { return JSON.stringify(k) + ":" + JSON.stringify(object[k]); }).join(",") + "}";
  }

  function buildCard(session, data, id) {
    var ctx = session.ctx;
    var label = data.labels ? data.labels[id] : null;
    var name = "image " + id + (label ? " (" + label + ")" : "");
    var same = session.queryLabel === null ? null : label === session.queryLabel;
    var where = ctx.view === "upload" ? "upload" : "results";
    var children = [
      el("div", { "class": "rank" }, ["#"]),
      el("button", { id: dashId({ type: ctx.ids.view_image, where: where, index: id }), "class": "zoom-button",
        "data-click-store": "image-viewer-click", title: "Show " + name + " full size",
        "aria-label": "Show " + name + " full size" }, ["⤢"]),
      el("button", { id: dashId({ type: ctx.ids.pick, index: id }), "class": "result-pick",
        "data-click-store": "query-click", title: "Search with this image" },
      [el("img", { src: data.thumbs ? data.thumbs[id] || "" : ctx.thumb_route + "/" + encodeURIComponent(ctx.dataset) +
        "/" + id + ".jpg", alt: name, title: name, "class": "thumb " })]),
      el("div", { "class": "bar", role: "img" }, [el("div", { "class": "bar-fill" })]),
      el("div", { "class": "distance" }, [el("span", { "class": "metric-name" }, [ctx.metric]), " "]),
      el("div", { "class": "label" }, [label || ""]),
    ];
    if (same !== null) {
      children.push(el("div", { "class": "mark " + (same ? "same" : "other") }, [same ? "✓ same class" :
        "✗ other class"]));
    }
    var card = el("div", { "class": "result-card " + (same === null ? "" : same ? "same" : "other"),
      "data-image-id": String(id), "data-same": same === null ? "" : String(same), "data-duplicate": "" }, children);
    decorate(session, card);
    return card;
  }

  // The cards in ranking order: an image's card is the same element in every round (its mark and focus go with
  // it); rank, number and bar follow the round.
  function showRanking(session, ids, values, valueKind) {
    var grid = session.grid;
    var focused = document.activeElement;
    var fragment = document.createDocumentFragment();
    var finite = (values || []).filter(function (v) { return isFinite(v); });
    var lo = finite.length ? Math.min.apply(null, finite) : 0, hi = finite.length ? Math.max.apply(null, finite) : 0;
    ids.forEach(function (id, i) {
      var card = session.cards.get(id);
      if (!card) {
        card = buildCard(session, session.data, id);
        session.cards.set(id, card);
      }
      var rank = card.querySelector(".rank");
      if (rank) rank.textContent = "#" + (i + 1);
      if (values && valueKind !== "original") {
        var v = values[i];
        var fraction = hi > lo ? (valueKind === "score" ? (v - lo) / (hi - lo) : (hi - v) / (hi - lo)) : 1;
        var what = valueKind === "score" ? "head score" : ctx(session).metric + " to the refined query";
        var fill = card.querySelector(".bar-fill");
        if (fill) fill.style.width = (100 * fraction).toFixed(1) + "%";
        var distance = card.querySelector(".distance");
        if (distance) {
          distance.replaceChildren(el("span", { "class": "metric-name" }, [valueKind === "score" ? "score" :
            ctx(session).metric]), " " + formatNumber(v));
          distance.title = what + " " + formatNumber(v);
        }
        var bar = card.querySelector(".bar");
        if (bar) {
          bar.title = what + " " + formatNumber(v);
          bar.setAttribute("aria-label", Math.round(100 * fraction) + "% of the way from the last result shown " +
            "to the first");
        }
      } else if (valueKind === "original") {
        restoreOriginal(session, card);
      }
      fragment.appendChild(card);
    });
    grid.replaceChildren(fragment);
    if (focused && focused !== document.activeElement && grid.contains(focused)) focused.focus({ preventScroll: true });
    session.ranking = ids;
    session.values = values;
    session.valueKind = valueKind;
    updateSummary(session);
  }

  // The server's line above the results ("N of 15 results share the query's class ...") describes its own
  // ranking; after a refine it says what the refined results shown hold, and the server's figure beside it.
  var SUMMARY = /^(\d+) of (\d+) results share the query's class/;

  function findSummary(panel) {
    var found = null;
    panel.querySelectorAll("p.hint").forEach(function (p) {
      if (!found && SUMMARY.test(p.textContent)) found = p;
    });
    return found ? { node: found, text: found.textContent } : null;
  }

  function updateSummary(session) {
    var s = session.summary;
    if (!s || !s.node.isConnected) return;
    var same = session.valueKind === "original" ? null : countSame(session, session.ranking);
    if (same === null) {
      s.node.textContent = s.text;
      s.node.setAttribute("data-ranking", "server");
      return;
    }
    var k = session.ranking.length;
    var was = SUMMARY.exec(s.text);
    s.node.textContent = "Refined (round " + session.round + ", " + (METHOD_NAME[session.lastMethod] ||
      session.lastMethod) + "): " + same + " of " + k + " results shown share the query's class (precision@" + k +
      " " + (same / Math.max(k, 1)).toFixed(2) + "); the server's ranking before your marks: " + was[1] + " of " +
      was[2] + ". Reset shows it again.";
    s.node.setAttribute("data-ranking", "refined");
  }

  var METHOD_NAME = { rocchio: "Rocchio", head: "the small head", hybrid: "the server head + fine-tune" };

  function ctx(session) {
    return session.ctx;
  }

  function restoreOriginal(session, card) {
    var saved = session.originalParts.get(card);
    if (!saved) return;
    saved.forEach(function (part) {
      var node = card.querySelector(part.selector);
      if (!node) return;
      if (part.selector === ".bar-fill") node.style.width = part.width;
      else node.replaceChildren.apply(node, part.children.map(function (c) { return c.cloneNode(true); }));
      if (part.title !== null) node.title = part.title;
    });
  }

  function saveOriginal(session, card) {
    var parts = [".bar-fill", ".distance", ".bar"].map(function (selector) {
      var node = card.querySelector(selector);
      if (!node) return null;
      return { selector: selector, width: node.style.width, title: node.getAttribute("title"),
        children: Array.prototype.map.call(node.childNodes, function (c) { return c.cloneNode(true); }) };
    }).filter(Boolean);
    session.originalParts.set(card, parts);
  }

  // ------------------------------------------------------------------------------------ refine
  function countSame(session, ids) {
    if (session.queryLabel === null || !session.data || !session.data.labels) return null;
    var labels = session.data.labels;
    return ids.filter(function (id) { return labels[id] === session.queryLabel; }).length;
  }

  // The vector path (a dataset too big for the browser): the features of the results shown (ids the server has
  // just ranked), fetched per result list; the refined query is computed here and only it is sent.
  function fetchRows(session, ids) {
    var missing = ids.filter(function (id) { return !session.rows.has(id); });
    if (!missing.length) return Promise.resolve();
    var c = session.ctx;
    return fetchOk(c.urls.rows + "?ids=" + missing.join(",")).then(function (r) { return r.json(); }).then(function (got) {
      var raw = atob(got.rows), bytes = new Uint8Array(raw.length);
      for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
      var values = new Float32Array(bytes.buffer);
      got.ids.forEach(function (id, j) {
        session.rows.set(id, values.slice(j * got.dim, (j + 1) * got.dim));
        if (got.labels) session.data.labels[id] = got.labels[j];
      });
    });
  }

  function startLoading(session) {
    if (!session.ctx.available) return null;
    if (session.ctx.local === false) {
      session.data = session.data || { labels: {}, thumbs: null, features: null };
      var q = session.ctx.query;
      var ids = session.ranking.concat(q !== null && q !== undefined ? [q] : []);
      session.loading = fetchRows(session, ids).then(function () {
        session.queryLabel = q !== null && q !== undefined && session.ctx.labeled ? session.data.labels[q] : null;
        session.bar.setAttribute("data-ready", "true");
        return session.data;
      });
      session.loading.catch(function (error) {
        session.loading = null;
        say(session, "Refining needs the results' features, which did not load (" + error.message + ").", true);
      });
      return session.loading;
    }
    session.loading = loadData(session.ctx).then(function (data) {
      session.data = data;
      var q = session.ctx.query;
      session.queryLabel = q !== null && q !== undefined && data.labels ? data.labels[q] : null;
      session.bar.setAttribute("data-ready", "true");
      return data;
    });
    session.loading.catch(function (error) {
      session.loading = null;
      say(session, "Refining needs the layer's features, which did not load (" + error.message + ").", true);
    });
    return session.loading;
  }

  function refine(session) {
    var relevant = markedIds(session, "relevant");
    var notRelevant = markedIds(session, "not");
    if (!relevant.length && !notRelevant.length) {
      say(session, "Mark at least one result first.");
      return Promise.resolve();
    }
    var method = session.method.value;
    session.busy = true;
    updateButtons(session);
    return (session.loading || startLoading(session)).then(function (data) {
      var c = session.ctx;
      var query = c.local === false ? null : queryVector(session, data);
      var exclude = c.query !== null && c.query !== undefined ? c.query : -1;
      var before = session.ranking;
      var t0 = now();
      var rocchio = function (note) {
        var t0r = now();
        var vector = window.sispFeedback.rocchio(query, data.features, c.dim, relevant, notRelevant, c.metric,
          c.rocchio);
        var ranked = window.sispFeedback.rankRefined(vector, data.features, c.dim, c.metric, c.k, exclude);
        return { ids: Array.from(ranked.ids), values: Array.from(ranked.distances), kind: "distance",
          how: "Rocchio (α " + c.rocchio.alpha + ", β " + c.rocchio.beta + ", γ " + c.rocchio.gamma + ")" +
            (note || ""), ms: now() - t0r, loadMs: 0, method: "rocchio" };
      };
      var run;
      if (c.local === false) {
        run = refineByVector(session, relevant, notRelevant, exclude);
      } else if (method === "hybrid" && c.hybrid) {
        var h = c.hybrid;
        run = Promise.all([loadTF(c), loadFeatures(h.features, c.n_images, h.dim)]).then(function (loaded) {
          return loadServerHead(c, loaded[0].tf).then(function (head) {
            var t1 = now();
            var base = loaded[1];
            var q = exclude >= 0 ? base.slice(exclude * h.dim, (exclude + 1) * h.dim) : query;
            return window.sispFeedback.trainHybrid(loaded[0].tf, base, h.dim, q, relevant, notRelevant, head,
              h.settings).then(function (out) {
              var ranked = window.sispFeedback.rankByScores(out.scores, c.k, exclude);
              return { ids: Array.from(ranked.ids), values: Array.from(ranked.scores), kind: "score",
                how: "the server's head (" + h.model + ", from its TensorFlow.js export) fine-tuned here on the " +
                  "marks (" + out.epochs + " steps, backend " + loaded[0].backend + ")", ms: now() - t1,
                loadMs: t1 - t0, method: "hybrid",
                fit: { server: head, fitted: out.fitted, scores: out.scores, model: h.model } };
            });
          });
        }, function (error) {
          console.error("TensorFlow.js failed; Rocchio instead", error);
          return rocchio(" instead of the server head: TensorFlow.js did not load (" + (error && error.message ?
            error.message : error) + ")");
        });
      } else if (method === "head") {
        run = loadTF(c).then(function (loaded) {
          var t1 = now();
          var init = session.serverHead || null;
          return window.sispFeedback.trainHead(loaded.tf, data.features, c.dim, query, relevant, notRelevant,
            c.metric, Object.assign({}, c.head, init ? { init: init } : {})).then(function (out) {
            var ranked = window.sispFeedback.rankByScores(out.scores, c.k, exclude);
            return { ids: Array.from(ranked.ids), values: Array.from(ranked.scores), kind: "score",
              how: "a small head fitted with TensorFlow.js (" + out.epochs + " steps of fit, backend " +
                loaded.backend + ")", ms: now() - t1, loadMs: t1 - t0, method: "head",
              fit: { fitted: { kernel: out.kernel, bias: out.bias }, scores: out.scores } };
          });
        }, function (error) {
          console.error("TensorFlow.js failed; Rocchio instead", error);
          return rocchio(" instead of the head: TensorFlow.js did not load (" + (error && error.message ? error.message :
            error) + ")");
        });
      } else {
        run = Promise.resolve(rocchio());
      }
      return run.then(function (out) {
        remember(session);
        session.round += 1;
        session.lastMethod = out.method;
        session.lastFit = out.fit || null;  // what the head learned, for the tests (window.sispFeedbackUI)
        showRanking(session, out.ids, out.values, out.kind);
        var wasSame = countSame(session, before), nowSame = countSame(session, out.ids);
        var marks = relevant.length + " relevant, " + notRelevant.length + " not";
        var what;
        if (nowSame !== null) {
          what = nowSame + " of " + out.ids.length + " now share the query's class, was " + wasSame;
        } else {
          var shown = {};
          before.forEach(function (id) { shown[id] = true; });
          what = out.ids.filter(function (id) { return !shown[id]; }).length + " of " + out.ids.length +
            " results are new";
        }
        var offList = relevant.concat(notRelevant).filter(function (id) { return out.ids.indexOf(id) < 0; }).length;
        session.sentence = marks + ": " + what + ". Round " + session.round + ", " + out.how +
          (out.sent ? ", in " + ms(out.ms) + "." : ", in this browser in " + ms(out.ms) +
            (out.loadMs > 50 ? " (+ " + ms(out.loadMs) + " to load TensorFlow.js)" : "") + "; nothing was sent.") +
          (offList ? " " + offList + " marked image" + (offList === 1 ? " is" : "s are") +
            " not among these results and still count." : "");
        session.bar.setAttribute("data-method", out.method);
        session.bar.setAttribute("data-refine-ms", out.ms.toFixed(2));
        session.bar.setAttribute("data-round", String(session.round));
        say(session, session.sentence);
      });
    }).catch(function (error) {
      console.error("refine failed", error);
      say(session, "Refine failed: " + (error && error.message ? error.message : error) + ".", true);
    }).then(function () {
      session.busy = false;
      updateButtons(session);
    });
  }

  function refineByVector(session, relevant, notRelevant, exclude) {
    var c = session.ctx;
    var t0 = now();
    var marked = relevant.concat(notRelevant);
    var offList = marked.filter(function (id) { return !session.rows.has(id); });
    if (offList.length) {
      return Promise.reject(new Error("marked image" + (offList.length > 1 ? "s " : " ") + offList.join(", ") +
        " never appeared in the results here, so this page has not its features (this dataset is too big to " +
        "hold in the browser); clear " + (offList.length > 1 ? "those marks" : "that mark")));
    }
    var query;
    if (exclude >= 0) {
      query = session.rows.get(exclude);
    } else {
      query = queryVector(session, null);
    }
    var compact = new Float32Array(marked.length * c.dim);
    marked.forEach(function (id, i) { compact.set(session.rows.get(id), i * c.dim); });
    var rel = relevant.map(function (_, i) { return i; });
    var not = notRelevant.map(function (_, i) { return relevant.length + i; });
    var vector = window.sispFeedback.rocchio(query, compact, c.dim, rel, not, c.metric, c.rocchio);
    var bytes = new Uint8Array(vector.buffer), text = "";
    for (var i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    var t1 = now();
    return fetch(c.urls.rank, { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ dataset: c.dataset, model: c.model, layer: c.layer, metric: c.metric, k: c.k,
        exclude: exclude >= 0 ? exclude : null, vector: btoa(text) }) }).then(function (response) {
      if (!response.ok) throw new Error("the server answered " + response.status);
      return response.json();
    }).then(function (got) {
      if (got.labels) got.ids.forEach(function (id, j) { session.data.labels[id] = got.labels[j]; });
      var out = { ids: got.ids, values: got.distances, kind: "distance",
        how: "Rocchio (α " + c.rocchio.alpha + ", β " + c.rocchio.beta + ", γ " + c.rocchio.gamma + ") computed " +
          "here; this dataset is too big for the browser, so only the refined query vector (" + c.dim +
          " numbers) went to the server, which ranked it", ms: now() - t0, loadMs: 0, method: "rocchio",
        sent: true, serverMs: now() - t1 };
      return fetchRows(session, got.ids).then(function () { return out; });  // the next round's marks
    });
  }

  function undo(session) {
    var state = session.history.pop();
    if (!state) return;
    session.marks = new Map(state.marks);
    session.round = state.round;
    session.lastMethod = state.method;
    session.sentence = state.sentence;
    session.cards.forEach(function (card, id) { paintMark(card, session.marks.get(id) || null); });
    if (state.ranking !== session.ranking) showRanking(session, state.ranking, state.values, state.valueKind);
    else updateSummary(session);
    afterChange(session, "Undone. " + (state.sentence || ""));
  }

  function reset(session) {
    remember(session);
    session.marks = new Map();
    session.round = 0;
    session.sentence = "";
    session.cards.forEach(function (card) { paintMark(card, null); });
    showRanking(session, session.original, null, "original");
    afterChange(session, "Reset: no marks, the original ranking.");
  }

  // ------------------------------------------------------------------------------------ the bar
  function say(session, text, warning) {
    session.status.textContent = text;
    session.status.className = "feedback-status " + (warning ? "message message-warning" : "hint");
  }

  function updateButtons(session) {
    var marked = session.marks.size > 0;
    session.refineButton.disabled = session.busy || !marked || !session.ctx.available;
    session.undoButton.disabled = session.busy || !session.history.length;
    session.resetButton.disabled = session.busy || (!marked && session.round === 0);
    if (session.download) {
      var rows = pairRows(session.ctx);
      session.download.hidden = !rows.length;
      session.download.textContent = "Download marks (" + rows.length + " pair" + (rows.length === 1 ? "" : "s") +
        ", CSV)";
    }
    session.counts.textContent = markedIds(session, "relevant").length + " relevant, " +
      markedIds(session, "not").length + " not relevant";
  }

  function afterChange(session, text) {
    var c = session.ctx;
    if (c.view === "search" && c.query !== null && c.query !== undefined) {
      var key = c.dataset + " " + c.fingerprint;
      taught[key] = taught[key] || {};
      taught[key][c.query] = new Map(session.marks);
      saveTaught();
    }
    updateButtons(session);
    writeHash(session);
    if (text) say(session, text);
  }

  function writeHash(session) {
    if (session.ctx.view !== "search") return;  // an upload has no address of its own
    var fragment = window.sispFeedback.formatMarks({ relevant: markedIds(session, "relevant"),
      notRelevant: markedIds(session, "not") });
    var url = location.pathname + location.search + (fragment ? "#" + fragment : "");
    if (url !== location.pathname + location.search + location.hash) history.replaceState(history.state, "", url);
    var share = document.getElementById("share-link");
    if (share) share.setAttribute("href", location.pathname + location.search + (fragment ? "#" + fragment : ""));
  }

  // The marks of every query of this dataset marked in this tab, as the rows precompute --pairs reads
  // (precompute/feedback.py read_pairs): made and saved here, from an object URL (no request).
  function pairRows(c) {
    var rows = [];
    var queries = taught[c.dataset + " " + c.fingerprint] || {};
    Object.keys(queries).forEach(function (query) {
      queries[query].forEach(function (mark, id) { rows.push(query + "," + id + "," + (mark === "relevant" ? 1 : 0)); });
    });
    return rows;
  }

  function pairsCsv(session) {
    var c = session.ctx;
    return "# sisp feedback pairs: dataset=" + c.dataset + ", fingerprint=" + c.fingerprint + "\n" +
      "query id,result id,relevant\n" + pairRows(c).join("\n") + "\n";
  }

  function downloadPairs(session) {
    var c = session.ctx;
    var text = pairsCsv(session);
    var url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    var link = el("a", { href: url, download: "marks-" + c.dataset + ".csv" });
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  }

  function helpText(c) {
    var r = c.rocchio;
    return [
      el("p", {}, ["Mark results ✓ relevant or ✗ not relevant (buttons, or R, N and C on a focused card), then " +
        "Refine. Several rounds add up; Undo steps back one mark or refine; Reset clears every mark."]),
      el("p", {}, ["Rocchio moves the query: q′ = (α q + β mean(relevant) − γ mean(not relevant)) / (α + β − γ) " +
        "with α = " + r.alpha + ", β = " + r.beta + ", γ = " + r.gamma + ", a term only where there are marks. " +
        "Under cosine each vector is first scaled to length 1; under euclidean, manhattan, chebyshev and " +
        "minkowski the vectors are averaged as they are, so q′ stays in the features' own coordinates where the " +
        "metric measures, and the results are ranked by that metric."]),
      el("p", {}, ["The small head is a logistic layer w·x/|x| + b fitted in this browser with TensorFlow.js (" +
        c.head.epochs + " steps of Adam, learning rate " + c.head.learningRate + ") on the marks and the query " +
        "(relevant), started from the Rocchio direction; it ranks by its score, whatever the metric. It is the " +
        "default: in python -m bench feedback it beats Rocchio after one round (docs/benchmarks.md), and the " +
        "sentence after each Refine says which ran."]),
      c.hybrid ? el("p", {}, ["The server head + fine-tune (the default here): " + c.hybrid.model + " is a linear " +
        "head the server trained on the dataset's labels (precompute --train-head); the page loads it from its " +
        "TensorFlow.js export and fits it further on your marks, in this browser (a logistic score on its unit " +
        "outputs started from the Rocchio direction, the head's weights at a 50x smaller learning rate and held " +
        "near the server's)."]) : el("span", {}, []),
      el("p", {}, ["Everything runs in this browser: the layer's features and the thumbnails are fetched once, " +
        "the same for any marks, and the marks live only in this page and in the address after # (which " +
        "browsers do not send), so a link shares the refined view. Download marks saves the marks of every query " +
        "marked in this tab as a CSV of pairs; precompute --train-head MODEL/LAYER --pairs FILE adds them to " +
        "the next head's training on the server (docs/feedback.md)."]),
    ];
  }

  function buildBar(session) {
    var c = session.ctx;
    session.refineButton = el("button", { type: "button", "class": "feedback-refine" }, ["Refine"]);
    session.undoButton = el("button", { type: "button", "class": "feedback-undo" }, ["Undo"]);
    session.resetButton = el("button", { type: "button", "class": "feedback-reset" }, ["Reset"]);
    session.method = el("select", { "class": "feedback-method", "aria-label": "How to learn from the marks" }, [
      el("option", { value: "rocchio" }, ["Rocchio (move the query)"]),
      el("option", { value: "head" }, ["small head (TF.js fit)"]),
    ]);
    if (c.local === false) {
      session.method.removeChild(session.method.lastChild);  // the head needs every image's features here
    }
    if (c.hybrid) {
      session.method.appendChild(el("option", { value: "hybrid" }, ["server head + fine-tune (" + c.hybrid.model +
        ")"]));
    }
    session.method.value = c.local === false ? "rocchio" : c.hybrid ? "hybrid" : c.default_method || "rocchio";
    session.counts = el("span", { "class": "feedback-counts muted", "aria-live": "polite" }, []);
    if (c.view === "search") {
      session.download = el("button", { type: "button", "class": "feedback-download", hidden: "",
        title: "The marks of every query marked in this tab, as pairs (query id, result id, relevant) that " +
          "precompute --train-head ... --pairs FILE adds to the next head's training" }, ["Download marks"]);
      session.download.addEventListener("click", function () { downloadPairs(session); });
    }
    session.status = el("p", { "class": "feedback-status hint", "aria-live": "polite" }, []);
    session.refineButton.addEventListener("click", function () { refine(session); });
    session.undoButton.addEventListener("click", function () { undo(session); });
    session.resetButton.addEventListener("click", function () { reset(session); });
    var bar = el("div", { "class": "feedback-bar", role: "group", "aria-label": "Relevance feedback",
      "data-view": c.view }, [
      el("div", { "class": "feedback-controls" }, [session.refineButton, session.undoButton, session.resetButton,
        el("label", {}, ["Learn with ", session.method]), session.counts].concat(session.download ?
        [session.download] : [])),
      session.status,
      el("details", { "class": "feedback-help" }, [el("summary", {}, ["How refining works"])].concat(helpText(c))),
    ]);
    session.bar = bar;
    if (!c.available) {
      say(session, "Marks cannot be refined here: " + c.reason + ".");
    } else {
      say(session, "Mark results ✓ relevant or ✗ not, then Refine: it runs in this browser and sends nothing.");
    }
    return bar;
  }

  // ------------------------------------------------------------------------------------ attaching to a panel
  function attach(panel) {
    var grid = panel.querySelector(".results-grid");
    if (!grid || grid.getAttribute("data-feedback") === "on" || !window.sispFeedback) return;
    var c = readContext(panel);
    if (!c) return;
    grid.setAttribute("data-feedback", "on");
    var key = contextKey(c);
    var old = sessions[panel.id];
    var session = {
      ctx: c, key: key, grid: grid, marks: new Map(), history: [], round: 0, cards: new Map(),
      original: [], originalParts: new Map(), ranking: null, values: null, valueKind: "original", sentence: "",
      data: null, loading: null, queryLabel: null, busy: false, rows: new Map(),
    };
    grid.querySelectorAll(".result-card[data-image-id]").forEach(function (card) {
      var id = Number(card.getAttribute("data-image-id"));
      session.original.push(id);
      session.cards.set(id, card);
      saveOriginal(session, card);
    });
    session.ranking = session.original;
    session.summary = findSummary(panel);
    if (session.summary) session.summary.node.setAttribute("data-ranking", "server");
    grid.parentNode.insertBefore(buildBar(session), grid);
    sessions[panel.id] = session;
    session.cards.forEach(function (card) { decorate(session, card); });
    var carried = old && old.key === key ? old : null;
    if (carried && carried.marks.size) {
      // The same results drawn again (e.g. Dash re-rendered the panel): keep the marks, refine again.
      session.marks = new Map(carried.marks);
      session.method.value = carried.method.value;
      session.cards.forEach(function (card, id) { paintMark(card, session.marks.get(id) || null); });
      if (carried.round > 0) refine(session).then(function () { session.round = carried.round; updateSummary(session); });
    } else if (hashPending && c.view === "search") {
      hashPending = false;
      applyHash(session);
    } else if (c.view === "search" && /(^|[#&])(rel|not)=/.test(location.hash)) {
      history.replaceState(history.state, "", location.pathname + location.search);  // marks of another query
    }
    updateButtons(session);
  }

  function notice(text) {
    var box = document.getElementById("notice");
    if (!box) return;
    box.appendChild(el("div", { "class": "message message-warning feedback-notice" }, [text]));
  }

  function applyHash(session) {
    var parsed = window.sispFeedback.parseMarks(location.hash, session.ctx.n_images || 0);
    parsed.problems.forEach(function (text) { notice("Link marks: " + text); });
    parsed.relevant.forEach(function (id) { session.marks.set(id, "relevant"); });
    parsed.notRelevant.forEach(function (id) { session.marks.set(id, "not"); });
    session.cards.forEach(function (card, id) { paintMark(card, session.marks.get(id) || null); });
    writeHash(session);
    if (session.marks.size && session.ctx.available) {
      startLoading(session);
      refine(session);
    }
  }

  function scan() {
    PANELS.forEach(function (id) {
      var panel = document.getElementById(id);
      if (panel) attach(panel);
    });
  }

  if (typeof document !== "undefined") {
    var scheduled = false;
    new MutationObserver(function () {
      if (scheduled) return;
      scheduled = true;
      Promise.resolve().then(function () { scheduled = false; scan(); });
    }).observe(document.documentElement, { childList: true, subtree: true });
  }

  // For the tests and the benchmark: the session of a panel ("search-results", "upload-results").
  window.sispFeedbackUI = {
    session: function (panelId) { return sessions[panelId] || null; },
    refine: function (panelId) { return refine(sessions[panelId]); },
    pairsCsv: function (panelId) { return pairsCsv(sessions[panelId]); },
    loadTF: loadTF,
  };
})();
