"""The package's layers: no module imports from a layer above its own, and the import graph has no cycle
(module-level and function-level imports alike, read with ast from the source)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "opo_theory"
LAYERS = [  # lowest first; a module may import from its own layer and the ones listed before it
    ("settings", "validation", "io", "stats"),
    ("geometry",),
    ("objectives",),
    ("diagnostics",),
    ("bandit",),
    ("claims",),
    ("reproductions",),
    ("lm.progress", "lm.models", "lm.tasks"),
    ("lm.training",),
    ("lm.experiments",),
    ("lm.cli", "lm.audit_cli"),
    ("integrations",),
    ("figures",),
    ("cli", "__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """Index of the layer whose longest prefix matches ``module`` (a dotted name inside opo_theory)."""
    best, depth = None, -1
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and name.count(".") > depth:
                best, depth = i, name.count(".")
    if best is None and module in ("", "lm"):
        return 0
    assert best is not None, f"module opo_theory.{module} is in no layer: add it to LAYERS"
    return best


def imports(path: Path) -> set[str]:
    """Every opo_theory module the file imports (as dotted names inside the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("opo_theory"):
            base = node.module.removeprefix("opo_theory").lstrip(".")
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                found.add(sub if (PACKAGE / sub.replace(".", "/")).with_suffix(".py").exists()
                          or (PACKAGE / sub.replace(".", "/")).is_dir() else base)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("opo_theory.") for a in node.names if a.name.startswith("opo_theory.")}
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def test_no_module_imports_from_a_layer_above():
    upward = [f"opo_theory.{m} -> opo_theory.{d}" for m, deps in graph().items() for d in deps
              if d and layer(d) > layer(m)]
    assert not upward, "imports from a higher layer:\n" + "\n".join(sorted(upward))


def test_the_import_graph_has_no_cycle():
    full = graph()
    g = {m: {d for d in deps if d in full} for m, deps in full.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node, stack):
        state[node] = 1
        for dep in sorted(g[node]):
            if state.get(dep) == 1:
                cycle.extend(stack[stack.index(dep):] + [dep])
                return True
            if dep not in state and visit(dep, stack + [dep]):
                return True
        state[node] = 2
        return False

    for node in sorted(g):
        if node not in state and visit(node, [node]):
            break
    assert not cycle, "import cycle: " + " -> ".join(cycle)
