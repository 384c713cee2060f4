"""Static HTML: a panel of many elements as *one* Dash component.

Dash's renderer wraps every component of the page in a React wrapper that re-reads the whole layout on every
change of any property: its cost grows with the number of components on the page times the updates of a click
(docs/benchmarks.md section 11). The panels that a click redraws (the query grid, the query panel, the results,
the duplicates, the neighbours and the selection strip beside the map) hold hundreds of ``html`` components that
never change by themselves. They are still built as ``html`` components by the views' ``render_*`` functions
(tested as such); :func:`to_tree` turns such a tree into plain data, and :class:`StaticHtml` (a small React
component in ``assets/static_html.js``) builds its DOM in one go, with ``document.createElement``, ``textContent``
and ``setAttribute`` (no HTML parsing, so no markup can be injected through a label or a file name).

The buttons inside keep their pattern-matching ids (written as Dash writes them, ``{"index":5,"type":"..."}``)
and their classes, titles and ARIA labels; a click on one is sent by ``assets/static_html.js`` to the store
that :data:`CLICK_STORES` names for its id type, in the form of ``dash_clientside.playground.clicked``
(``{"trigger": id, "value": clicks, "at": ms}``), so the controller and the viewer read it as before. For
example ``to_tree(html.Button(html.Img(src="/a.jpg"), id={"type": ids.PICK, "index": 3}, n_clicks=0))`` is::

    [["button", {"id": '{"index":3,"type":"pick-image"}', "data-click-store": "query-click"},
      [["img", {"src": "/a.jpg"}, []]]]]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dash._utils import stringify_id
from dash.development.base_component import Component

from playground import ids

# Where a click on a button of a static panel goes, by the type of the button's pattern-matching id.
CLICK_STORES = {
    ids.PICK: ids.QUERY_CLICK,
    ids.RESULT_PICK: ids.QUERY_CLICK,
    ids.DUPLICATE_PICK: ids.QUERY_CLICK,
    ids.IMAGE_PICK: ids.QUERY_CLICK,
    ids.UPLOAD_PICK: ids.QUERY_CLICK,
    ids.VIEW_IMAGE: ids.VIEWER_CLICK,
}
# Dash's names of the HTML attributes that are not spelled as in HTML; any other camelCase prop is refused.
_ATTRIBUTES = {"className": "class", "htmlFor": "for", "tabIndex": "tabindex", "colSpan": "colspan",
               "rowSpan": "rowspan", "accessKey": "accesskey"}
_PLAIN = {"title", "role", "alt", "src", "href", "target", "rel", "lang", "dir", "hidden", "open", "disabled",
          "type", "name", "value", "width", "height", "loading", "download"}
# Dash's click counters and React keys: state of the component, not attributes of the element.
_DROPPED = {"n_clicks", "n_clicks_timestamp", "disable_n_clicks", "key", "loading_state"}
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def style_text(style: Mapping[str, Any]) -> str:
    """A Dash style dict as CSS text: ``{"backgroundColor": "red", "width": "5%"}`` → ``background-color: red;
    width: 5%``."""
    return "; ".join(f"{_CAMEL.sub('-', key).lower()}: {value}" for key, value in style.items())


def _attributes(component: Component, props: dict[str, Any]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for key, value in props.items():
        if key == "children" or key in _DROPPED or value is None or value is False:
            continue
        if key == "id":
            attributes["id"] = stringify_id(value)
            if isinstance(value, dict) and value.get("type") in CLICK_STORES:
                attributes["data-click-store"] = CLICK_STORES[value["type"]]
        elif key == "style":
            attributes["style"] = style_text(value)
        elif key in _ATTRIBUTES:
            attributes[_ATTRIBUTES[key]] = str(value)
        elif key in _PLAIN or key.startswith(("data-", "aria-")):
            attributes[key] = "" if value is True else str(value)
        else:
            raise ValueError(f"{type(component).__name__} prop {key!r} has no static HTML attribute (to_tree knows "
                             f"{sorted(_PLAIN | set(_ATTRIBUTES))}, data-* and aria-*)")
    return attributes


def to_tree(children: Any) -> list[Any]:
    """``html`` components (a component, a string or number, None, or a list of them) as static HTML nodes.

    Returns a list of nodes: a string is a text node, ``[tag, attributes, children]`` an element. Only
    ``dash.html`` components convert (a ``dcc`` component has no static form: ValueError).
    """
    if children is None or children is False:
        return []
    if isinstance(children, (list, tuple)):
        return [node for child in children for node in to_tree(child)]
    if isinstance(children, (str, int, float)):
        return [str(children)]
    if not isinstance(children, Component) or children._namespace != "dash_html_components":
        raise ValueError(f"{type(children).__name__} cannot be static HTML: only dash.html components can")
    props = {key: getattr(children, key) for key in children._prop_names if hasattr(children, key)}
    props.update({key: value for key, value in vars(children).items() if key.startswith(("data-", "aria-"))})
    return [[children._type.lower(), _attributes(children, props), to_tree(props.get("children"))]]


class StaticHtml(Component):
    """One element (``tag``, a div by default) whose content is ``tree`` (from :func:`to_tree`), built by
    ``assets/static_html.js`` each time ``tree`` changes; the element itself keeps its DOM state (a
    ``<details>`` stays open, a scrolled grid keeps its place).

    Keyword arguments: ``id``, ``tree``, ``tag``, ``className``, ``role``, ``title`` and ``data-*`` / ``aria-*``
    attributes.
    """

    _children_props: list[str] = []
    _base_nodes: list[str] = []
    _namespace = "playground_static"
    _type = "StaticHtml"

    def __init__(self, id: str | None = None, tree: list[Any] | None = None, tag: str = "div",
                 className: str | None = None, role: str | None = None, title: str | None = None, **kwargs: Any):
        self._prop_names = ["id", "tree", "tag", "className", "role", "title", "aria-*", "data-*"]
        self._valid_wildcard_attributes = ["data-", "aria-"]
        self.available_properties = list(self._prop_names)
        self.available_wildcard_properties = ["data-", "aria-"]
        args = {"id": id, "tree": tree if tree is not None else [], "tag": tag, "className": className,
                "role": role, "title": title}
        super().__init__(**{key: value for key, value in args.items() if value is not None}, **kwargs)


def static(component_id: str, children: Any = None, tag: str = "div", **kwargs: Any) -> StaticHtml:
    """A :class:`StaticHtml` holding ``children`` (``html`` components) from the start."""
    return StaticHtml(id=component_id, tree=to_tree(children), tag=tag, **kwargs)


