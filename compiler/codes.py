"""Codes produced outside the rule modules: file and YAML traps, schema, merging, suppressions."""
from __future__ import annotations

# code: (name, why it matters)
CODES: dict[str, tuple[str, str]] = {
    "RC000": ("unreadable-file", "The file or folder could not be read, or was refused: missing, no permission, not a "
              "regular file (a FIFO or device would hang or never end), a symbolic link out of the policy folder, "
              "larger than 1 MiB, or more than 10,000 files. Nothing is skipped silently."),
    "RC001": ("yaml-syntax", "The file is not valid YAML; nothing in it can be checked until it parses."),
    "RC002": ("duplicate-key", "YAML keeps only the last of two equal keys, silently dropping the first."),
    "RC003": ("yaml11-boolean", "`yes`, `no`, `on`, `off` are booleans in YAML 1.1 but strings in YAML 1.2 editors."),
    "RC004": ("multi-document", "Only the first document of a file is read; the rest would be silently ignored."),
    "RC005": ("merge-key", "`<<` merge keys are YAML 1.1 only; other tools read them as a plain key."),
    "RC006": ("tab-indent", "YAML forbids tabs in indentation; editors show them differently from parsers."),
    "RC007": ("not-utf8", "Policies are UTF-8; other encodings garble spoken text."),
    "RC008": ("empty-file", "An empty file defines nothing and is almost always a mistake."),
    "RC009": ("alias-bomb", "A document with more than 200,000 nodes, 64 levels, or 8 MiB of text once aliases are "
              "expanded (billion laughs, one big string referenced many times) is refused while it is read, not after."),
    "RC010": ("defined-twice", "An id or setting defined in two files; which one wins would depend on file order."),
    "RC011": ("yaml11-number", "`010` is 8, `1:20` is 80, `1_0` is 10 and `0b11` is 3 in YAML 1.1 (PyYAML), but "
              "YAML 1.2 editors read 10 or a string; `digits: 0123` would never match. Quote digits, write plain numbers."),
    "RC012": ("number-out-of-range", "A number larger than 2,147,483,647 (or infinite, or with dozens of digits) is "
              "no seat count, timeout or digit count; it would be served as a float like 1e+38, or cost quadratic "
              "time to read."),
    "RC013": ("route-table-given", "A compiled route table (`roomc compile` output) was given where a policy belongs; "
              "one clear finding instead of a schema error per key."),
    "RC014": ("complex-key", "A mapping or list used as a key (`? {a: 1}`, `[x, y]: 3`): policy keys are names, and "
              "other tools turn such keys into text in different ways."),
    "RC015": ("bad-tag", "An explicit YAML tag roomc cannot honour: a value that is not of its tag's type (`!!bool "
              "abc`, `!!int ten`), or a tag the room language has no type for (`!!binary`, a local `!thing`). "
              "Other tools read these differently or refuse them; roomc would otherwise keep the bare text."),
    "RC101": ("unknown-key", "A key the room language does not have; usually a typo, silently ignored by hand-written servers."),
    "RC102": ("missing-key", "A required key is missing."),
    "RC103": ("wrong-type", "A value of the wrong type (a string where a number belongs, ...)."),
    "RC104": ("bad-value", "A value outside what is allowed (enum, pattern, range, id shape)."),
    "RC105": ("one-verb", "An action has exactly one verb, as in Sautikit's own JSON."),
    "RC404": ("refused-response", "A compiled response Sautikit's actions schema would refuse; checked with typed placeholders."),
    "RC405": ("invalid-table", "Internal: the compiled table broke schema/route-table.schema.json (a roomc bug; please report)."),
    "RC901": ("unused-suppression", "A `# roomc: ignore[...]` comment that suppresses nothing hides nothing but rots."),
}
