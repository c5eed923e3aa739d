"""A fast, conservative pre-check of a decoded event against its type's JSON Schema (used by decode).

`compile_check(schema)` returns a function that is True only when the schema's compiled validator
(fastjsonschema) would accept the object as well, and False when it cannot tell; decode then runs
that validator, which decides and words the error. So it changes no outcome and no message: it only
spares the ordinary, valid event the generic validator (3 to 8 µs an event, the largest part of
decoding). It understands the keywords the event schemas use, each checked at least as strictly as
fastjsonschema does:

- type string / integer / number / boolean / null / array (a list of types too): exact Python types
  (a bool is no integer, 2.0 is no integer here, a float must be finite, an array must be a list);
- minLength / maxLength (code points, as len()), pattern (a pattern whose only `$` ends it, on a
  string with no newline, where `$` and fastjsonschema's `\\Z` mean the same), enum / const of strings;
- minimum / maximum / exclusiveMinimum (numbers), items (strings), maxItems, uniqueItems (of strings);
- required, properties, additionalProperties true; annotations (description, default, title...).

A schema using anything else gets no fast path (None), and every event of that type is validated.
"""
from __future__ import annotations

import re
from typing import Any, Callable

_ANNOTATIONS = {"description", "title", "default", "examples", "$comment"}
_TOP = {"$schema", "$id", "title", "description", "type", "required", "properties", "additionalProperties", "$comment"}
_STRING = {"minLength", "maxLength", "pattern", "enum", "const"}
_NUMBER = {"minimum", "maximum", "exclusiveMinimum"}
_ARRAY = {"items", "maxItems", "uniqueItems"}
_TYPES = {"string", "integer", "number", "boolean", "null", "array"}


class _Unsupported(Exception):
    pass


def _number(v: Any) -> bool:
    return (v.__class__ is int or v.__class__ is float) and not isinstance(v, bool)


def _string_checks(ps: dict, var: str, env: dict, lines: list[str], indent: str) -> None:
    if "minLength" in ps or "maxLength" in ps:
        lo, hi = ps.get("minLength", 0), ps.get("maxLength")
        if not isinstance(lo, int) or isinstance(lo, bool) or (hi is not None and (not isinstance(hi, int) or isinstance(hi, bool))):
            raise _Unsupported("length bounds")
        cond = f"{lo} <= len({var})" + (f" <= {hi}" if hi is not None else "")
        lines.append(f"{indent}if not ({cond}): return False")
    if "pattern" in ps:
        pattern = ps["pattern"]
        if not isinstance(pattern, str) or pattern.count("$") != 1 or not pattern.endswith("$") or pattern.endswith("\\$"):
            raise _Unsupported("pattern")
        name = f"_rx{len(env)}"
        env[name] = re.compile(pattern).search
        lines.append(f"{indent}if '\\n' in {var} or {name}({var}) is None: return False")
    if "enum" in ps:
        values = ps["enum"]
        if not isinstance(values, list) or not values or not all(isinstance(x, str) for x in values):
            raise _Unsupported("enum")
        name = f"_enum{len(env)}"
        env[name] = frozenset(values)
        lines.append(f"{indent}if {var} not in {name}: return False")
    if "const" in ps:
        if not isinstance(ps["const"], str):
            raise _Unsupported("const")
        lines.append(f"{indent}if {var} != {ps['const']!r}: return False")


def _number_checks(ps: dict, var: str, lines: list[str], indent: str) -> None:
    for key, op in (("minimum", ">="), ("maximum", "<="), ("exclusiveMinimum", ">")):
        if key in ps:
            bound = ps[key]
            if not _number(bound) or bound != bound or bound in (float("inf"), float("-inf")):
                raise _Unsupported(key)
            lines.append(f"{indent}if not ({var} {op} {bound!r}): return False")


def _property(ps: dict, var: str, env: dict, lines: list[str], indent: str) -> None:
    """Lines that `return False` unless the value in `var` certainly satisfies the property schema `ps`."""
    if not isinstance(ps, dict):
        raise _Unsupported("schema")
    keys = set(ps) - _ANNOTATIONS
    if not keys <= {"type"} | _STRING | _NUMBER | _ARRAY:
        raise _Unsupported(f"keywords {sorted(keys - ({'type'} | _STRING | _NUMBER | _ARRAY))}")
    types = ps.get("type")
    if types is None:  # a const alone: a string equal to it
        if keys != {"const"}:
            raise _Unsupported("no type")
        types = ["string"]
    types = [types] if isinstance(types, str) else types
    if not isinstance(types, list) or not types or not set(types) <= _TYPES or len(set(types)) != len(types):
        raise _Unsupported("type")
    if ("enum" in keys or "const" in keys) and types != ["string"]:
        raise _Unsupported("enum or const on a non-string")
    if keys & _ARRAY and "array" not in types:
        raise _Unsupported("array keywords")
    branches = []  # (condition, checks)
    for t in types:
        body: list[str] = []
        inner = indent + "    "
        if t == "string":
            cond = f"{var}.__class__ is str"
            _string_checks(ps, var, env, body, inner)
        elif t == "integer":
            cond = f"{var}.__class__ is int"
            _number_checks(ps, var, body, inner)
        elif t == "number":
            cond = f"({var}.__class__ is int or ({var}.__class__ is float and {var} - {var} == 0.0))"
            _number_checks(ps, var, body, inner)
        elif t == "boolean":
            cond = f"{var}.__class__ is bool"
        elif t == "null":
            cond = f"{var} is None"
        else:  # array
            cond = f"{var}.__class__ is list"
            if "maxItems" in ps:
                if not isinstance(ps["maxItems"], int) or isinstance(ps["maxItems"], bool):
                    raise _Unsupported("maxItems")
                body.append(f"{inner}if len({var}) > {ps['maxItems']}: return False")
            items = ps.get("items", {})
            item_var = f"{var}_x"
            item_lines: list[str] = []
            if items:
                _property(items, item_var, env, item_lines, inner + "    ")
            item_types = items.get("type") if items else None
            if ps.get("uniqueItems"):
                if item_types != "string":  # only strings: equal as JSON exactly when equal in Python
                    raise _Unsupported("uniqueItems")
            if item_lines:
                body.append(f"{inner}for {item_var} in {var}:")
                body.extend(item_lines)
            if ps.get("uniqueItems"):
                body.append(f"{inner}if len(set({var})) != len({var}): return False")
        # (keywords of other types do not apply to a value of this type, in fastjsonschema neither)
        branches.append((cond, body))
    for i, (cond, body) in enumerate(branches):
        lines.append(f"{indent}{'if' if i == 0 else 'elif'} {cond}:")
        lines.extend(body or [f"{indent}    pass"])
    lines.append(f"{indent}else: return False")


def compile_check(schema: dict) -> Callable[[dict], bool] | None:
    """The pre-check of an event schema (see the module's docstring), or None if it has no fast path."""
    try:
        if not isinstance(schema, dict) or not set(schema) <= _TOP or schema.get("type") != "object" \
                or schema.get("additionalProperties", True) is not True:
            raise _Unsupported("top level")
        required = schema.get("required", [])
        properties = schema.get("properties", {})
        if not isinstance(required, list) or not all(isinstance(k, str) for k in required) or not isinstance(properties, dict):
            raise _Unsupported("required / properties")
        env: dict[str, Any] = {"_MISSING": object()}
        lines = ["def check(data):"]
        for k in required:
            if k not in properties:
                lines.append(f"    if {k!r} not in data: return False")
        for i, (name, ps) in enumerate(properties.items()):
            var = f"v{i}"
            lines.append(f"    {var} = data.get({name!r}, _MISSING)")
            if name in required:
                lines.append(f"    if {var} is _MISSING: return False")
                _property(ps, var, env, lines, "    ")
            else:
                lines.append(f"    if {var} is not _MISSING:")
                _property(ps, var, env, lines, "        ")
        lines.append("    return True")
    except _Unsupported:
        return None
    source = "\n".join(lines)
    exec(compile(source, f"<schemacheck {schema.get('$id', '')}>", "exec"), env)  # noqa: S102 - our own source
    check = env["check"]
    check.source = source
    return check
