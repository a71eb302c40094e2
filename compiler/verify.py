"""Pass 7, verify: every response the table can produce is checked against Sautikit's actions schema.

Template slots are filled with typed placeholders (a number where a number belongs,
an https URL where a URL does), joins are expanded to the longest thing they can become,
so a table that passes cannot make Sautikit refuse a response.
"""
from __future__ import annotations

from typing import Any, Iterator

from .diagnostics import Diagnostic, Severity
from .ir import Policy
from .schemas import ROUTE_TABLE, actions_problems, fast_check, validator

PLACEHOLDERS = {"number": "+254700000000", "numbers": "+254700000000", "sip": "sip:placeholder@example.invalid",
                "name": "room-placeholder", "finishOnKey": "#"}
URL_PLACEHOLDER = "https://placeholder.invalid/route"
# Fields the actions schema constrains only as "a non-empty string": any two such values are
# interchangeable for validity, so responses differing only there share one check.
FREE_TEXT = frozenset({"text", "voice", "language", "url", "name", "waitUrl", "statusEventsCallbackUrl",
                       "digitsCallbackUrl", "flags", "callerId", "action", "transcribeCallback"})


def fill(node: Any, key: str = "") -> Any:
    """A template tree with every slot replaced by a value of the type its field expects."""
    if isinstance(node, dict):
        if "$t" in node:
            return PLACEHOLDERS.get(key, "x")
        if "$url" in node:
            return URL_PLACEHOLDER
        return {k: fill(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [fill(v, key) for v in node]
    return node


def expand(table: dict, actions: list, visiting: frozenset = frozenset()) -> list:
    """Joins replaced by the longest response their room can give."""
    out: list = []
    for item in actions:
        if "$join" not in item:
            out.append(item)
            continue
        room_id = item["$join"]["room"]
        room = table["rooms"].get(room_id)
        if room is None or room_id in visiting:
            out.append({"hangup": {}})
            continue
        wanted = item["$join"].get("role")
        roles = [r for r in room["roles"] if wanted in (None, r["id"])]
        variants: list[list] = [r["actions"] for r in roles]
        variants.append(expand(table, room["whenFull"], visiting | {room_id}))
        if room.get("hours") in (table.get("hours") or {}):  # closed: the schedule's closed actions instead
            variants.append(expand(table, table["hours"][room["hours"]]["closed"], visiting | {room_id}))
        variants += [expand(table, r["whenFull"], visiting | {room_id}) for r in roles if "whenFull" in r]
        out.extend(sorted(variants, key=len)[-1])  # the longest thing the join can become
    return out


def responses(table: dict) -> Iterator[tuple[tuple, list]]:
    """Every action list of the table, with the IR path it came from."""
    for room_id, room in table["rooms"].items():
        for role in room["roles"]:
            yield ("rooms", room_id, "roles", role["id"]), role["actions"]
            if "whenFull" in role:  # the role's own, or its pool's (issue 13)
                yield ("rooms", room_id, "roles", role["id"], "whenFull"), role["whenFull"]
        yield ("rooms", room_id, "whenFull"), room["whenFull"]
    for flow_id, flow in table["flows"].items():
        yield ("flows", flow_id, "actions"), flow["actions"]
        for index, branch in enumerate(flow["branches"]):
            yield ("flows", flow_id, "onDigits", index), branch["actions"]
        yield ("flows", flow_id, "otherwise"), flow["otherwise"]
        if "afterLastTry" in flow:
            yield ("flows", flow_id, "afterLastTry"), flow["afterLastTry"]
    yield ("server", "fallback"), table["server"]["fallback"]
    for schedule_id, schedule in (table.get("hours") or {}).items():
        yield ("hours", schedule_id, "closed"), schedule["closed"]


def _shape(node: Any) -> Any:
    """The node with every string emptied, as a hashable value: all the route-table schema constrains inside
    rooms and flows. Scalars keep their type (True, 1 and 1.0 are equal in Python, not in the schema)."""
    if isinstance(node, dict):
        return ("{", *[(k, _shape(v)) for k, v in node.items()])
    if isinstance(node, list):
        return ("[", *[_shape(v) for v in node])
    return "" if isinstance(node, str) else (type(node), node)


def _distinct_shapes(table: dict) -> dict:
    """The table with one room (and flow) per shape: valid exactly when the whole table is, checked in a
    fraction of the time (schema/route-table.schema.json has no string pattern or enum under rooms or flows;
    a test keeps that so)."""
    out = dict(table)
    for section in ("rooms", "flows"):
        entries = table.get(section)
        if not isinstance(entries, dict):
            continue
        seen: set = set()
        kept = {}
        for key, entry in entries.items():
            shape = _shape(entry)
            if shape not in seen:
                seen.add(shape)
                kept[key] = entry
        out[section] = kept
    return out


def _response_key(node: Any, key: str = "") -> Any:
    """`canonical(fill(node))` as a hashable value, made in one walk: responses with equal keys are equally valid.

    Scalars keep their type, as JSON tells them apart; only the response's validity is read from the key.
    """
    if isinstance(node, dict):
        if "$t" in node:
            return "x" if key in FREE_TEXT else PLACEHOLDERS.get(key, "x")
        if "$url" in node:
            return "x" if key in FREE_TEXT else URL_PLACEHOLDER
        return ("{", *[(k, _response_key(v, k)) for k, v in node.items()])
    if isinstance(node, list):
        return ("[", *[_response_key(v, key) for v in node])
    if isinstance(node, str):
        return ("x" if node else "") if key in FREE_TEXT else node
    return (type(node), node)


def verify(table: dict, policy: Policy) -> list[Diagnostic]:
    """Findings (RC404) for any response Sautikit would refuse."""
    found = []
    shapes = _distinct_shapes(table)
    for error in [] if fast_check(ROUTE_TABLE)(shapes) else validator(ROUTE_TABLE).iter_errors(shapes):
        # A table that breaks its own schema is a compiler bug, reported rather than written out.
        found.append(Diagnostic("RC405", Severity.ERROR, f"internal: route table invalid at "
                                f"{'.'.join(map(str, error.absolute_path))}: {error.message}", policy.span(())))
    checked: set = set()
    for path, actions in responses(table):
        expanded = expand(table, actions)
        key = _response_key(expanded, "actions")
        if key in checked:
            continue
        problems = actions_problems({"actions": fill(expanded)})
        if not problems:
            checked.add(key)
            continue
        for where, message in problems:
            found.append(Diagnostic("RC404", Severity.ERROR,
                                    f"this response would be refused by Sautikit ({where}: {message})",
                                    policy.span(path), path))
    return found
