#!/usr/bin/env python3
"""No two modules of a crate import each other, directly or round a longer circle.

Run by scripts/check-layout (before the venv exists: standard library only). For each crate's
src/, a module is a file (lib.rs and main.rs are the root, foo.rs and foo/mod.rs are `foo`); a
module imports another when one of its `crate::` or `super::` paths (in a `use` or in the code,
its unit tests included) names that module or an item in it. A parent naming its own children
(`mod x;`, `self::x`, `x::f()`) is the module tree, not an import, and is not counted. Prints each
circle and exits 1 when there is one.
"""

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

PATH = re.compile(r"\b(crate|super)((?:::\w+)+)")
INLINE_MOD = re.compile(r"^(\s*)(?:pub(?:\([\w:]+\))?\s+)?mod\s+(\w+)\s*\{\s*$")
USE = re.compile(r"\buse\s+((?:crate|super)::[^;]*);", re.S)
COMMENT = re.compile(r"(?:^|\s)//.*$", re.M)  # doc links name modules without importing them


def module_of(src: Path, file: Path) -> tuple:
    """`src/a/b.rs` and `src/a/b/mod.rs` are ("a", "b"); lib.rs, main.rs and bin/x.rs the root."""
    parts = file.relative_to(src).with_suffix("").parts
    if parts[0] == "bin" or parts in (("lib",), ("main",)):
        return ()
    return parts[:-1] if parts[-1] == "mod" else parts


def expand(tree: str) -> list:
    """`crate::{a::{b, c}, d}` as ["crate::a::b", "crate::a::c", "crate::d"]."""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+\w+", "", tree))
    if "{" not in tree:
        return [tree]
    head, rest = tree.split("{", 1)
    inner, depth, parts, start = rest[:-1], 0, [], 0
    for i, ch in enumerate(inner):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return [path for part in parts if part for path in expand(head + part)]


def paths_by_module(text: str, module: tuple) -> list:
    """(the module a path is written in, the path) for every crate:: or super:: path; an inline
    module (`mod tests {`, as rustfmt lays it out) is the file's module and its name."""
    here_of_line, stack = [], []  # stack: (indentation, inline module)
    for line in text.splitlines():
        opened = INLINE_MOD.match(line)
        if opened:
            stack.append((opened[1], (stack[-1][1] if stack else module) + (opened[2],)))
        here_of_line.append(stack[-1][1] if stack else module)
        if stack and line == stack[-1][0] + "}":
            stack.pop()
    found = []
    for use in USE.finditer(text):
        here = here_of_line[text.count("\n", 0, use.start())]
        found += [(here, path) for path in expand(use[1])]
    rest = USE.sub(lambda use: "\n" * use[0].count("\n"), text)  # the same lines, without uses
    for number, line in enumerate(rest.splitlines()):
        found += [(here_of_line[number], kind + tail) for kind, tail in PATH.findall(line)]
    return found


def target(path: str, written_in: tuple, modules: set) -> tuple:
    """The module a path names: the longest prefix of it that is a module."""
    segments = path.split("::")
    if segments[0] == "crate":
        at, segments = (), segments[1:]
    else:
        at = written_in
        while segments and segments[0] == "super":
            at, segments = at[:-1], segments[1:]
    for segment in segments:
        if at + (segment,) not in modules:
            break
        at += (segment,)
    return at


def reachable(edges: dict, start: tuple) -> set:
    """The modules `start` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for other in edges[todo.pop()]:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def circles(edges: dict) -> list:
    """Each set of modules that reach one another through their imports."""
    reach = {module: reachable(edges, module) for module in list(edges)}
    found = {frozenset(b for b in reach[a] if a in reach[b]) for a in reach if a in reach[a]}
    return sorted(sorted(circle) for circle in found)


def main() -> int:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.rs"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    crates = defaultdict(list)
    for name in files:
        file = Path(name)
        if "src" in file.parts and file.exists() and not name.startswith("fuzz/corpus/"):
            crate = Path(*file.parts[: file.parts.index("src")])
            crates[crate].append(file)
    status = 0
    for crate, sources in sorted(crates.items()):
        src = crate / "src"
        texts = {module_of(src, f): COMMENT.sub("", f.read_text()) for f in sources}
        modules = set(texts)
        for module, text in texts.items():
            for here, _ in paths_by_module(text, module):
                modules.add(here)
        edges = defaultdict(set)
        for module, text in texts.items():
            edges[module]
            for here, path in paths_by_module(text, module):
                to = target(path, here, modules)
                while to not in texts:  # an inline module (unit tests) is its file's
                    to = to[:-1]
                if to != module:
                    edges[module].add(to)
        name = lambda module: "::".join(module) or "(root)"
        for circle in circles(edges):
            imports = "; ".join(
                f"{name(a)} -> {name(b)}" for a in circle for b in sorted(edges[a]) if b in circle
            )
            print(f"{crate}: modules import each other: {imports}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
