"""The import graph of the humanpose package: no cycles, and imports one way, down the layers.

Every ``import`` and ``from ... import`` of every module counts, at module level and inside
functions alike, relative and absolute (read with ``ast``, nothing imported).
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "humanpose"

# Lowest first: a module may import its own layer (without cycles) and the layers below it,
# never one above.  The data flow: frames come from sources, the estimator turns them into
# poses with the nets it loads through the store; the Python API wraps the estimator; train
# fits the nets and evaluates them through the estimator; the tools (int8 calibration on the
# training images, benchmarks, the export-onnx and import-tfjs commands) use the estimator and
# train; export writes results (video, JSON, CSV) and runs the `run` command; the window shows
# all of it; the command line starts any of them.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("humanpose.skeleton", "humanpose.catalog", "humanpose.config", "humanpose.logs",
              "humanpose.progress")),
    ("nets", ("humanpose.nets",)),
    ("store", ("humanpose.store",)),                  # weight files -> nets
    ("sources", ("humanpose.sources",)),
    ("estimator", ("humanpose.estimator",)),
    ("api", ("humanpose.api", "humanpose")),        # the package root only re-exports the API
    ("train", ("humanpose.train",)),
    ("tools", ("humanpose.optimize", "humanpose.import_tfjs")),
    ("export", ("humanpose.export",)),
    ("gui", ("humanpose.gui",)),
    ("cli", ("humanpose.cli", "humanpose.__main__")),
]


def modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = f.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The humanpose modules that module ``name`` imports anywhere in its code."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` mod
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.split(".")[0] == "humanpose":
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def layer(name: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    assert rank is not None, f"{name} is in no layer of LAYERS: add it"
    return rank


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    edges = graph()
    assert len(edges) > 50
    assert "humanpose.estimator.backends" in edges["humanpose.estimator.pipeline"]
    # a function-level relative import counts (export/runner imports the estimator lazily)
    assert "humanpose.estimator.pipeline" in edges["humanpose.export.runner"]


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_go_down_the_layers_only():
    upward = [f"{m} ({LAYERS[layer(m)][0]}) imports {t} ({LAYERS[layer(t)][0]})"
              for m, targets in graph().items() for t in sorted(targets) if layer(t) > layer(m)]
    assert upward == []


def test_the_pipeline_is_the_top_of_the_estimator():
    """Backends at the bottom, the pipeline on top: no estimator module imports the pipeline,
    and the backends import no part of the pipeline's steps."""
    edges = graph()
    est = [m for m in edges if m.startswith("humanpose.estimator.")]
    assert [m for m in est if "humanpose.estimator.pipeline" in edges[m]] == []
    steps = {f"humanpose.estimator.{m}" for m in ("pipeline", "detector", "pose_stage",
                                                  "tracked", "tracking", "persons", "crops")}
    assert edges["humanpose.estimator.backends"] & steps == set()
