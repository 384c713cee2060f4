"""Parse the JavaScript object literals that minified bundles export: JSON plus bare keys, ``.5``, ``!0``."""

from __future__ import annotations

import json
import math
import re
from typing import Any

_JS_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"""
    r"""|(?P<punct>[{}\[\]:,])|(?P<bang>!\s*[01])|(?P<ident>[A-Za-z_$][\w$]*))"""
)
_JS_CONSTANTS = {"null": None, "true": True, "false": False, "NaN": math.nan, "Infinity": math.inf}


def parse_js_literal(text: str, pos: int) -> tuple[Any, int]:
    """Parse the minified JavaScript object literal at ``text[pos]``: JSON plus bare keys, ``.5``, ``!0``."""

    def token(at: int) -> re.Match[str]:
        match = _JS_TOKEN.match(text, at)
        if match is None:
            raise ValueError(f"unexpected text at {at}: {text[at:at + 30]!r}")
        return match

    def string(literal: str) -> str:
        return json.loads(literal if literal[0] == '"' else '"' + literal[1:-1].replace('"', '\\"') + '"')

    def value(at: int) -> tuple[Any, int]:
        tok = token(at)
        kind, raw, at = tok.lastgroup, tok.group(tok.lastgroup), tok.end()
        if kind == "str":
            return string(raw), at
        if kind == "num":
            return (float(raw) if any(c in raw for c in ".eE") else int(raw)), at
        if kind == "bang":
            return raw[-1] == "0", at  # minifiers write true as !0, false as !1
        if kind == "ident":
            return _JS_CONSTANTS[raw], at
        if raw == "[":
            items: list[Any] = []
            if token(at).group("punct") == "]":
                return items, token(at).end()
            while True:
                item, at = value(at)
                items.append(item)
                sep = token(at)
                at = sep.end()
                if sep.group("punct") == "]":
                    return items, at
                if sep.group("punct") != ",":
                    raise ValueError(f"expected , or ] at {sep.start()}")
        if raw == "{":
            obj: dict[str, Any] = {}
            if token(at).group("punct") == "}":
                return obj, token(at).end()
            while True:
                key = token(at)
                if key.lastgroup not in ("str", "ident", "num"):
                    raise ValueError(f"expected a key at {key.start()}")
                name = string(key.group("str")) if key.lastgroup == "str" else key.group(key.lastgroup)
                colon = token(key.end())
                if colon.group("punct") != ":":
                    raise ValueError(f"expected : at {colon.start()}")
                obj[name], at = value(colon.end())
                sep = token(at)
                at = sep.end()
                if sep.group("punct") == "}":
                    return obj, at
                if sep.group("punct") != ",":
                    raise ValueError(f"expected , or }} at {sep.start()}")
        raise ValueError(f"unexpected {raw!r} at {tok.start()}")

    return value(pos)
