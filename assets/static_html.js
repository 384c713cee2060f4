/* Static HTML panels (playground/static_html.py): one Dash component, StaticHtml, whose content is built here from
   plain data ([tag, attributes, children] nodes, strings as text) with createElement, setAttribute and
   textContent; and the clicks on the buttons inside, sent to the store their data-click-store attribute names,
   as dash_clientside.playground.clicked would send them ({trigger, value, at}). */
(function () {
  "use strict";

  function build(nodes, parent) {
    (nodes || []).forEach(function (node) {
      if (typeof node === "string") {
        parent.appendChild(document.createTextNode(node));
        return;
      }
      var element = document.createElement(node[0]);
      var attributes = node[1] || {};
      Object.keys(attributes).forEach(function (name) {
        element.setAttribute(name, attributes[name]);
      });
      build(node[2], element);
      parent.appendChild(element);
    });
  }

  // Keyboard focus inside a panel survives its redraw: the element at the same place in the new content takes
  // it (as React would have kept the element), e.g. a result picked with Enter leaves focus on the results.
  function focusPath(root) {
    var path = [];
    var element = document.activeElement;
    while (element && element !== root && root.contains(element)) {
      path.unshift(Array.prototype.indexOf.call(element.parentNode.children, element));
      element = element.parentNode;
    }
    return element === root && path.length ? path : null;
  }

  function restoreFocus(root, path) {
    var element = root;
    for (var i = 0; path && element && i < path.length; i++) {
      element = element.children[path[i]];
    }
    if (path && element && element !== root && typeof element.focus === "function") {
      element.focus({ preventScroll: true });
    }
  }

  function StaticHtml(props) {
    var React = window.React;
    var ref = React.useRef(null);
    React.useLayoutEffect(function () {
      var root = ref.current;
      if (!root) {
        return;
      }
      var focused = focusPath(root);
      var fragment = document.createDocumentFragment();
      build(props.tree, fragment);
      root.replaceChildren(fragment);
      restoreFocus(root, focused);
    }, [props.tree]);
    var attributes = { ref: ref, id: props.id, className: props.className, role: props.role, title: props.title };
    Object.keys(props).forEach(function (name) {
      if (name.indexOf("data-") === 0 || name.indexOf("aria-") === 0) {
        attributes[name] = props[name];
      }
    });
    return React.createElement(props.tag || "div", attributes);
  }

  window.playground_static = { StaticHtml: StaticHtml };

  // A click on a button of a static panel: its id (a pattern-matching id, as Dash writes it) and its own click
  // count go to the store its data-click-store names (the controller's query click, the viewer's click).
  var clicks = new WeakMap();
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-click-store]") : null;
    var setProps = window.dash_clientside && window.dash_clientside.set_props;
    if (!button || !setProps) {
      return;
    }
    var trigger;
    try {
      trigger = JSON.parse(button.id);
    } catch (error) {
      return;
    }
    var count = (clicks.get(button) || 0) + 1;
    clicks.set(button, count);
    setProps(button.dataset.clickStore, { data: { trigger: trigger, value: count, at: Date.now() } });
  });
})();
