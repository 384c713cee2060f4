/* Private mode of the Upload view (issue #16; the server side is playground/private.py).

   dcc.Upload's contents go to one clientside callback, onUpload (views/upload.py), and nowhere else. Where the
   selected model has a TensorFlow.js export and private mode is on, the image is embedded here: TensorFlow.js is
   loaded lazily (a script tag injected on the first private upload, from the app's own /private/tf.min.js), the
   export's model is downloaded once, window.sispPrivate (assets/private_search.js) decodes, resizes and
   preprocesses the image exactly as the server does, and the model gives the layer's feature vector. Then either
   - the browser searches the dataset itself (small datasets: the layer's features and every thumbnail are fetched
     once, whatever the image, so no request depends on it), and renders the results like the server's grid
     (assets/private_cards.js); or
   - only the feature vector goes to the server (ids.PRIVATE_QUERY), which ranks and renders.
   Otherwise (private mode off, no export, TensorFlow.js missing or failing) the contents go to the server callback
   through ids.UPLOAD_SERVER, with the reason, and the page says it. The image itself never goes into a request in
   private mode: the data URL is decoded here (no fetch of it), and the image is kept in this page only. */
(function () {
  "use strict";

  var state = {
    image: null, // {blob, name, size, url}: the latest private upload, kept in this page for a new selection
    tfPromise: null,
    model: null, // {url, model, loadMs, warmupMs}: one loaded model at a time
    json: {}, // url -> Promise of parsed JSON
    features: {}, // url -> Promise of Float32Array
    thumbs: {}, // dataset -> Promise of [object URL per image id]
    run: 0,
  };

  function now() {
    return performance.now();
  }

  function noUpdate() {
    return window.dash_clientside.no_update;
  }

  function h(type, props, children) {
    return cards().h(type, props, children);
  }

  function message(text, kind) {
    return h("Div", { className: "message message-" + kind, role: kind === "error" ? "alert" : undefined }, text);
  }

  function megabytes(bytes) {
    return (bytes / 1e6).toFixed(1) + " MB";
  }

  function ms(value) {
    return value >= 1000 ? (value / 1000).toFixed(2) + " s" : Math.round(value) + " ms";
  }

  // ------------------------------------------------------------------------------------ loading
  // A data URL's bytes without fetching it (a fetch of a data: URL would show the image in the network log).
  function dataUrlToBlob(contents) {
    var comma = contents.indexOf(",");
    var header = contents.slice(0, comma);
    var binary = atob(contents.slice(comma + 1));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    var type = (header.match(/^data:([^;,]*)/) || [])[1] || "application/octet-stream";
    return new Blob([bytes], { type: type });
  }

  function loadScript(url, what) {
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = url;
      script.async = true;
      script.onload = resolve;
      script.onerror = function () {
        reject(new Error("the server did not send " + what + " (" + url + ")"));
      };
      document.head.appendChild(script);
    });
  }

  // TensorFlow.js itself; the backend is picked afterwards (pickBackend), so nothing is initialised here.
  function loadTF(url) {
    if (window.tf) {
      return Promise.resolve(window.tf);
    }
    if (!state.tfPromise) {
      state.tfPromise = loadScript(url, "TensorFlow.js").then(function () {
        if (!window.tf) {
          throw new Error("tf.min.js loaded but defined no tf");
        }
        return window.tf;
      });
      state.tfPromise.catch(function () {
        state.tfPromise = null; // a later upload tries again
      });
    }
    return state.tfPromise;
  }

  // The WebGL renderer's name, or null without WebGL. Software renderers (SwiftShader, llvmpipe) run shaders on
  // the CPU: TF.js' WebGL backend then costs more than its wasm backend, and compiles its shaders for seconds.
  function webglRenderer() {
    try {
      var canvas = document.createElement("canvas");
      var gl = canvas.getContext("webgl2") || canvas.getContext("webgl");
      if (!gl) {
        return null;
      }
      var debug = gl.getExtension("WEBGL_debug_renderer_info");
      var name = String(gl.getParameter(debug ? debug.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
      var lose = gl.getExtension("WEBGL_lose_context");
      if (lose) {
        lose.loseContext();
      }
      return name;
    } catch (error) {
      return null;
    }
  }

  var SOFTWARE_RENDERER = /swiftshader|llvmpipe|softpipe|software|basic render/i;

  // The order to try TF.js' backends in, and why. Measured in headless Chromium without a GPU (docs/benchmarks.md,
  // section 13): efficientnet-lite0 takes tens of ms per image on wasm (XNNPACK, SIMD) against about a second on
  // software WebGL (plus seconds of shader compilation on the first image) and 1.3-3.8 s on cpu. A real GPU keeps
  // WebGL first (TF.js' own default); wasm comes next, cpu (plain JavaScript) last.
  function backendOrder(wasm) {
    var renderer = webglRenderer();
    var order;
    var why;
    if (renderer === null) {
      order = ["wasm", "cpu"];
      why = "no WebGL in this browser";
    } else if (SOFTWARE_RENDERER.test(renderer)) {
      order = ["wasm", "webgl", "cpu"];
      why = "WebGL is software-rendered here (" + renderer.match(SOFTWARE_RENDERER)[0] + ")";
    } else {
      order = ["webgl", "wasm", "cpu"];
      why = "WebGL runs on a GPU here (" + (renderer.length > 60 ? renderer.slice(0, 57) + "..." : renderer) + ")";
    }
    if (!wasm) {
      order = order.filter(function (name) { return name !== "wasm"; });
      why += "; the server has no wasm backend";
    }
    return { order: order, why: why };
  }

  // Make TF.js use ``name``; resolves to true when it does. The wasm backend's script is loaded on first use, and
  // its binaries come from the app (setWasmPaths), never from a CDN.
  function useBackend(tf, name, wasm) {
    var ready = Promise.resolve();
    if (name === "wasm") {
      if (!wasm) {
        return Promise.resolve(false);
      }
      if (!state.wasmPromise) {
        state.wasmPromise = loadScript(wasm.script, "TensorFlow.js' wasm backend").then(function () {
          if (!tf.wasm) {
            throw new Error("tf-backend-wasm.min.js loaded but defined no tf.wasm");
          }
          tf.wasm.setWasmPaths(wasm.files);
        });
        state.wasmPromise.catch(function () { state.wasmPromise = null; });
      }
      ready = state.wasmPromise;
    }
    return ready.then(function () {
      return tf.setBackend(name);
    }).then(function (ok) {
      return ok && tf.getBackend() === name;
    }).catch(function (error) {
      console.warn("TF.js backend " + name + " failed", error);
      return false;
    });
  }

  // Which of the wasm binaries runs: SIMD where the browser has it; threads only on a cross-origin-isolated page
  // (COOP/COEP), which this app does not ask for, so one thread.
  function wasmFlavour(tf) {
    return Promise.all([tf.env().getAsync("WASM_HAS_SIMD_SUPPORT"),
      tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT")]).then(function (flags) {
      return "; wasm " + (flags[0] ? "with" : "without") + " SIMD, " + (flags[1] ? "threaded" : "one thread");
    }, function () { return ""; });
  }

  // The first backend of backendOrder that works, once per page: {name, why}.
  function pickBackend(tf, wasm) {
    if (!state.backendPromise) {
      var plan = backendOrder(wasm);
      var tried = [];
      state.backendPromise = plan.order.reduce(function (chain, name) {
        return chain.then(function (found) {
          if (found) {
            return found;
          }
          return useBackend(tf, name, wasm).then(function (ok) {
            tried.push(name);
            return ok ? { name: name, why: plan.why + (tried.length > 1 ? "; " + tried.slice(0, -1).join(", ") +
              " failed" : "") } : null;
          });
        });
      }, Promise.resolve(null)).then(function (found) {
        if (!found) {
          throw new Error("no TensorFlow.js backend works here (tried " + tried.join(", ") + ")");
        }
        return tf.ready().then(function () {
          return found.name === "wasm" ? wasmFlavour(tf) : "";
        }).then(function (flavour) {
          return { name: found.name, why: found.why + flavour };
        });
      });
      state.backendPromise.catch(function () { state.backendPromise = null; });
    }
    return state.backendPromise;
  }

  function fetchOk(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) {
        throw new Error(url.split("?")[0] + " answered " + response.status);
      }
      return response;
    });
  }

  function fetchJSON(url) {
    if (!state.json[url]) {
      state.json[url] = fetchOk(url).then(function (r) { return r.json(); });
      state.json[url].catch(function () { delete state.json[url]; });
    }
    return state.json[url];
  }

  function fetchFeatures(url, n, dim) {
    if (!state.features[url]) {
      state.features[url] = fetchOk(url).then(function (r) { return r.arrayBuffer(); }).then(function (buffer) {
        var features = new Float32Array(buffer);
        if (features.length !== n * dim) {
          throw new Error("features.f32 holds " + features.length + " numbers, expected " + n + " x " + dim);
        }
        return features;
      });
      state.features[url].catch(function () { delete state.features[url]; });
    }
    return state.features[url];
  }

  // Every thumbnail of the dataset, fetched once (6 at a time) as object URLs: which ones the results need
  // depends on the image, so the browser asks for all of them, never for those.
  function fetchThumbs(dataset, n, thumbRoute) {
    if (!state.thumbs[dataset]) {
      var urls = new Array(n);
      var next = 0;
      var worker = function () {
        if (next >= n) {
          return Promise.resolve();
        }
        var id = next++;
        return fetchOk(thumbRoute + "/" + encodeURIComponent(dataset) + "/" + id + ".jpg")
          .then(function (r) { return r.blob(); })
          .then(function (blob) { urls[id] = URL.createObjectURL(blob); })
          .then(worker);
      };
      var workers = [];
      for (var i = 0; i < Math.min(6, n); i++) {
        workers.push(worker());
      }
      state.thumbs[dataset] = Promise.all(workers).then(function () { return urls; });
      state.thumbs[dataset].catch(function () { delete state.thumbs[dataset]; });
    }
    return state.thumbs[dataset];
  }

  // The export's model of one variant, loaded once (the previous one is disposed), then run once on zeros so that
  // the first image's time is the model's, not the backend's set-up.
  function loadModel(tf, url, spec) {
    if (state.model && state.model.url === url) {
      return Promise.resolve(state.model);
    }
    if (state.model) {
      state.model.model.dispose();
      state.model = null;
    }
    var start = now();
    return tf.loadLayersModel(url).then(function (model) {
      var loaded = now();
      var size = spec.input_size;
      var outputs = tf.tidy(function () {
        var y = model.predict(tf.zeros([1, size, size, 3]));
        return Array.isArray(y) ? y : [y];
      });
      return Promise.all(outputs.map(function (t) { return t.data(); })).then(function () {
        outputs.forEach(function (t) { t.dispose(); });
        state.model = { url: url, model: model, loadMs: loaded - start, warmupMs: now() - loaded };
        return state.model;
      });
    });
  }

  // ------------------------------------------------------------------------------------ embedding
  // The image's features at info's layer: {features: Float32Array, timings, backend}. Throws with a message
  // meant for the page.
  function embed(info, blob) {
    var P = window.sispPrivate;
    if (!P) {
      return Promise.reject(new Error("the page's private_search.js did not load"));
    }
    var timings = {};
    var start = now();
    var backendWhy = null;
    return loadTF(info.urls.tf).then(function (tf) {
      return pickBackend(tf, info.urls.wasm).then(function (picked) {
        backendWhy = picked.why;
        return tf;
      });
    }).then(function (tf) {
      timings.tfMs = now() - start;
      return fetchJSON(info.urls["export"]).then(function (spec) {
        var modelStart = now();
        var reused = state.model && state.model.url === info.urls.model[info.variant];
        return loadModel(tf, info.urls.model[info.variant], spec).then(function (loaded) {
          timings.modelMs = now() - modelStart;
          timings.loadMs = loaded.loadMs;
          timings.warmupMs = loaded.warmupMs;
          timings.cached = reused;
          var t0 = now();
          var decoded = P.loadImageForModel(blob, spec.input_size).catch(function (error) {
            var reason = String(error && error.message ? error.message : error).replace(/^upload: /, "");
            var failure = new Error(reason);
            failure.decode = true; // the file, not TensorFlow.js: the server is not asked (see onUpload)
            throw failure;
          });
          return decoded.then(function (pixels) {
            var t1 = now();
            var x = P.preprocess(pixels, spec);
            var size = spec.input_size;
            var out = tf.tidy(function () {
              var y = loaded.model.predict(tf.tensor4d(x, [1, size, size, 3]));
              return Array.isArray(y) ? y[info.layer_index] : y;
            });
            return out.data().then(function (values) {
              out.dispose();
              var t2 = now();
              timings.decodeMs = t1 - t0;
              timings.inferMs = t2 - t1;
              if (values.length !== info.dim) {
                throw new Error("the model gave " + values.length + " numbers, the layer stores " + info.dim);
              }
              return { features: new Float32Array(values), timings: timings, backend: tf.getBackend(),
                backendWhy: backendWhy };
            });
          });
        });
      });
    });
  }

  // ------------------------------------------------------------------------------------ rendering
  // The result cards are assets/private_cards.js' (window.sispCards, drawn as playground/components.py draws them).
  function cards() {
    return window.sispCards;
  }

  function statusPanel(info, image, result, how, extra) {
    var t = result.timings;
    var size = info.variants[info.variant];
    var load = t.cached
      ? "model already loaded (" + ms(t.loadMs) + " to download and build, " + ms(t.warmupMs) + " warm-up)"
      : "model loaded in " + ms(t.modelMs) + " (download and build " + ms(t.loadMs) + ", warm-up " +
        ms(t.warmupMs) + ")";
    var report = {
      className: "hint private-report",
      "data-mode": how,
      "data-variant": info.variant,
      "data-backend": result.backend,
      "data-backend-why": result.backendWhy || "",
      "data-bytes": String(size),
      "data-load-ms": t.loadMs.toFixed(1),
      "data-warmup-ms": t.warmupMs.toFixed(1),
      "data-image-ms": (t.decodeMs + t.inferMs).toFixed(1),
    };
    var said = how === "local"
      ? "Searched in this browser: nothing about your image was sent to the server."
      : "Only its feature vector (" + info.dim + " numbers) was sent; the server ranked the dataset.";
    var parts = [
      h("Div", { className: "query-card upload-preview" }, [
        h("Img", { src: image.url, alt: image.name, className: "thumb large" }),
        h("Div", { className: "query-caption" }, [
          h("Strong", {}, image.name),
          h("Div", { className: "muted" },
            Math.round(image.size / 1024) + " KB, searched with " + info.model + " / " + info.layer + " / " +
            info.metric),
        ]),
      ]),
      h("P", report, [
        h("Strong", {}, "Private mode: "),
        "the features were computed in this browser with TensorFlow.js (" + info.variant + " weights, " +
          megabytes(size) + ", backend " + result.backend + (result.backendWhy ? ": " + result.backendWhy : "") +
          "). " + said,
      ]),
      h("P", { className: "hint private-timings" },
        "Time in this browser: " + load + "; this image " + ms(t.decodeMs + t.inferMs) + " (decode and resize " +
        ms(t.decodeMs) + ", model " + ms(t.inferMs) + ")" + (extra || "") + "."),
    ];
    return parts;
  }

  function setBusy(info, on) {
    var setProps = window.dash_clientside && window.dash_clientside.set_props;
    if (setProps && info.ids && info.ids.busy) {
      setProps(info.ids.busy, { className: on ? "upload-busy active" : "upload-busy" });
    }
  }

  // ------------------------------------------------------------------------------------ the callback
  function serverReason(info, modeOn) {
    if (!modeOn) {
      return "private mode is off";
    }
    if (!info || !info.available) {
      return "private mode is unavailable here (" + ((info && info.reason) || "no export") + ")";
    }
    if (!window.sispPrivate) {
      return "private mode is unavailable here (the page's private_search.js did not load)";
    }
    return null;
  }

  // The private path for the kept image: [upload-server, private-query, status, results, upload-key, contents].
  function runPrivate(info, image) {
    var run = ++state.run;
    var stale = function () { return run !== state.run; };
    setBusy(info, true);
    var local = info.local;
    var thumbs = local ? fetchThumbs(info.dataset, info.n_images, info.thumb_route) : null;
    var data = local ? fetchFeatures(info.urls.features, info.n_images, info.dim) : null;
    var labels = local ? fetchJSON(info.urls.labels) : null;
    return embed(info, image.blob).then(function (result) {
      window.sispPrivateLast = { features: Array.from(result.features), timings: result.timings,
        backend: result.backend, variant: info.variant, mode: local ? "local" : "vector", info: info,
        at: Date.now() };  // info and at: relevance feedback on these results (feedback_ui.js)
      if (!local) {
        var query = { features: Array.from(result.features), dataset: info.dataset, model: info.model,
          layer: info.layer, metric: info.metric, k: info.k, at: Date.now() };
        return [noUpdate(), query, statusPanel(info, image, result, "vector"), null, { "private": true }, null];
      }
      return Promise.all([data, labels, thumbs]).then(function (loaded) {
        var t0 = now();
        var k = Math.min(info.k, info.n_images);
        var found = window.sispPrivate.search(result.features, loaded[0], info.dim, info.metric, k);
        var ids = Array.from(found.ids);
        var distances = Array.from(found.distances);
        var searchMs = now() - t0;
        window.sispPrivateLast.ids = ids;
        window.sispPrivateLast.distances = distances;
        var labelList = loaded[1].labels;
        var status = statusPanel(info, image, result, "local", "; search " + ms(searchMs));
        var vote = cards().majority(ids, labelList);
        if (vote && info.labeled) {
          status.push(h("P", { className: "hint" }, "Most common label among the top " + ids.length + ": " +
            vote[0] + " (" + vote[1] + " of " + ids.length + ")."));
        }
        status.push(h("P", { className: "hint" }, "Click a result to search the dataset with it, or ⤢ to see it full size."));
        var weak = cards().weakNote(info.reference, distances);
        if (weak) {
          status.push(weak);
        }
        var results = h("Div", { className: "private-results", "data-ranked-by": "browser" },
          [cards().resultsGrid(info, ids, distances, labelList, loaded[2]), cards().scaleNote(info.metric)]);
        return [noUpdate(), noUpdate(), status, results, { "private": true }, null];
      });
    }).then(function (outputs) {
      setBusy(info, false);
      return stale() ? [noUpdate(), noUpdate(), noUpdate(), noUpdate(), noUpdate(), noUpdate()] : outputs;
    }, function (error) {
      setBusy(info, false);
      if (stale()) {
        return [noUpdate(), noUpdate(), noUpdate(), noUpdate(), noUpdate(), noUpdate()];
      }
      throw error;
    });
  }

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.privateUpload = {
    // The private-mode toggle: on until pressed, and after every second press (views/upload.py).
    modePressed: function (clicks) {
      return (clicks || 0) % 2 === 0 ? "true" : "false";
    },
    // Inputs: dcc.Upload's contents, the selection's private info (with mode_on); state: the file name.
    // Outputs: [upload-server, private-query, status, results, upload-key, dcc.Upload's contents].
    onUpload: function (contents, info, filename) {
      var triggered = (window.dash_clientside.callback_context.triggered || []).map(function (t) {
        return t.prop_id;
      });
      var none = [noUpdate(), noUpdate(), noUpdate(), noUpdate(), noUpdate(), noUpdate()];
      var modeOn = Boolean(info && info.mode_on);
      var reason = serverReason(info, modeOn);
      var isUpload = triggered.some(function (p) { return p.endsWith(".contents"); });
      if (isUpload) {
        if (!contents) {
          return none;
        }
        if (state.image) {
          URL.revokeObjectURL(state.image.url);
          state.image = null;
        }
        if (reason) { // server mode: the contents go on to the server callback, with the reason
          return [{ contents: contents, filename: filename, reason: reason, at: Date.now() },
            noUpdate(), noUpdate(), noUpdate(), noUpdate(), null];
        }
        var blob = dataUrlToBlob(contents);
        state.image = { blob: blob, name: filename || "your image", size: blob.size, url: URL.createObjectURL(blob) };
        return runPrivate(info, state.image).catch(function (error) {
          if (error && error.decode) { // not an image this browser decodes: say so, send nothing
            state.image = null;
            // The error's own text may end in a parenthesis: say it after a colon, not inside another pair. Only
            // an image type this browser cannot decode (a TIFF) is worth sending to the server; a text file is not.
            var imageType = /^image\//.test(blob.type || "");
            var text = [h("Strong", {}, (filename || "your image") + ": "),
              "this browser cannot decode it as an image: " + String(error.message).replace(/\.$/, "") +
              ". It was not sent" + (imageType ? "; switch private mode off to let the server try to read it."
                : ". Choose a PNG, JPEG, GIF, BMP or WebP image.")];
            return [noUpdate(), noUpdate(), message(text, "error"), null, { "private": true }, null];
          }
          console.error("private mode failed; the server computes the features", error);
          var why = "TensorFlow.js failed in this browser (" + (error && error.message ? error.message : error) + ")";
          state.image = null;
          return [{ contents: contents, filename: filename, reason: why, at: Date.now() },
            noUpdate(), noUpdate(), noUpdate(), noUpdate(), null];
        });
      }
      // A new selection (or a switch of mode or variant) after a private upload: search again here.
      if (!state.image || !info || !info.dataset) {
        return none;
      }
      if (reason) {
        var text = "Your image (" + state.image.name + ") stayed in this browser, and " + reason +
          ": drop it again to have the server compute its features.";
        return [noUpdate(), noUpdate(), message(text, "info"), null, noUpdate(), noUpdate()];
      }
      return runPrivate(info, state.image).catch(function (error) {
        console.error("private mode failed", error);
        var why = "TensorFlow.js failed in this browser (" + (error && error.message ? error.message : error) +
          "); drop the image again to have the server compute its features.";
        return [noUpdate(), noUpdate(), message(why, "error"), null, noUpdate(), noUpdate()];
      });
    },
  };

  // For the tests and bench/private_upload.py: embed an image given as base64 with a selection's private info.
  window.sispPrivateUpload = {
    embedBase64: function (info, base64, type) {
      var blob = dataUrlToBlob("data:" + (type || "image/png") + ";base64," + base64);
      return embed(info, blob).then(function (result) {
        return { features: Array.from(result.features), timings: result.timings, backend: result.backend,
          backendWhy: result.backendWhy };
      });
    },
    // The backend the page would pick on its own: resolves to {name, why}.
    pickBackend: function (tfUrl, wasm) {
      return loadTF(tfUrl).then(function (tf) {
        return pickBackend(tf, wasm);
      });
    },
    // The TF.js backend to use from now on ("wasm", "webgl", "cpu"; wasm needs info.urls.wasm); resolves to the
    // backend in use.
    setBackend: function (name, tfUrl, wasm) {
      return loadTF(tfUrl).then(function (tf) {
        return useBackend(tf, name, wasm).then(function (ok) {
          state.backendPromise = Promise.resolve({ name: tf.getBackend(), why: "chosen by the caller" +
            (ok ? "" : " (" + name + " failed)") });
          return tf.ready();
        }).then(function () {
          if (state.model) {
            state.model.model.dispose();
            state.model = null;
          }
          return tf.getBackend();
        });
      });
    },
    resetModel: function () {
      if (state.model) {
        state.model.model.dispose();
        state.model = null;
      }
    },
  };
})();
