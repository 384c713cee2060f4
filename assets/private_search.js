/* Semantic Image Search Playground: the browser side of a private query (issue #16). Decoding, the resize and
   the search give the numbers that precompute/ gives on the server, so that features computed in the browser
   rank the dataset as the server's would. Loading this file only defines window.sispPrivate (self in a Worker):
     decodeToRGB(blob)            -> Promise<{width, height, data: Uint8Array (RGB)}>   datasets.decode_image
     resizeLikePIL(rgb, size)     -> Float32Array(size*size*3), 0..255                 datasets.load_for_model
     loadImageForModel(blob, size)-> Promise<Float32Array>: the two above (large JPEGs: see jpegDraft)
     preprocess(pixels, spec)     -> Float32Array: the model's input (export.json's channel_order/scale/offset)
     search(query, features, dim, metric, k) -> {ids: Int32Array, distances: Float64Array} similarity.search_exact
     similarity(metric, distance) -> number or Float64Array                            similarity_from_distance
     metrics                      -> the metric families search computes               similarity.METRICS
   tests/test_private_js.py checks each against the Python side and measures where the browser's decoder differs
   from PIL's. */
(function () {
  "use strict";

  // ------------------------------------------------------------------------------------------- decoding
  // The browser decodes (PNG, JPEG, WebP, GIF, BMP, AVIF; no colour management; EXIF orientation applied),
  // and transparency goes on white as datasets._to_rgb does: PIL's paste with the alpha as mask, per channel
  // out = DIV255(255 * (255 - a) + c * a) = 255 - a + round(c * a / 255). The image is drawn on a transparent
  // canvas: the canvas stores premultiplied round(c * a / 255), which is all that formula needs.
  var MAX_PIXELS = 180000000;  // datasets.MAX_PIXELS

  async function decodeToRGB(blob) {
    var gray16 = await decodeGray16PNG(blob);
    if (gray16) return gray16;
    var bitmap;
    try {
      bitmap = await createImageBitmap(blob, {
        imageOrientation: "from-image",
        premultiplyAlpha: "none",
        colorSpaceConversion: "none",
      });
    } catch (error) {
      throw new Error("upload: not an image this browser can decode (" + (error && error.message || error) + ")");
    }
    var width = bitmap.width, height = bitmap.height;
    if (width * height > MAX_PIXELS) {
      if (bitmap.close) bitmap.close();
      throw new Error("upload: " + width + "x" + height + " pixels is above the limit of " +
                      MAX_PIXELS.toLocaleString("en-US") + "; downscale it first.");
    }
    var canvas = typeof OffscreenCanvas !== "undefined"
      ? new OffscreenCanvas(width, height)
      : Object.assign(document.createElement("canvas"), { width: width, height: height });
    var context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0);
    if (bitmap.close) bitmap.close();
    var rgba = context.getImageData(0, 0, width, height).data;
    var data = new Uint8Array(width * height * 3);
    for (var i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
      var a = rgba[i + 3];
      if (a === 255) {
        data[j] = rgba[i]; data[j + 1] = rgba[i + 1]; data[j + 2] = rgba[i + 2];
      } else {
        // getImageData un-premultiplied p to round(p * 255 / a); multiplying back and rounding gives p again.
        for (var c = 0; c < 3; c++) data[j + c] = 255 - a + Math.round(rgba[i + c] * a / 255);
      }
    }
    return { width: width, height: height, data: data };
  }

  // A 16-bit grayscale PNG: PIL's mode I;16, whose value range _to_rgb stretches to 0..255 (the browser's decoder
  // would keep the high byte). Read here (non-interlaced files; others go to the browser's decoder, as does
  // everything when DecompressionStream is missing); an EXIF orientation in such a file is not applied.
  async function decodeGray16PNG(blob) {
    var head = new DataView(await blob.slice(0, 29).arrayBuffer());
    if (head.byteLength < 29 || head.getUint32(0) !== 0x89504e47 || head.getUint32(12) !== 0x49484452 ||
        head.getUint8(24) !== 16 || head.getUint8(25) !== 0 || head.getUint8(28) !== 0 ||
        typeof DecompressionStream === "undefined") return null;
    var width = head.getUint32(16), height = head.getUint32(20);
    var bytes = new Uint8Array(await blob.arrayBuffer()), view = new DataView(bytes.buffer), parts = [];
    for (var at = 8; at + 8 <= bytes.length;) {
      var length = view.getUint32(at), type = String.fromCharCode.apply(null, bytes.subarray(at + 4, at + 8));
      if (type === "IDAT") parts.push(bytes.subarray(at + 8, at + 8 + length));
      if (type === "IEND") break;
      at += 12 + length;
    }
    var stream = new Blob(parts).stream().pipeThrough(new DecompressionStream("deflate"));
    var raw = new Uint8Array(await new Response(stream).arrayBuffer());
    var stride = width * 2, rows = new Uint8Array(stride * height);
    if (raw.length < (stride + 1) * height) throw new Error("truncated 16-bit PNG");
    for (var y = 0; y < height; y++) {
      var filter = raw[y * (stride + 1)], line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
      var out = y * stride, up = out - stride;
      for (var i = 0; i < stride; i++) {
        var left = i >= 2 ? rows[out + i - 2] : 0, above = y ? rows[up + i] : 0;
        var corner = y && i >= 2 ? rows[up + i - 2] : 0;
        var guess = filter === 0 ? 0 : filter === 1 ? left : filter === 2 ? above : filter === 3 ? (left + above) >> 1
          : paeth(left, above, corner);
        rows[out + i] = line[i] + guess;
      }
    }
    var values = new Uint16Array(width * height), low = 65535, high = 0;
    for (i = 0; i < values.length; i++) {
      var v = values[i] = (rows[2 * i] << 8) | rows[2 * i + 1];
      if (v < low) low = v;
      if (v > high) high = v;
    }
    var data = new Uint8Array(width * height * 3), factor = 255.0 / (high - low);
    for (i = 0; i < values.length; i++) {
      var level = high > low ? Math.trunc((values[i] - low) * factor) : 0;
      data[3 * i] = data[3 * i + 1] = data[3 * i + 2] = level;
    }
    return { width: width, height: height, data: data };
  }

  function paeth(a, b, c) {
    var p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
  }

  // ------------------------------------------------------------------------------------------- resizing
  // PIL's Image.resize(size, BILINEAR, reducing_gap=3.0) on an RGB image, integer for integer: first
  // Image.reduce by whole factors (libImaging/Reduce.c) when the image is at least 3x the size, then the
  // separable triangle-filter convolution (libImaging/Resample.c) in 22-bit fixed point, each pass rounded
  // to uint8.
  var PRECISION_BITS = 22;
  var REDUCING_GAP = 3.0;

  function resizeLikePIL(rgb, size) {
    var width = rgb.width, height = rgb.height, data = rgb.data;
    if (!(size >= 1) || size !== Math.floor(size)) throw new Error("size must be a positive integer, got " + size);
    if (!(width >= 1 && height >= 1) || data.length !== width * height * 3) {
      throw new Error("rgb must be {width, height, data} with width*height*3 values, got " +
                      width + "x" + height + " and " + data.length + " values");
    }
    var box = [width, height];  // the right and bottom of the source box (left and top stay 0)
    var factorX = Math.trunc(width / size / REDUCING_GAP) || 1;
    var factorY = Math.trunc(height / size / REDUCING_GAP) || 1;
    if (factorX > 1 || factorY > 1) {
      var reduced = reduce(width, height, data, factorX, factorY);
      box = [width / factorX, height / factorY];
      width = reduced.width; height = reduced.height; data = reduced.data;
    }
    if (width === size && height === size && box[0] === size && box[1] === size) return Float32Array.from(data);
    // C receives the box as float.
    var x1 = Math.fround(box[0]), y1 = Math.fround(box[1]);
    var horizontalNeeded = size !== width || x1 !== size;
    var verticalNeeded = size !== height || y1 !== size;
    var vertical = coefficients(height, y1, size);
    // Pillow >= 13 (python-pillow/Pillow#9549) runs the vertical pass first when the height shrinks by more
    // than twice as many pixels as the width; the order changes the uint8 rounding between the passes.
    if (height - size > 0 && height - size > (width - size) * 2) {
      if (verticalNeeded) data = resampleVertical(data, width, 0, vertical);
      if (horizontalNeeded) data = resampleHorizontal(data, width, 0, size, coefficients(width, x1, size));
    } else {
      var first = vertical.bounds[0];
      var last = vertical.bounds[2 * size - 2] + vertical.bounds[2 * size - 1];
      var offset = 0;
      if (horizontalNeeded) {
        // Only the rows that the vertical pass reads.
        data = resampleHorizontal(data, width, first, last, coefficients(width, x1, size));
        width = size; offset = first;
      }
      if (verticalNeeded) data = resampleVertical(data, width, offset, vertical);
    }
    return Float32Array.from(data);
  }

  function reduce(width, height, data, fx, fy, cutLeft, cutTop) {
    // Each output pixel is the rounded mean of its fx x fy cell, cells cut at the right and bottom edges (or at
    // the left and top ones, for loadImageForModel's drafts): ((sum + n / 2) * multiplier) >> 24 with
    // Reduce.c's float-computed multiplier 2^24 / n.
    var outW = Math.ceil(width / fx), outH = Math.ceil(height / fy);
    var shiftX = cutLeft ? outW * fx - width : 0, shiftY = cutTop ? outH * fy - height : 0;
    var out = new Uint8Array(outW * outH * 3);
    var multipliers = {};
    for (var y = 0; y < outH; y++) {
      var y0 = Math.max(y * fy - shiftY, 0), y1 = Math.min((y + 1) * fy - shiftY, height);
      for (var x = 0; x < outW; x++) {
        var x0 = Math.max(x * fx - shiftX, 0), x1 = Math.min((x + 1) * fx - shiftX, width);
        var n = (x1 - x0) * (y1 - y0);
        var multiplier = multipliers[n] || (multipliers[n] = Math.floor(Math.fround(16777216 / n)));
        var amend = Math.floor(n / 2);
        var s0 = amend, s1 = amend, s2 = amend;
        for (var yy = y0; yy < y1; yy++) {
          for (var i = (yy * width + x0) * 3, end = (yy * width + x1) * 3; i < end; i += 3) {
            s0 += data[i]; s1 += data[i + 1]; s2 += data[i + 2];
          }
        }
        var o = (y * outW + x) * 3;
        out[o] = Math.floor(s0 * multiplier / 16777216);
        out[o + 1] = Math.floor(s1 * multiplier / 16777216);
        out[o + 2] = Math.floor(s2 * multiplier / 16777216);
      }
    }
    return { width: outW, height: outH, data: out };
  }

  function coefficients(inSize, in1, outSize) {
    // precompute_coeffs + normalize_coeffs_8bpc of Resample.c for the bilinear (triangle) filter, box [0, in1].
    var scale = in1 / outSize;
    var filterScale = Math.max(scale, 1.0);
    var support = filterScale;  // the triangle's support is 1
    var ksize = Math.ceil(support) * 2 + 1;
    var weights = new Int32Array(outSize * ksize);
    var bounds = new Int32Array(outSize * 2);
    var k = new Float64Array(ksize);
    for (var xx = 0; xx < outSize; xx++) {
      var center = (xx + 0.5) * scale;
      var inverse = 1.0 / filterScale;
      var xmin = Math.max(Math.trunc(center - support + 0.5), 0);
      var xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
      var total = 0.0;
      for (var x = 0; x < xmax; x++) {
        var t = Math.abs((x + xmin - center + 0.5) * inverse);
        k[x] = t < 1.0 ? 1.0 - t : 0.0;
        total += k[x];
      }
      for (x = 0; x < xmax; x++) {
        var w = total !== 0.0 ? k[x] / total : k[x];
        var fixed = w * (1 << PRECISION_BITS);
        weights[xx * ksize + x] = Math.trunc(w < 0 ? fixed - 0.5 : fixed + 0.5);
      }
      bounds[2 * xx] = xmin;
      bounds[2 * xx + 1] = xmax;
    }
    return { ksize: ksize, weights: weights, bounds: bounds };
  }

  function clip8(sum) {
    var v = sum >> PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : v;
  }

  function resampleHorizontal(data, width, first, last, coeffs) {
    var outW = coeffs.bounds.length / 2, ksize = coeffs.ksize, weights = coeffs.weights, bounds = coeffs.bounds;
    var out = new Uint8Array(outW * (last - first) * 3);
    var half = 1 << (PRECISION_BITS - 1);
    for (var y = first; y < last; y++) {
      var row = y * width * 3, o = (y - first) * outW * 3;
      for (var xx = 0; xx < outW; xx++, o += 3) {
        var xmin = bounds[2 * xx], n = bounds[2 * xx + 1], base = xx * ksize;
        var s0 = half, s1 = half, s2 = half;
        for (var x = 0, i = row + xmin * 3; x < n; x++, i += 3) {
          var w = weights[base + x];
          s0 += data[i] * w; s1 += data[i + 1] * w; s2 += data[i + 2] * w;
        }
        out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2);
      }
    }
    return out;
  }

  function resampleVertical(data, width, offset, coeffs) {
    // Row bounds are in the source image; the horizontal pass's output starts at row `offset` of it.
    var outH = coeffs.bounds.length / 2, ksize = coeffs.ksize, weights = coeffs.weights, bounds = coeffs.bounds;
    var stride = width * 3;
    var out = new Uint8Array(outH * stride);
    var half = 1 << (PRECISION_BITS - 1);
    for (var yy = 0; yy < outH; yy++) {
      var ymin = bounds[2 * yy] - offset, n = bounds[2 * yy + 1], base = yy * ksize, o = yy * stride;
      for (var i = 0; i < stride; i++) {
        var s = half;
        for (var y = 0, at = ymin * stride + i; y < n; y++, at += stride) s += data[at] * weights[base + y];
        out[o + i] = clip8(s);
      }
    }
    return out;
  }

  // load_for_model decodes a JPEG of at least 4x the size both ways at 1/2, 1/4 or 1/8 scale (PIL's draft: the
  // scaled IDCT of libjpeg), which no browser decoder offers. A box mean over the same cells comes closest
  // (tests/test_private_js.py measures the difference); other files get PIL's pixels exactly.
  async function loadImageForModel(blob, size) {
    var rgb = await decodeToRGB(blob);
    var draft = await jpegDraft(blob, rgb, size);
    if (draft.scale > 1) {
      rgb = reduce(rgb.width, rgb.height, rgb.data, draft.scale, draft.scale, draft.cutLeft, draft.cutTop);
    }
    return resizeLikePIL(rgb, size);
  }

  // Where the draft's cells lie in the upright image: cut at the stored image's right and bottom edges, which
  // the EXIF orientation (applied after the draft, ImageOps.exif_transpose) may turn to the left or top.
  var CUT_LEFT = { 2: true, 3: true, 6: true, 7: true }, CUT_TOP = { 3: true, 4: true, 7: true, 8: true };

  async function jpegDraft(blob, rgb, size) {
    var bytes = new Uint8Array(await blob.slice(0, 65536 + 4096).arrayBuffer());
    if (bytes.length < 3 || bytes[0] !== 0xff || bytes[1] !== 0xd8 || bytes[2] !== 0xff) return { scale: 1 };
    // JpegImagePlugin.draft with (2 * size, 2 * size): the largest of 8, 4, 2 that fits both ways.
    var fits = Math.min(Math.floor(rgb.width / (2 * size)), Math.floor(rgb.height / (2 * size)));
    var orientation = exifOrientation(bytes);
    return { scale: fits >= 8 ? 8 : fits >= 4 ? 4 : fits >= 2 ? 2 : 1,
             cutLeft: !!CUT_LEFT[orientation], cutTop: !!CUT_TOP[orientation] };
  }

  function exifOrientation(bytes) {
    // The Orientation tag (0x0112) of IFD0 in the first APP1 Exif segment; 1 when there is none.
    var view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (var at = 2; at + 4 <= bytes.length && bytes[at] === 0xff;) {
      var marker = bytes[at + 1], length = view.getUint16(at + 2);
      if (marker === 0xda || marker === 0xd9) break;
      if (marker === 0xe1 && at + 10 + 8 <= bytes.length && view.getUint32(at + 4) === 0x45786966) {
        var tiff = at + 10, little = bytes[tiff] === 0x49;
        var ifd = tiff + view.getUint32(tiff + 4, little);
        if (ifd + 2 > bytes.length) return 1;
        for (var i = 0, n = view.getUint16(ifd, little); i < n && ifd + 14 + 12 * i <= bytes.length; i++) {
          var entry = ifd + 2 + 12 * i;
          if (view.getUint16(entry, little) === 0x0112) return view.getUint16(entry + 8, little);
        }
        return 1;
      }
      at += 2 + length;
    }
    return 1;
  }

  // ------------------------------------------------------------------------------------------- model input
  // export.json's map: reorder the channels to channel_order, then x * scale[c] + offset[c] for the model's
  // channel c (after the reordering), computed in double and stored as float32 (precompute.tfjs_export).
  function preprocess(pixels, spec) {
    var order = spec.channel_order === "bgr" ? [2, 1, 0] : spec.channel_order === "rgb" ? [0, 1, 2] : null;
    if (!order) throw new Error("channel_order must be 'rgb' or 'bgr', got " + spec.channel_order);
    if (pixels.length % 3) throw new Error("pixels must hold 3 values per pixel, got " + pixels.length);
    var scale = spec.scale, offset = spec.offset;
    var out = new Float32Array(pixels.length);
    for (var i = 0; i < pixels.length; i += 3) {
      for (var c = 0; c < 3; c++) out[i + c] = pixels[i + order[c]] * scale[c] + offset[c];
    }
    return out;
  }

  // ------------------------------------------------------------------------------------------- search
  // precompute.similarity: distances in double with pairwise_distances' formulas, rounded to float32 (what the
  // artifacts store), ranked by (distance, row id).
  var MINKOWSKI = /^minkowski-p(\d+(?:\.\d+)?)$/;

  // The metric families, by precompute.similarity.METRICS' names: each gives the distance from the query to the
  // feature row at ``row`` (qq: the query's squared norm; p: minkowski's). A family registered there and missing
  // here must be marked browser=False there (tests/test_private_js.py checks both lists).
  var FAMILIES = {
    cosine: function (query, features, row, dim, qq) {
      var dot = 0.0, xx = 0.0;
      for (var j = 0; j < dim; j++) {
        var x = features[row + j];
        dot += query[j] * x; xx += x * x;
      }
      var norms = Math.sqrt(qq) * Math.sqrt(xx);
      return Math.min(Math.max(1.0 - (norms > 0 ? dot / norms : 0.0), 0.0), 2.0);
    },
    euclidean: function (query, features, row, dim, qq) {
      var dot = 0.0, xx = 0.0;
      for (var j = 0; j < dim; j++) {
        var x = features[row + j];
        dot += query[j] * x; xx += x * x;
      }
      return Math.sqrt(Math.max(qq + xx - 2.0 * dot, 0.0));
    },
    manhattan: function (query, features, row, dim) {
      var d = 0.0;
      for (var j = 0; j < dim; j++) d += Math.abs(query[j] - features[row + j]);
      return d;
    },
    chebyshev: function (query, features, row, dim) {
      var d = 0.0;
      for (var j = 0; j < dim; j++) d = Math.max(d, Math.abs(query[j] - features[row + j]));
      return d;
    },
    minkowski: function (query, features, row, dim, qq, p) {
      var d = 0.0;
      for (var j = 0; j < dim; j++) d += Math.pow(Math.abs(query[j] - features[row + j]), p);
      return Math.pow(d, 1.0 / p);
    },
  };

  function parseMetric(metric) {
    var match = MINKOWSKI.exec(metric);
    if (match) {
      var p = parseFloat(match[1]);
      if (p < 1 || p === 2) throw new Error(metric + ": minkowski needs p >= 1 and p != 2.");
      return { family: "minkowski", p: p };
    }
    if (metric !== "minkowski" && Object.prototype.hasOwnProperty.call(FAMILIES, metric)) return { family: metric };
    var names = Object.keys(FAMILIES).filter(function (name) { return name !== "minkowski"; });
    throw new Error("Unknown metric " + JSON.stringify(metric) + ". Valid metrics: " + names.join(", ") +
                    ", minkowski-p<P> (e.g. minkowski-p3; p != 2).");
  }

  function distancesTo(query, features, dim, metric) {
    var distance = FAMILIES[metric.family], p = metric.p, n = features.length / dim;
    var out = new Float64Array(n);
    var qq = 0.0;
    for (var j = 0; j < dim; j++) qq += query[j] * query[j];
    for (var i = 0, row = 0; i < n; i++, row += dim) {
      out[i] = Math.fround(distance(query, features, row, dim, qq, p));
    }
    return out;
  }

  function search(query, features, dim, metric, k) {
    var parsed = parseMetric(metric);
    var n = features.length / dim;
    if (!(dim >= 1) || n !== Math.floor(n)) {
      throw new Error("features hold " + features.length + " values, not a whole number of rows of dim " + dim);
    }
    if (query.length !== dim) throw new Error("Query dim " + query.length + " != dataset dim " + dim + ".");
    for (var j = 0; j < dim; j++) {
      if (!isFinite(query[j])) throw new Error("The query holds NaN or inf; the model produced invalid features.");
    }
    k = Math.min(Math.floor(k), n);
    if (!(k >= 1)) throw new Error("k must be >= 1 and the features must hold rows, got k=" + k + ", n=" + n + ".");
    var distances = distancesTo(query, features, dim, parsed);
    for (var i = 0; i < n; i++) {
      if (distances[i] !== distances[i]) {
        throw new Error("Feature row " + i + " holds NaN or inf; the model produced invalid features.");
      }
    }
    var order = new Int32Array(n);
    for (i = 0; i < n; i++) order[i] = i;
    order.sort(function (a, b) { return distances[a] - distances[b] || a - b; });
    var ids = order.slice(0, k);
    var top = new Float64Array(k);
    for (i = 0; i < k; i++) top[i] = distances[ids[i]];
    return { ids: ids, distances: top };
  }

  function similarity(metric, distance) {
    var cosine = parseMetric(metric).family === "cosine";
    var one = function (d) { return cosine ? 1.0 - d : 1.0 / (1.0 + d); };
    return typeof distance === "number" ? one(distance) : Float64Array.from(distance, one);
  }

  (typeof window !== "undefined" ? window : self).sispPrivate = Object.freeze({
    decodeToRGB: decodeToRGB,
    resizeLikePIL: resizeLikePIL,
    loadImageForModel: loadImageForModel,
    preprocess: preprocess,
    search: search,
    similarity: similarity,
    metrics: Object.freeze(Object.keys(FAMILIES)),  // the metric families search computes
  });
})();
