"""A schema compiled once into plain Python closures that answer one question: is this document valid?

jsonschema walks a schema per instance, building a validator object for every keyword it descends
into; that was most of the time `roomc lint` spent. Valid documents (nearly all of them) only need
a yes, so the structural keywords become closures here, and the detailed jsonschema walk (its
messages and paths, unchanged) runs only for a document this check refuses.

Exact by construction: a keyword implemented here follows jsonschema's own definition (the leaf
comparisons call jsonschema's functions), and any schema holding a keyword not implemented here is
handed to jsonschema whole, so a new schema feature can make the check slower, never wrong.
"""
from __future__ import annotations

import numbers
import re
from typing import Any, Callable

Check = Callable[[Any], bool]

# Draft 2020-12's assertion and applicator keywords, as jsonschema's Draft202012Validator.VALIDATORS
# names them (a test keeps the two equal); any other key is an annotation jsonschema ignores.
KEYWORDS = frozenset({
    "$dynamicRef", "$ref", "additionalProperties", "allOf", "anyOf", "const", "contains", "dependentRequired",
    "dependentSchemas", "enum", "exclusiveMaximum", "exclusiveMinimum", "format", "if", "items", "maxItems",
    "maxLength", "maxProperties", "maximum", "minItems", "minLength", "minProperties", "minimum", "multipleOf",
    "not", "oneOf", "pattern", "patternProperties", "prefixItems", "properties", "propertyNames", "required",
    "type", "unevaluatedItems", "unevaluatedProperties", "uniqueItems"})

# Keywords jsonschema ignores (annotations and containers): no effect on validity.
_IGNORED_HERE = frozenset({"$schema", "$defs", "$comment", "title", "description", "default", "examples",
                           "deprecated", "readOnly", "writeOnly", "markdownDescription"})
_IMPLEMENTED = frozenset({"type", "properties", "additionalProperties", "patternProperties", "required",
                          "minProperties", "maxProperties", "propertyNames", "items", "minItems", "maxItems",
                          "uniqueItems", "enum", "const", "pattern", "minLength", "maxLength", "minimum",
                          "maximum", "exclusiveMinimum", "exclusiveMaximum", "oneOf", "anyOf", "allOf", "not",
                          "$ref", "contains"})


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int)


_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": _is_number,
    "integer": _is_integer,
}


def _always(_: Any) -> bool:
    return True


def _never(_: Any) -> bool:
    return False


class _Compiler:
    """Compiles subschemas of one root schema; `$ref`s to its `$defs` are compiled once and shared."""

    def __init__(self, root: dict, delegate: Callable[[Any], Check]):
        self.root = root
        self.delegate = delegate
        self.defs: dict[str, Check] = {}

    def ref(self, target: str) -> Check:
        if not target.startswith("#/$defs/") or "/" in target[8:] or "~" in target[8:]:
            return self.delegate({"$ref": target})
        name = target[8:]
        defs = self.root.get("$defs", {})
        if name not in defs:
            return self.delegate({"$ref": target})
        if name not in self.defs:
            slot: list[Check] = []
            self.defs[name] = lambda value: slot[0](value)  # a recursive $ref reaches the finished check
            slot.append(self.compile(defs[name]))
            self.defs[name] = slot[0]
        return self.defs[name]

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, dict):
            return self.delegate(schema)
        # `$id` changes how references resolve: such a subschema is left to jsonschema.
        keywords = {k for k in schema if k in KEYWORDS or k == "$id"} - _IGNORED_HERE
        if keywords - _IMPLEMENTED:
            return self.delegate(schema)
        if "properties" in keywords and "additionalProperties" in keywords and "patternProperties" not in keywords:
            keywords -= {"properties", "additionalProperties"}
            fused = [self.object_members(schema["properties"], schema["additionalProperties"])]
        else:
            fused = []
        checks: list[Check] = []
        for keyword in sorted(keywords, key=_ORDER.__getitem__):
            checks.append(getattr(self, "k_" + keyword.lstrip("$"))(schema[keyword], schema))
        checks += fused
        if not checks:
            return _always
        if len(checks) == 1:
            return checks[0]
        if len(checks) == 2:
            first, second = checks
            return lambda value: first(value) and second(value)

        def every(value: Any) -> bool:
            for check in checks:
                if not check(value):
                    return False
            return True
        return every

    def object_members(self, properties: dict, extra: Any) -> Check:
        """`properties` with `additionalProperties` (no `patternProperties`): one pass over the members."""
        known = {key: self.compile(sub) for key, sub in properties.items()}
        other = self.compile(extra)

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            for key, item in value.items():
                if not known.get(key, other)(item):
                    return False
            return True
        return check

    # Each k_* builds the check for one keyword, as jsonschema's _keywords module defines it.
    def k_ref(self, target: Any, _: dict) -> Check:
        return self.ref(target) if isinstance(target, str) else self.delegate({"$ref": target})

    def k_type(self, kinds: Any, _: dict) -> Check:
        names = kinds if isinstance(kinds, list) else [kinds]
        if not all(isinstance(n, str) and n in _TYPES for n in names):
            return self.delegate({"type": kinds})
        if names == ["object"]:
            return lambda value: isinstance(value, dict)
        if names == ["string"]:
            return lambda value: isinstance(value, str)
        if names == ["array"]:
            return lambda value: isinstance(value, list)
        tests = [_TYPES[n] for n in names]
        return lambda value: any(test(value) for test in tests)

    def k_properties(self, properties: dict, _: dict) -> Check:
        compiled = [(key, self.compile(sub)) for key, sub in properties.items()]

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            for key, sub in compiled:
                if key in value and not sub(value[key]):
                    return False
            return True
        return check

    def k_patternProperties(self, patterns: dict, _: dict) -> Check:
        compiled = [(re.compile(p), self.compile(sub)) for p, sub in patterns.items()]

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            return all(sub(item) for pattern, sub in compiled for key, item in value.items() if pattern.search(key))
        return check

    def k_additionalProperties(self, extra: Any, schema: dict) -> Check:
        known = frozenset(schema.get("properties", {}))
        patterns = "|".join(schema.get("patternProperties", {}))
        matcher = re.compile(patterns) if patterns else None
        sub = self.compile(extra)

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            for key in value:
                if key in known or (matcher is not None and matcher.search(key)):
                    continue
                if not sub(value[key]):
                    return False
            return True
        return check

    def k_required(self, required: Any, _: dict) -> Check:
        names = tuple(required)
        return lambda value: not isinstance(value, dict) or all(name in value for name in names)

    def k_minProperties(self, least: Any, _: dict) -> Check:
        return lambda value: not isinstance(value, dict) or len(value) >= least

    def k_maxProperties(self, most: Any, _: dict) -> Check:
        return lambda value: not isinstance(value, dict) or len(value) <= most

    def k_propertyNames(self, names: Any, _: dict) -> Check:
        sub = self.compile(names)
        return lambda value: not isinstance(value, dict) or all(sub(key) for key in value)

    def k_items(self, items: Any, schema: dict) -> Check:
        if "prefixItems" in schema:
            return self.delegate({"prefixItems": schema["prefixItems"], "items": items})
        sub = self.compile(items)
        return lambda value: not isinstance(value, list) or all(sub(item) for item in value)

    def k_minItems(self, least: Any, _: dict) -> Check:
        return lambda value: not isinstance(value, list) or len(value) >= least

    def k_maxItems(self, most: Any, _: dict) -> Check:
        return lambda value: not isinstance(value, list) or len(value) <= most

    def k_uniqueItems(self, unique: Any, _: dict) -> Check:
        if not unique:
            return _always
        def check(value: Any) -> bool:
            if not isinstance(value, list):
                return True
            if all(isinstance(item, str) for item in value):
                return len(set(value)) == len(value)  # what uniq() finds for strings, which compare with ==
            from jsonschema._utils import uniq
            return bool(uniq(value))
        return check

    def k_contains(self, contains: Any, schema: dict) -> Check:
        sub = self.compile(contains)
        least = schema.get("minContains", 1)

        def check(value: Any) -> bool:
            if not isinstance(value, list):
                return True
            most = schema.get("maxContains", len(value))
            matches = 0
            for item in value:
                if sub(item):
                    matches += 1
                    if matches > most:
                        return False
            return matches >= least
        return check

    def k_enum(self, choices: Any, _: dict) -> Check:
        if isinstance(choices, list) and all(isinstance(c, str) for c in choices):
            # jsonschema's equal() compares a string only with ==, so a set lookup says the same.
            allowed = frozenset(choices)
            return lambda value: isinstance(value, str) and value in allowed
        tests = [_equals(choice) for choice in choices]
        return lambda value: any(test(value) for test in tests)

    def k_const(self, constant: Any, _: dict) -> Check:
        return _equals(constant)

    def k_pattern(self, pattern: Any, _: dict) -> Check:
        compiled = re.compile(pattern)
        return lambda value: not isinstance(value, str) or compiled.search(value) is not None

    def k_minLength(self, least: Any, _: dict) -> Check:
        return lambda value: not isinstance(value, str) or len(value) >= least

    def k_maxLength(self, most: Any, _: dict) -> Check:
        return lambda value: not isinstance(value, str) or len(value) <= most

    def k_minimum(self, bound: Any, _: dict) -> Check:
        return lambda value: not _is_number(value) or value >= bound

    def k_maximum(self, bound: Any, _: dict) -> Check:
        return lambda value: not _is_number(value) or value <= bound

    def k_exclusiveMinimum(self, bound: Any, _: dict) -> Check:
        return lambda value: not _is_number(value) or value > bound

    def k_exclusiveMaximum(self, bound: Any, _: dict) -> Check:
        return lambda value: not _is_number(value) or value < bound

    def k_oneOf(self, subs: Any, _: dict) -> Check:
        compiled = [self.compile(sub) for sub in subs]

        def check(value: Any) -> bool:
            passed = 0
            for sub in compiled:
                if sub(value):
                    passed += 1
                    if passed > 1:
                        return False
            return passed == 1
        return check

    def k_anyOf(self, subs: Any, _: dict) -> Check:
        compiled = [self.compile(sub) for sub in subs]
        return lambda value: any(sub(value) for sub in compiled)

    def k_allOf(self, subs: Any, _: dict) -> Check:
        compiled = [self.compile(sub) for sub in subs]
        return lambda value: all(sub(value) for sub in compiled)

    def k_not(self, sub: Any, _: dict) -> Check:
        compiled = self.compile(sub)
        return lambda value: not compiled(value)


# Cheap, decisive keywords first: a wrong type ends the check before any property is looked at.
_ORDER = {keyword: index for index, keyword in enumerate((
    "type", "const", "enum", "required", "minProperties", "maxProperties", "minItems", "maxItems", "minLength",
    "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "uniqueItems",
    "propertyNames", "contains", "properties", "patternProperties", "additionalProperties", "items", "$ref", "allOf",
    "anyOf", "oneOf", "not"))}


def _equals(constant: Any) -> Check:
    """jsonschema's equal(constant, value): `==`, except that true and 1 (false and 0) differ."""
    if isinstance(constant, str):
        return lambda value: isinstance(value, str) and value == constant
    if isinstance(constant, bool):
        return lambda value: value is constant
    if constant is None or isinstance(constant, (int, float)):
        return lambda value: value is constant or (
            not isinstance(value, (bool, str, list, dict)) and value == constant)

    def check(value: Any) -> bool:
        from jsonschema._utils import equal
        return bool(equal(constant, value))
    return check


def compile_check(root: Any, delegate: Callable[[Any], Check]) -> Check:
    """A function answering jsonschema's is_valid for the schema `root`, faster.

    `delegate(subschema)` gives jsonschema's own answer for a subschema this module does not compile
    (resolving references against `root`); it is called only for such subschemas.
    """
    if not isinstance(root, dict):
        return delegate(root)
    body = {k: v for k, v in root.items() if k not in ("$id", "$schema")}
    return _Compiler(root, delegate).compile(body)
