/* Private mode's result cards (issue #16): the results of a search the browser ran itself, drawn as the server
   draws them. Loading this file only defines window.sispCards, used by assets/private_upload.js:
     resultsGrid(info, ids, distances, labels, thumbs) -> the grid of result cards     components.results_grid
     weakNote(reference, distances)  -> the weak-match line, or null                  components.match_strength_note
     scaleNote(metric)               -> what a card's number, scale and bar mean       components.scale_note
     majority(ids, labels)           -> [label, count] or null                        ranking.majority_label
     formatDistance, closeness, labelText, closerPercent, fixed, repr, h: the pieces (format_distance, closeness,
       label_text, closer_text, Python's float formatting, a Dash component as JSON)
   info holds the page's private info (views/upload.py's private_panel): metric, ids (view_image, pick) and
   reference (ranking.DistanceReference.for_browser). tests/test_card_parity.py renders the same results through
   both sides and compares the trees. */
(function () {
  "use strict";

  // A Dash component as the JSON Dash renders (what a clientside callback returns for a children property).
  function h(type, props, children) {
    var out = Object.assign({}, props || {});
    if (children !== undefined) {
      out.children = children;
    }
    return { namespace: "dash_html_components", type: type, props: out };
  }

  // Python's float formatting, digit for digit: the exact binary value, rounded half to even (toFixed and
  // toPrecision take an exact tie away from zero: 0.125 gives "0.13" where Python writes "0.12").
  function digitsOf(x) { // |x| (finite, not 0) as {digits: its first 100 significant digits, exponent}
    var text = Math.abs(x).toExponential(99); // exact to 100 digits: enough to see any tie at the digits we keep
    var at = text.indexOf("e");
    return { digits: text.charAt(0) + text.slice(2, at), exponent: Number(text.slice(at + 1)) };
  }

  // The first `keep` of these digits, the rest rounded half to even into them ("1000" from "9996" and 3).
  function roundDigits(digits, keep) {
    if (keep < 0) {
      return "";
    }
    digits = digits.length < keep ? digits + "0".repeat(keep - digits.length) : digits;
    var kept = digits.slice(0, keep);
    var rest = digits.slice(keep);
    var first = rest.charAt(0);
    var tie = first === "5" && /^0*$/.test(rest.slice(1));
    var odd = kept.length > 0 && Number(kept.charAt(kept.length - 1)) % 2 === 1;
    if (!(first > "5" || (first === "5" && !tie) || (tie && odd))) {
      return kept;
    }
    var out = kept.split("");
    var i = out.length - 1;
    while (i >= 0 && out[i] === "9") {
      out[i] = "0";
      i--;
    }
    if (i < 0) {
      out.unshift("1");
    } else {
      out[i] = String(Number(out[i]) + 1);
    }
    return out.join("");
  }

  function signOf(x) {
    return x < 0 || Object.is(x, -0) ? "-" : "";
  }

  // Python's f"{x:.{places}f}".
  function fixed(x, places) {
    var units = "";
    if (x !== 0) {
      var d = digitsOf(x);
      units = roundDigits(d.digits, d.exponent + 1 + places); // round(|x| 10^places), as digits
    }
    units = units.length < places + 1 ? "0".repeat(places + 1 - units.length) + units : units;
    var whole = units.slice(0, units.length - places);
    return signOf(x) + whole + (places > 0 ? "." + units.slice(units.length - places) : "");
  }

  // Python's f"{x:#.4g}": four significant digits, fixed from 1e-4 up, else 1.235e-05.
  function significant4(x) {
    if (x === 0) {
      return fixed(x, 3);
    }
    var d = digitsOf(x);
    var kept = roundDigits(d.digits, 4);
    var exponent = d.exponent + (kept.length > 4 ? 1 : 0);
    if (exponent >= -4 && exponent < 4) {
      return fixed(x, 3 - exponent);
    }
    return signOf(x) + kept.charAt(0) + "." + kept.slice(1, 4) + "e" + (exponent < 0 ? "-" : "+") +
      String(Math.abs(exponent)).padStart(2, "0");
  }

  // Python's repr of a float (a card's data-distance): the shortest digits that read back, as JavaScript finds them.
  function pyRepr(x) {
    if (x !== x) {
      return "nan";
    }
    if (!isFinite(x)) {
      return x > 0 ? "inf" : "-inf";
    }
    if (x === 0) {
      return signOf(x) + "0.0";
    }
    var text = Math.abs(x).toExponential();
    var at = text.indexOf("e");
    var digits = text.charAt(0) + text.slice(2, at);
    var exponent = Number(text.slice(at + 1));
    var body;
    if (exponent < -4 || exponent >= 16) {
      body = digits.charAt(0) + (digits.length > 1 ? "." + digits.slice(1) : "") + "e" + (exponent < 0 ? "-" : "+") +
        String(Math.abs(exponent)).padStart(2, "0");
    } else if (exponent < 0) {
      body = "0." + "0".repeat(-exponent - 1) + digits;
    } else {
      var whole = digits.length <= exponent + 1 ? digits + "0".repeat(exponent + 1 - digits.length) : null;
      body = whole !== null ? whole + ".0" : digits.slice(0, exponent + 1) + "." + digits.slice(exponent + 1);
    }
    return signOf(x) + body;
  }

  function formatDistance(d) {
    if (d === null || d === undefined || !isFinite(d)) {
      return "—";
    }
    var m = Math.abs(d);
    if (m >= 1000) {
      return fixed(d, 0).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    }
    if (m >= 1) {
      return fixed(d, 3 - Math.floor(Math.log10(m)));
    }
    return significant4(d);
  }

  function closeness(distances) {
    var finite = distances.filter(function (d) { return isFinite(d); });
    if (!finite.length) {
      return distances.map(function () { return 0; });
    }
    var near = Math.min.apply(null, finite);
    var far = Math.max.apply(null, finite);
    return distances.map(function (d) {
      if (!isFinite(d)) {
        return 0;
      }
      return far - near <= 0 ? 1 : Math.min(1, Math.max(0, (far - d) / (far - near)));
    });
  }

  function labelText(label) {
    if (!label) {
      return [];
    }
    var parts = String(label).split("_");
    var out = [];
    parts.forEach(function (part, i) {
      if (i < parts.length - 1) {
        out.push(part + "_", h("Wbr", {}));
      } else {
        out.push(part);
      }
    });
    return out;
  }

  function percent(fraction, digits) {
    return fixed(100 * fraction, digits) + "%";
  }

  // The whole percent of the collection's pairs farther apart than `distance` (ranking.DistanceReference.closer_than,
  // floored as components.closer_text floors it), or null. The page gets 101 bounds instead of the pairs
  // (private.py): the percent is at least p exactly where distance < closer[p] (null: any distance).
  function closerPercent(reference, distance) {
    var bounds = reference && reference.closer;
    if (!bounds || !bounds.length || !isFinite(distance)) {
      return null;
    }
    var p = 0;
    while (p + 1 < bounds.length && (bounds[p + 1] === null || distance < bounds[p + 1])) {
      p++;
    }
    return p;
  }

  function closerText(p) {
    return "closer than " + p + " % of pairs";
  }

  function barTitle(distance, similarity, metric, fraction, near, far) {
    var text = (metric ? metric + " distance" : "distance") + " " + formatDistance(distance);
    if (metric === "cosine") {
      text += " (cosine similarity " + fixed(similarity, 4) + ")";
    }
    if (far > near) {
      text += ". Bar: " + percent(fraction, 0) + " of the way from the farthest result shown (" +
        formatDistance(far) + ") to the closest (" + formatDistance(near) + ").";
    }
    return text;
  }

  function resultCard(info, rank, id, distance, similarity, label, thumbUrl, fraction, near, far) {
    var name = "image " + id + (label ? " (" + label + ")" : "");
    var title = barTitle(distance, similarity, info.metric, fraction, near, far);
    var closer = closerPercent(info.reference, distance);
    var absolute = closer === null ? null : closerText(closer);
    if (absolute) {
      title = absolute + " in this collection (same model, layer and metric). " + title;
    }
    var props = {
      className: "result-card ",
      "data-image-id": String(id),
      "data-same": "",
      "data-duplicate": "",
      "data-distance": pyRepr(distance),
      "data-bar": fixed(fraction, 4),
    };
    var children = [
      h("Div", { className: "rank" }, "#" + rank),
      h("Button", {
        id: { type: info.ids.view_image, where: "upload", index: id },
        className: "zoom-button", title: "Show " + name + " full size", n_clicks: 0,
        "aria-label": "Show " + name + " full size",
      }, "⤢"),
      h("Button", {
        id: { type: info.ids.pick, index: id }, className: "result-pick", title: "Search with this image",
        n_clicks: 0,
      }, h("Img", { src: thumbUrl, alt: name, title: name, className: "thumb " })),
      h("Div", {
        className: "bar", title: title, role: "img",
        "aria-label": percent(fraction, 0) + " of the way from the farthest result shown to the closest",
      }, [h("Div", { className: "bar-fill", style: { width: percent(fraction, 1) } })]),
      h("Div", { className: "distance", title: title },
        [h("Span", { className: "metric-name" }, info.metric || "distance"), " ", formatDistance(distance)]),
    ];
    if (absolute) {
      children.push(h("Div", { className: "closer-than", title: title }, absolute));
    }
    children.push(h("Div", { className: "label" }, labelText(label)));
    return h("Div", props, children);
  }

  function resultsGrid(info, ids, distances, labels, thumbs) {
    var fractions = closeness(distances);
    var finite = distances.filter(function (d) { return isFinite(d); });
    var near = finite.length ? Math.min.apply(null, finite) : 0;
    var far = finite.length ? Math.max.apply(null, finite) : 0;
    var cards = ids.map(function (id, i) {
      var label = labels ? labels[id] : null;
      var similarity = window.sispPrivate.similarity(info.metric, distances[i]);
      return resultCard(info, i + 1, id, distances[i], similarity, label, thumbs[id], fractions[i], near, far);
    });
    return h("Div", { className: "results-grid" }, cards);
  }

  // A warning when even the best result is far (components.match_strength_note), or null.
  function weakNote(reference, distances) {
    if (!distances.length || !reference || reference.weak_above === null || reference.weak_above === undefined ||
        !(distances[0] > reference.weak_above)) {
      return null;
    }
    return h("P", { className: "hint weak-match" },
      "Weak match: even the best result (" + formatDistance(distances[0]) + ") is farther than " +
      fixed(100 * reference.weak_quantile, 0) + " % of this collection's images are from their nearest neighbour " +
      "(it is only " + closerText(closerPercent(reference, distances[0])) + "). Nothing here may look like the query.");
  }

  function scaleNote(metric) {
    return h("P", { className: "hint" },
      "Each card shows the " + (metric || "") + " distance to the query (smaller is closer), how many of the " +
      "collection's own image pairs are farther apart (an absolute scale), and a bar placing it between the " +
      "farthest result shown (empty) and the closest (full): a full bar on #1 says nothing of how good it is.");
  }

  function majority(ids, labels) {
    if (!labels || !ids.length) {
      return null;
    }
    var counts = {};
    var first = {};
    ids.forEach(function (id, i) {
      var label = labels[id];
      counts[label] = (counts[label] || 0) + 1;
      if (!(label in first)) {
        first[label] = i;
      }
    });
    var best = null;
    Object.keys(counts).forEach(function (label) {
      if (best === null || counts[label] > counts[best] || (counts[label] === counts[best] && first[label] < first[best])) {
        best = label;
      }
    });
    return [best, counts[best]];
  }

  window.sispCards = Object.freeze({
    resultsGrid: resultsGrid,
    weakNote: weakNote,
    scaleNote: scaleNote,
    majority: majority,
    formatDistance: formatDistance,
    closeness: closeness,
    labelText: labelText,
    closerPercent: closerPercent,
    fixed: fixed,
    repr: pyRepr,
    h: h,
  });
})();
