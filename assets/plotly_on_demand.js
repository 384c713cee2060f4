/* Semantic Image Search Playground: Plotly (plotly.min.js, 4.7 MB, 1.1 MB compressed) is fetched when a view
   that draws a Plotly figure (Embeddings, Compare) is first shown, not on a first visit of Search.

   Why this is needed: every view is in the page from the start (hidden views have display: none), and Dash's
   dcc.Graph asks for Plotly as soon as it mounts, shown or not. Its loader (dash_core_components' Graph, Dash 4)
   does `Promise.resolve(window.Plotly || <inject window._dashPlotlyJSURL's script>)`. So this script sets
   `window.Plotly` to a thenable before any graph mounts: the graphs wait on it (as they would on the script) and
   it injects the very same script, served locally (no CDN), once a view holding a graph is shown (or its tab is
   pointed at or focused, a moment before the click). The script
   replaces `window.Plotly` with the real library when it runs; the graphs then draw.

   Callbacks whose inputs are a graph's properties wait for the graph (Dash's isAppReady), so none of Search's does:
   the map's clicks reach the controller through a clientside callback that does not fire on load
   (callbacks/controller.py PICK_INPUTS, prevent_initial_call). tests/test_install.py's browser check and
   bench/first_visit.py (--later-views) verify both: no plotly.min.js on Search, figures drawn in the later views. */
(function () {
  "use strict";
  if (window.Plotly) {
    return;  // already loaded (a page that includes it itself)
  }
  var loading = null;
  var waiting = [];

  function load() {
    if (loading) {
      return loading;
    }
    loading = new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = window._dashPlotlyJSURL;
      script.async = true;
      script.onload = function () {
        resolve();
      };
      script.onerror = function (error) {
        loading = null;  // a later view switch tries again
        reject(error);
      };
      document.head.appendChild(script);
    });
    loading.then(function () {
      waiting.splice(0).forEach(function (callbacks) {
        callbacks[0]();
      });
    }, function (error) {
      waiting.splice(0).forEach(function (callbacks) {
        callbacks[1](error);
      });
    });
    return loading;
  }

  // A view (div.view, shown and hidden through its inline style) that holds a graph is shown.
  function graphShown() {
    var views = document.querySelectorAll(".view");
    for (var i = 0; i < views.length; i += 1) {
      if (views[i].style.display !== "none" && views[i].querySelector(".dash-graph")) {
        return true;
      }
    }
    return false;
  }

  // The pointer on (or the keyboard focus reaching) the tab of such a view: the download starts before the click.
  function tabIntent(event) {
    var tab = event.target && event.target.closest ? event.target.closest(".tab") : null;
    var view = tab && tab.id ? document.getElementById(tab.id.replace(/^view-tab-/, "view-")) : null;
    if (view && view.querySelector(".dash-graph")) {
      document.removeEventListener("pointerover", tabIntent);
      document.removeEventListener("focusin", tabIntent);
      load();
    }
  }

  var observer = null;

  function watch() {
    if (observer || loading) {
      return;
    }
    document.addEventListener("pointerover", tabIntent);
    document.addEventListener("focusin", tabIntent);
    observer = new MutationObserver(function (records) {
      for (var i = 0; i < records.length; i += 1) {
        var target = records[i].target;
        if (target.classList && target.classList.contains("view") && graphShown()) {
          observer.disconnect();
          load();
          return;
        }
      }
    });
    observer.observe(document.body, { subtree: true, attributes: true, attributeFilter: ["style"] });
  }

  window.Plotly = {
    // Promise.resolve(thenable) calls this with its own resolve and reject.
    then: function (resolve, reject) {
      waiting.push([function () { resolve(); }, reject || function () {}]);
      if (graphShown()) {
        load();
      } else {
        watch();
      }
    }
  };
})();
