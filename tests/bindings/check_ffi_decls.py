#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks bindings/php/obspam_ffi.h against include/obspam.h.

PHP's FFI::cdef() cannot read preprocessor directives, so the PHP binding
ships a copy of the header's declarations without macros. This script makes
sure the copy says what the header says:

  - the FFI file holds no preprocessor line at all;
  - both declare the same functions (the header's are the OBSPAM_API ones)
    with the same signatures: return type, name, parameter types and names,
    callback types included, compared token by token (whitespace and line
    breaks do not matter);
  - both declare the same structures with the same fields: same names, same
    types, same order (``int64_t a, b;`` is two fields);
  - both declare the same opaque typedefs.

Enumerations and macros are constants: tests/bindings/abi.c prints their
values from the real header and the Python and PHP tests compare them with
their own.

  check_ffi_decls.py [--header include/obspam.h] [--ffi bindings/php/obspam_ffi.h]
  check_ffi_decls.py --self-test     also checks that the checker catches
                                     a changed field, type, order or function

Exits 0 when both agree, 1 (listing every difference) otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPORT_MACRO = "OBSPAM_API"

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|\.\.\.|[^\sA-Za-z0-9_]")


@dataclass
class Declarations:
    """What one file declares."""

    functions: Dict[str, List[str]] = field(default_factory=dict)  # name: tokens
    structs: Dict[str, List[Tuple[str, str]]] = field(default_factory=dict)
    opaque: Dict[str, str] = field(default_factory=dict)  # typedef name: struct
    unexported: List[str] = field(default_factory=list)
    preprocessor: List[str] = field(default_factory=list)


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _strip_preprocessor(text: str, found: List[str]) -> str:
    """Drops directives (with their continuation lines) and the blocks of
    ``#ifdef __cplusplus``, which hold the ``extern "C"`` braces."""
    out: List[str] = []
    lines = text.split("\n")
    skipping = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("#"):
            directive = line
            while directive.endswith("\\") and i + 1 < len(lines):
                i += 1
                directive = directive[:-1] + lines[i]
            found.append(directive.strip())
            words = directive.lstrip("# \t").split()
            if words[:2] == ["ifdef", "__cplusplus"]:
                skipping += 1
            elif words[:1] == ["endif"] and skipping:
                skipping -= 1
            i += 1
            continue
        if not skipping:
            out.append(line)
        i += 1
    return "\n".join(out)


def _top_level_statements(text: str) -> List[str]:
    """Splits the text at the semicolons outside braces."""
    statements, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == ";" and depth == 0:
            statements.append(text[start:i].strip())
            start = i + 1
    rest = text[start:].strip()
    if rest:
        statements.append(rest)
    return [s for s in statements if s]


def _tokens(text: str) -> List[str]:
    return _TOKEN.findall(text)


def _fields(body: str) -> List[Tuple[str, str]]:
    """``uint32_t a; const char *b, *c; char d[3];`` -> [(type, name), ...]."""
    fields: List[Tuple[str, str]] = []
    for decl in body.split(";"):
        decl = " ".join(decl.split())
        if not decl:
            continue
        # The base type is everything before the first declarator: the
        # declarators are comma-separated and each may start with '*'.
        first, *others = decl.split(",")
        match = re.match(r"^(.*?)([\s*]*)([A-Za-z_]\w*)\s*(\[[^\]]*\])?\s*$", first)
        if match is None:
            raise ValueError(f"cannot read the field '{decl}'")
        base = " ".join(match.group(1).split())
        declarators = [first[len(match.group(1)) :]] + others
        for d in declarators:
            m = re.match(r"^\s*(\**)\s*([A-Za-z_]\w*)\s*(\[\s*(\d+)\s*\])?\s*$", d)
            if m is None:
                raise ValueError(f"cannot read the declarator '{d}' in '{decl}'")
            stars, name, _, size = m.groups()
            ftype = base + (" " + stars if stars else "")
            if size is not None:
                ftype += f"[{size}]"
            fields.append((ftype, name))
    return fields


def parse(text: str, exported_only: bool) -> Declarations:
    """Reads the declarations of a header (exported_only: functions must
    carry OBSPAM_API, which is then dropped) or of the FFI file."""
    decls = Declarations()
    text = _strip_preprocessor(_strip_comments(text), decls.preprocessor)
    for statement in _top_level_statements(text):
        flat = " ".join(statement.split())
        if re.match(r"^(typedef\s+)?enum\b", flat):
            continue  # constants: checked through abi.c
        m = re.match(r"^typedef struct (\w+) \{(.*)\} (\w+)$", flat)
        if m:
            tag, body, name = m.groups()
            if tag != name:
                raise ValueError(f"struct {tag} is typedef'd as {name}")
            decls.structs[name] = _fields(body)
            continue
        m = re.match(r"^typedef struct (\w+) (\w+)$", flat)
        if m:
            decls.opaque[m.group(2)] = m.group(1)
            continue
        if "(" in flat:
            tokens = _tokens(flat)
            exported = EXPORT_MACRO in tokens
            tokens = [t for t in tokens if t != EXPORT_MACRO]
            name = tokens[tokens.index("(") - 1]
            if exported_only and not exported:
                decls.unexported.append(name)
            decls.functions[name] = tokens
            continue
        raise ValueError(f"cannot read the declaration '{flat[:80]}'")
    return decls


def compare(header: Declarations, ffi: Declarations) -> List[str]:
    """Every difference, as lines for a person to read."""
    problems: List[str] = []
    for directive in ffi.preprocessor:
        problems.append(f"the FFI file holds a preprocessor line: {directive}")
    for name in header.unexported:
        problems.append(f"header: {name}() is declared without {EXPORT_MACRO}")
    for name in sorted(set(header.functions) - set(ffi.functions)):
        problems.append(f"function {name}() is missing from the FFI file")
    for name in sorted(set(ffi.functions) - set(header.functions)):
        problems.append(f"function {name}() is in the FFI file but not in the header")
    for name in sorted(set(header.functions) & set(ffi.functions)):
        if header.functions[name] != ffi.functions[name]:
            problems.append(
                f"function {name}() differs:\n"
                f"    header: {' '.join(header.functions[name])}\n"
                f"    FFI:    {' '.join(ffi.functions[name])}"
            )
    for name in sorted(set(header.structs) - set(ffi.structs)):
        problems.append(f"structure {name} is missing from the FFI file")
    for name in sorted(set(ffi.structs) - set(header.structs)):
        problems.append(f"structure {name} is in the FFI file but not in the header")
    for name in sorted(set(header.structs) & set(ffi.structs)):
        h, f = header.structs[name], ffi.structs[name]
        if h != f:
            problems.append(
                f"structure {name} differs:\n"
                f"    header: {'; '.join(' '.join(x) for x in h)}\n"
                f"    FFI:    {'; '.join(' '.join(x) for x in f)}"
            )
    if header.opaque != ffi.opaque:
        problems.append(f"opaque typedefs differ: header {header.opaque}, FFI {ffi.opaque}")
    return problems


def check(header_text: str, ffi_text: str) -> Tuple[List[str], Declarations]:
    header = parse(header_text, exported_only=True)
    ffi = parse(ffi_text, exported_only=False)
    return compare(header, ffi), header


def self_test(header_text: str, ffi_text: str) -> List[str]:
    """Changes the FFI text in ways the check must catch; returns failures."""
    mutations = {
        "a field renamed": ("int64_t retry_after;", "int64_t retry_afterx;"),
        "a field type changed": ("int32_t sending;", "int64_t sending;"),
        "two fields swapped": (
            "  int64_t limit;\n  int64_t count;\n  int64_t retry_after;",
            "  int64_t count;\n  int64_t limit;\n  int64_t retry_after;",
        ),
        "an array size changed": ("char object[328];", "char object[320];"),
        "a pointer dropped": ("const char *contact;", "const char contact;"),
        "a parameter type changed": (
            "int obspam_set_uid(obspam_engine *e, const char *subscription, int64_t uid);",
            "int obspam_set_uid(obspam_engine *e, const char *subscription, int uid);",
        ),
        "a callback signature changed": (
            "void (*fn)(const obspam_notice *n, void *ud), void *ud);",
            "void (*fn)(obspam_notice *n, void *ud), void *ud);",
        ),
        "a function removed": ("int obspam_notify_flush(obspam_engine *e, int64_t now);", ""),
        "a macro added": ("typedef struct obspam_engine", "#define X 1\ntypedef struct obspam_engine"),
        "a split declaration merged": ("int64_t sent, refused;", "int64_t sent;"),
    }
    failures = []
    for what, (old, new) in mutations.items():
        if old not in ffi_text:
            failures.append(f"self-test: cannot apply '{what}': text not found")
            continue
        problems, _ = check(header_text, ffi_text.replace(old, new, 1))
        if not problems:
            failures.append(f"self-test: {what} was not detected")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--header", default=os.path.join(ROOT, "include", "obspam.h"))
    parser.add_argument(
        "--ffi", default=os.path.join(ROOT, "bindings", "php", "obspam_ffi.h")
    )
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    with open(args.header, encoding="utf-8") as f:
        header_text = f.read()
    with open(args.ffi, encoding="utf-8") as f:
        ffi_text = f.read()
    problems, header = check(header_text, ffi_text)
    if args.self_test:
        problems += self_test(header_text, ffi_text)
    for problem in problems:
        print(f"check_ffi_decls: {problem}")
    if problems:
        print(f"check_ffi_decls: {len(problems)} difference(s) between "
              f"{os.path.relpath(args.ffi)} and {os.path.relpath(args.header)}")
        return 1
    print(
        f"check_ffi_decls: ok: {len(header.functions)} functions, "
        f"{len(header.structs)} structures and {len(header.opaque)} opaque type "
        f"agree" + (" (self-test ok)" if args.self_test else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
