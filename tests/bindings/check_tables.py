#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Compares the tables of bindings/README.md with the header and the bindings.

    tests/bindings/check_tables.py [--self-test]

bindings/README.md maps the C API to each binding in a table ("| C |
Python |" and "| C | PHP |"). The tables drift as functions are added;
this check makes them fail instead:

- every function that include/obspam.h exports is in the C column of both
  tables;
- every public name of the binding (the module's functions, Engine's
  methods and properties; for PHP, Engine's public methods) is in the
  binding's column, and every name there exists;
- a name written with parentheses is written with its real parameters
  (names and defaults, as inspect or PHP's Reflection give them; "..."
  stands for the parameters of another row);
- the C functions of a row are called by the code (not the comments) of
  the row's methods, so the pairs are right; a function written after
  "instead of" is one the binding deliberately does not call.

--self-test also checks that the check notices a missing row, a wrong
parameter and a row naming a function its methods do not call.

Prints one line per problem and exits 1 when there is any; needs php with
FFI for the PHP table (the library is not loaded: only the classes are
read).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from typing import Dict, List, NamedTuple, Optional, Set, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import check_ffi_decls  # noqa: E402


class Row(NamedTuple):
    line: int
    c_functions: List[str]  # every obspam_* of the C column
    exempt: Set[str]  # those after "instead of": not called on purpose
    names: List[Tuple[str, Optional[str]]]  # binding names, with "(params)" or None


class Member(NamedTuple):
    signature: Optional[str]  # "a, b=1" (None: a property)
    code: str  # its code, comments and docstrings left out


def tables(text: str) -> Dict[str, List[Row]]:
    """The rows of each "| C | X |" table of a README, by X."""
    out: Dict[str, List[Row]] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^\| C \| (\w+) \|$", lines[i])
        if not m:
            i += 1
            continue
        rows = out.setdefault(m.group(1), [])
        i += 2  # the header and the |---| line
        while i < len(lines) and lines[i].startswith("|"):
            cells = [c.strip() for c in lines[i].strip("|").split(" | ")]
            if len(cells) != 2:
                raise SystemExit(f"bindings/README.md:{i + 1}: a row of {len(cells)} cells, not 2")
            c_cell, b_cell = cells
            rows.append(
                Row(
                    i + 1,
                    re.findall(r"`(obspam_\w+)`", c_cell),
                    set(re.findall(r"instead of `(obspam_\w+)`", c_cell)),
                    binding_names(b_cell),
                )
            )
            i += 1
    return out


def binding_names(cell: str) -> List[Tuple[str, Optional[str]]]:
    """The names of the binding that a cell writes in code spans: a method
    `name(params)`, a property `name`, `obspam.function(...)`,
    `Engine::staticMethod(...)`, `new Engine(...)`, `obspam.Engine(...)`.
    Spans that start with a capital (result classes) or are not names at
    all (`{...}`, `[...]`) describe results and are skipped."""
    names = []
    for span in re.findall(r"`([^`]+)`", cell):
        if span.startswith("obspam_"):
            continue  # a C name in a description
        m = re.fullmatch(r"(?:obspam\.|Engine::|new |\$\w+->)?([A-Za-z_]\w*)(?:\((.*)\))?", span)
        if not m:
            continue
        name, params = m.group(1), m.group(2)
        if name == "Engine" and (span.startswith("new ") or span.startswith("obspam.")):
            name = "__construct" if span.startswith("new ") else "__init__"
        elif name[0].isupper() or span.startswith("new "):
            continue  # a result: Verdict(...), Stats, Entry
        names.append((name, params))
    return names


# ---- the bindings -----------------------------------------------------------


def python_members() -> Dict[str, Member]:
    """obspam's public functions and Engine's public methods and properties."""
    import obspam

    def code_of(fn: object) -> str:
        src = inspect.getsource(fn)  # type: ignore[arg-type]
        src = re.sub(r'"""(?:.|\n)*?"""', "", src)
        return re.sub(r"#[^\n]*", "", src)

    def sig(fn: object) -> str:
        parts = []
        for p in inspect.signature(fn).parameters.values():  # type: ignore[arg-type]
            if p.name == "self":
                continue
            if p.kind == p.KEYWORD_ONLY and "*" not in parts:
                parts.append("*")
            parts.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
        return ", ".join(parts)

    out: Dict[str, Member] = {}
    for name in ("load_library", "version", "version_string", "strerror", "kind_name"):
        fn = getattr(obspam, name)
        out[name] = Member(sig(fn), code_of(fn))
    calls: Dict[str, str] = {}
    for name, value in vars(obspam.Engine).items():
        if name.startswith("_") and name != "__init__" or name.startswith("__") and name != "__init__":
            if callable(value) and not name.startswith("__"):
                calls[name] = code_of(value)  # private helpers: what methods call
            continue
        if isinstance(value, property):
            out[name] = Member(None, code_of(value.fget))
        elif callable(value):
            out[name] = Member(sig(value), code_of(value))
    # A method's code includes the private helpers it calls (self._rows,
    # self._page, ...), one level down, and their helpers.
    for _ in range(3):
        for name, m in list(out.items()):
            extra = "".join(calls[h] for h in calls if re.search(rf"\bself\.{h}\(", m.code))
            out[name] = Member(m.signature, m.code + extra)
        for h in list(calls):
            calls[h] += "".join(calls[g] for g in calls if g != h and re.search(rf"\bself\.{g}\(", calls[h]))
    return out


PHP_DUMP = r'''
require $argv[1];
$c = new ReflectionClass(Obspam\Engine::class);
$lines = file($c->getFileName());
$show = function ($v): string {
    if ($v === null) return 'null';
    if (is_bool($v)) return $v ? 'true' : 'false';
    if ($v === []) return '[]';
    return var_export($v, true);
};
$code = function (ReflectionMethod $m) use ($lines): string {
    $text = implode('', array_slice($lines, $m->getStartLine() - 1, $m->getEndLine() - $m->getStartLine() + 1));
    return preg_replace(['#/\*.*?\*/#s', '#//[^\n]*#'], '', $text);
};
$out = ['public' => [], 'private' => []];
foreach ($c->getMethods() as $m) {
    $ps = [];
    foreach ($m->getParameters() as $p) {
        $ps[] = '$' . $p->getName() . ($p->isDefaultValueAvailable() ? ' = ' . $show($p->getDefaultValue()) : '');
    }
    $side = $m->isPublic() ? 'public' : 'private';
    $out[$side][$m->getName()] = [implode(', ', $ps), $code($m)];
}
echo json_encode($out);
'''


def php_members() -> Dict[str, Member]:
    """Engine's public methods, by PHP's Reflection."""
    got = subprocess.run(
        ["php", "-r", PHP_DUMP, "--", os.path.join(ROOT, "bindings", "php", "obspam.php")],
        check=True, capture_output=True, text=True,
    )
    data = json.loads(got.stdout)
    private = {n: v[1] for n, v in data["private"].items()}
    out: Dict[str, Member] = {}
    for name, (sig, code) in data["public"].items():
        if name == "__destruct":
            private[name] = code  # what close() calls; not a name of its own
            continue
        out[name] = Member(sig, code)
    for _ in range(3):
        for name, m in list(out.items()):
            extra = "".join(private[h] for h in private if re.search(rf"(\$this->|self::){h}\(", m.code))
            out[name] = Member(m.signature, m.code + extra)
        for h in list(private):
            private[h] += "".join(private[g] for g in private
                                  if g != h and re.search(rf"(\$this->|self::){g}\(", private[h]))
    return out


# ---- the comparison ---------------------------------------------------------


def compare(lang: str, rows: List[Row], members: Dict[str, Member], functions: List[str]) -> List[str]:
    problems = []
    where = "bindings/README.md"
    listed_c: Set[str] = set()
    listed: Set[str] = set()
    for row in rows:
        listed_c.update(row.c_functions)
        code = ""
        for name, params in row.names:
            listed.add(name)
            m = members.get(name)
            if m is None:
                problems.append(f"{where}:{row.line}: the {lang} table names {name}, which the binding does not have")
                continue
            code += m.code
            if params is not None and params != "..." and params != m.signature:
                shown = "a property" if m.signature is None else f"{name}({m.signature})"
                problems.append(f"{where}:{row.line}: the {lang} table writes {name}({params}); the binding has {shown}")
        for fn in row.c_functions:
            if fn in row.exempt:
                continue
            if not re.search(rf"\b{fn}\b", code):
                problems.append(f"{where}:{row.line}: the {lang} table pairs {fn} with methods that do not call it")
    for fn in functions:
        if fn not in listed_c:
            problems.append(f"{where}: the {lang} table has no row for {fn}")
    for fn in sorted(listed_c - set(functions)):
        problems.append(f"{where}: the {lang} table names {fn}, which include/obspam.h does not export")
    for name in sorted(set(members) - listed):
        problems.append(f"{where}: the {lang} table does not name {name}, a public name of the binding")
    return problems


def check(readme: str) -> List[str]:
    with open(os.path.join(ROOT, "include", "obspam.h")) as f:
        functions = list(check_ffi_decls.parse(f.read(), exported_only=True).functions)
    found = tables(readme)
    problems = []
    for lang, members in (("Python", python_members), ("PHP", php_members)):
        if lang not in found:
            problems.append(f"bindings/README.md: no table '| C | {lang} |'")
            continue
        problems += compare(lang, found[lang], members(), functions)
    return problems


def self_test(readme: str) -> None:
    """The check must see a drift of each kind."""
    cases = [
        ("a missing row", readme.replace("| `obspam_reset` (1.3) | `reset(kind, name, now=0)` |\n", ""),
         "the Python table has no row for obspam_reset"),
        ("a wrong parameter", readme.replace("`reset($kind, $name, $now = 0)`", "`reset($kind, $name)`"),
         "the PHP table writes reset($kind, $name); the binding has reset($kind, $name, $now = 0)"),
        ("a wrong pair", readme.replace("| `obspam_top` (1.3) | `top(start=0",
                                        "| `obspam_report` (1.3) | `top(start=0"),
         "the Python table pairs obspam_report with methods that do not call it"),
        ("a name the binding lacks", readme.replace("`flush_journal()`", "`flush_journal()`, `sync_journal()`"),
         "the Python table names sync_journal, which the binding does not have"),
        ("a method not in the table", readme.replace("`Engine::declarations()`, ", ""),
         "the PHP table does not name declarations, a public name of the binding"),
    ]
    for what, text, want in cases:
        assert text != readme, f"self-test: the case '{what}' changes nothing: fix the self-test"
        got = check(text)
        if not any(want in p for p in got):
            raise SystemExit(f"check_tables: self-test: {what} was not noticed (wanted '{want}'; got {got})")


def main() -> int:
    with open(os.path.join(ROOT, "bindings", "README.md")) as f:
        readme = f.read()
    problems = check(readme)
    for p in problems:
        print(p)
    if problems:
        print(f"check_tables: {len(problems)} problem(s)")
        return 1
    if "--self-test" in sys.argv[1:]:
        self_test(readme)
    rows = tables(readme)
    print(f"check_tables: ok: {len(rows['Python'])} Python rows and {len(rows['PHP'])} PHP rows agree"
          f" with include/obspam.h and the bindings" + (" (self-test ok)" if "--self-test" in sys.argv[1:] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
