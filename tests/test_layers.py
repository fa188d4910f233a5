"""The package's layers (docs/DESIGN.md): every import, also inside functions, goes down or sideways, never
up, and no modules import each other in a circle; the layers that read and plan import no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "firm_bench"
#: bottom up: a module may import from its own layer and the layers below it
LAYERS = ["core", "method", "datasets", "records", "run", "planning", "paper", "top"]
#: layers whose modules, imported alone, load no torch (reading results, planning, configs)
TORCH_FREE = ["core", "records", "planning"]
TORCH_FREE_PAPER = ["firm_bench.paper.reported", "firm_bench.paper.claims"]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:  # firm_bench/__init__.py: the version, importing nothing
        return "core"
    return parts[1] if parts[1] in LAYERS else "top"


def imports_of(path: Path) -> set[str]:
    """Every firm_bench module ``path`` imports, at the top or inside a function (relative imports resolved)."""
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source: str, module: str, is_package: bool) -> set[str]:
    """Every firm_bench module the source of ``module`` imports (``is_package``: it is a package's __init__)."""
    tree = ast.parse(source)
    here = module.split(".")
    package = here if is_package else here[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("firm_bench")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base.startswith("firm_bench"):
                for alias in node.names:  # "from firm_bench.x import y": y may be a module
                    candidate = f"{base}.{alias.name}"
                    found.add(candidate if (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists()
                              or (PACKAGE.parent / candidate.replace(".", "/")).is_dir() else base)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        edges[name] = {m for m in imports_of(path) if m in modules and m != name}
    return edges


def upward_imports(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(module, what it imports) for every import from a lower layer up to a higher one."""
    return [(m, dep) for m, deps in edges.items() for dep in deps
            if LAYERS.index(layer_of(dep)) > LAYERS.index(layer_of(m))]


def test_no_import_runs_up_a_layer():
    up = upward_imports(graph())
    assert not up, "imports from a lower layer up to a higher one: " + ", ".join(f"{a} -> {b}" for a, b in up)


def test_no_import_circle():
    edges = graph()
    # a package's __init__ re-exporting its own modules is its face, not a circle through it
    edges = {m: {d for d in deps if not (m.startswith(d + ".") and edges.get(d, set()) >= {m})} for m, deps in edges.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                pytest.fail("import circle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_the_checker_sees_imports_inside_functions():
    """Control: the real checker (imports_in, upward_imports) catches upward imports hidden in a function, absolute
    and relative, in a module of the bottom layer; modules taken from the package, so they exist."""
    edges = graph()
    paper = sorted(m for m in edges if layer_of(m) == "paper" and m.count(".") == 2)
    run = sorted(m for m in edges if layer_of(m) == "run" and m.count(".") == 2)
    assert paper and run
    relative = paper[0].split(".", 1)[1]  # "paper.x" from firm_bench.core.<module>: "from ..paper import x"
    parent, leaf = relative.rsplit(".", 1)
    source = f"def f():\n    from ..{parent} import {leaf}\n    import {run[0]}\n"
    found = imports_in(source, "firm_bench.core.lazy", is_package=False)
    assert found == {paper[0], run[0]}
    assert sorted(upward_imports({"firm_bench.core.lazy": found})) == [("firm_bench.core.lazy", m) for m in
                                                                       sorted({paper[0], run[0]})]
    assert not upward_imports({paper[0]: {"firm_bench.core.errors"}})  # down is allowed


@pytest.mark.parametrize("layer", TORCH_FREE)
def test_reading_and_planning_layers_import_no_torch(layer):
    modules = sorted(m for m in graph() if layer_of(m) == layer)
    if layer == TORCH_FREE[-1]:
        modules += TORCH_FREE_PAPER
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + (
        "print(sorted(x for x in ('torch', 'torchvision', 'timm') if x in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]", f"importing the {layer} layer ({', '.join(modules)}) loads {out.strip()}"
