/* Semantic Image Search Playground: what the Dash components cannot do by themselves (Dash serves every .js
   in this folder). Clientside callbacks; labels for Dash 4's dropdowns; the upload size check made before a
   file is read; element heights that fit the window; the image viewer's keyboard handling. */
(function () {
  "use strict";

  function noUpdate() {
    return window.dash_clientside.no_update;
  }

  function fileSize(bytes) {
    return bytes < 1024 * 1024 ? Math.ceil(bytes / 1024) + " KB" : (bytes / (1024 * 1024)).toFixed(1) + " MB";
  }

  // ------------------------------------------------------------------------------------ clientside callbacks
  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.playground = {
    // The first-visit hint: hidden once dismissed (local storage).
    hintStyle: function (seen) {
      return { display: seen ? "none" : "flex" };
    },
    hintSeen: function (clicks) {
      return clicks ? true : noUpdate();
    },
    // A real click among pattern-matched buttons (or a map point): {trigger, value, at}. The zero clicks of
    // buttons that a re-render just created stay in the browser (no server round trip).
    clicked: function () {
      var triggered = window.dash_clientside.callback_context.triggered;
      var trigger = window.dash_clientside.callback_context.triggered_id;
      if (!trigger || !triggered || !triggered.length || !triggered[0].value) {
        return noUpdate();
      }
      return { trigger: trigger, value: triggered[0].value, at: Date.now() };
    },
    // The grid's thumbnail of the query is marked (views/search.py sends no new grid for a new query on the
    // same page; the grid is static HTML, assets/static_html.js). Returns the query, the grid's data-query.
    markQuery: function (selection) {
      var query = selection ? selection.query : null;
      document.querySelectorAll("#image-grid .grid-item").forEach(function (button) {
        var id = null;
        try {
          id = JSON.parse(button.id);
        } catch (error) {
          return;
        }
        button.classList.toggle("selected", id.index === query);
      });
      return query === null || query === undefined ? "" : String(query);
    },
    // A toggle button: on after an odd number of presses.
    togglePressed: function (clicks) {
      return clicks && clicks % 2 === 1 ? "true" : "false";
    },
    // A file within the limit was chosen: clear the previous messages and results, say it is being read.
    uploadPending: function (check) {
      if (!check || check.verdict !== "ok") {
        return [noUpdate(), noUpdate()];
      }
      var text = "Reading " + check.name + " (" + fileSize(check.size) + ")…";
      return [
        { namespace: "dash_html_components", type: "Div",
          props: { className: "message message-info", children: text } },
        null,
      ];
    },
  };

  // ------------------------------------------------------------------------------------ the upload check
  // dcc.Upload refuses a file over its max_size without any event; report every file's size first, so that the
  // page can say why (views/upload.py). The previous upload is cleared either way: a refused file leaves
  // none, and an accepted one always arrives as a change (even with the same contents as the last one), so that
  // its results replace the "Reading..." line.
  function checkFiles(target, files) {
    var guard = target && target.closest ? target.closest(".upload-guard") : null;
    var setProps = window.dash_clientside && window.dash_clientside.set_props;
    if (!guard || !files || !files.length || !setProps) {
      return;
    }
    var file = files[0];
    var limit = Number(guard.dataset.maxBytes);
    var check = { name: file.name, size: file.size, verdict: file.size > limit ? "too_big" : "ok", at: Date.now() };
    setProps(guard.dataset.checkId, { data: check });
    setProps(guard.dataset.uploadId, { contents: null, filename: null });
  }
  document.addEventListener("change", function (event) {
    if (event.target && event.target.type === "file") {
      checkFiles(event.target, event.target.files);
    }
  }, true);
  document.addEventListener("drop", function (event) {
    checkFiles(event.target, event.dataTransfer && event.dataTransfer.files);
  }, true);

  // ------------------------------------------------------------------------------------ dropdown labels
  // Dash 4's dcc.Dropdown takes keyboard focus with a hidden <input> (aria-hidden, yet focusable) that passes it
  // to the dropdown's button, whose name is only its value. Give both the control's visible label.
  function labelDropdowns() {
    document.querySelectorAll(".dash-dropdown-wrapper").forEach(function (wrapper) {
      var button = wrapper.querySelector("button.dash-dropdown");
      if (!button) {
        return;
      }
      var label = button.id ? document.querySelector('label[for="' + CSS.escape(button.id) + '"]') : null;
      if (!label && wrapper.previousElementSibling && wrapper.previousElementSibling.tagName === "LABEL") {
        label = wrapper.previousElementSibling;
      }
      if (!label) {
        return;
      }
      if (!label.id) {
        label.id = (button.id || "dropdown") + "-label";
      }
      var labelledBy = (button.getAttribute("aria-labelledby") || "").split(" ").filter(Boolean);
      if (labelledBy.indexOf(label.id) < 0) {
        button.setAttribute("aria-labelledby", [label.id].concat(labelledBy).join(" "));
      }
      var proxy = wrapper.querySelector("input.dash-dropdown-focus-target");
      if (proxy && proxy.getAttribute("aria-hidden")) {
        proxy.removeAttribute("aria-hidden");
        proxy.setAttribute("aria-label", label.textContent.trim());
      }
    });
  }

  // dcc.Upload's file input has no name of its own.
  function labelUploads() {
    document.querySelectorAll(".upload-guard input[type=file]:not([aria-label])").forEach(function (input) {
      input.setAttribute("aria-label", "Choose an image to search with");
    });
  }

  // ------------------------------------------------------------------------------------ fit to the window
  // Elements with class fit-viewport take the window's height below their top (at least data-min-height px,
  // 360 by default): the embeddings map and the neighbour list never run below the fold. fit-viewport-max sets
  // a maximum height instead (the query grid, which scrolls inside).
  function fitViewport() {
    document.querySelectorAll(".fit-viewport, .fit-viewport-max").forEach(function (element) {
      if (!element.offsetParent) {
        return; // in a hidden view
      }
      var top = element.getBoundingClientRect().top + window.scrollY;
      var height = Math.max(Number(element.dataset.minHeight || 360), window.innerHeight - top - 16) + "px";
      var property = element.classList.contains("fit-viewport") ? "height" : "maxHeight";
      if (element.style[property] !== height) {
        element.style[property] = height;
      }
    });
  }

  // ------------------------------------------------------------------------------------ the image viewer
  // Esc closes it; opening it moves focus to its close button, closing it gives focus back.
  var lastTrigger = null;
  var viewerOpen = false;
  document.addEventListener("click", function (event) {
    var zoom = event.target.closest ? event.target.closest(".zoom-button") : null;
    if (zoom) {
      lastTrigger = zoom;
    }
  }, true);
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !viewerOpen) {
      return;
    }
    var close = document.querySelector(".viewer .viewer-close");
    if (close) {
      close.click();
    }
  });
  function followViewer() {
    var viewer = document.querySelector(".viewer");
    var open = Boolean(viewer && viewer.style.display !== "none");
    if (open && !viewerOpen) {
      var close = viewer.querySelector(".viewer-close");
      if (close) {
        close.focus();
      }
    } else if (!open && viewerOpen && lastTrigger && document.body.contains(lastTrigger)) {
      lastTrigger.focus();
    }
    viewerOpen = open;
  }

  // ------------------------------------------------------------------------------------ keep them up to date
  var scheduled = false;
  function update() {
    scheduled = false;
    labelDropdowns();
    labelUploads();
    fitViewport();
    followViewer();
  }
  function schedule() {
    if (!scheduled) {
      scheduled = true;
      window.requestAnimationFrame(update);
    }
  }
  new MutationObserver(schedule).observe(document.documentElement, {
    childList: true, subtree: true, attributes: true, attributeFilter: ["style", "class"],
  });
  window.addEventListener("resize", schedule);
  document.addEventListener("DOMContentLoaded", schedule);
})();
