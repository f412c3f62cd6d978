"""The tree reads like the architecture, and stays that way.

- `agent/` is one sub-package per concern, each saying in its `__init__` what lives there.
- Imports run one way, from commands down to providers (`FLOORS`); a package may import its
  own modules and anything on a lower floor, never one above or beside it.
- No module imports itself back through others (`agent/`, `providers/`, `bench/`, `testing/`).
- Modules, classes and functions stay small enough to read in one sitting, and `bench/` as a
  whole stays small beside what it measures.

Imports under `if TYPE_CHECKING:` never run: a metrics hook may name the engine's `Turn` in
an annotation without putting ops above the engine. They still count for circles.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("agent", "providers", "bench", "testing")

# lowest first; packages on one floor do not import each other
FLOORS: tuple[frozenset[str], ...] = (
    frozenset({"providers"}),
    frozenset({"agent.config", "agent.ops"}),
    frozenset({"agent.tools"}),
    frozenset({"agent.engine"}),
    frozenset({"agent.voice"}),
    frozenset({"agent.wiring"}),
    frozenset({"agent.worker"}),
    frozenset({"agent.commands"}),
    frozenset({"agent.__main__"}),
)
MAX_MODULE_LINES = 450
MAX_CLASS_LINES = 200
MAX_FUNCTION_LINES = 100
# issue 19's 2,500 (from 4,026), with every section, table and results.json key kept and the
# room section, WER and short replies added since: bench/ may shrink, not grow
MAX_BENCH_LINES = 2_500


def _modules() -> Iterator[tuple[str, Path]]:
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            yield ".".join(parts), path


def _imports(module: str, path: Path, *, annotations: bool) -> set[str]:
    """Every module `module` imports (absolute names); `annotations`: TYPE_CHECKING's too."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if (
            not annotations
            and isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test)
        ):
            skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base)
                if node.module:
                    found.add(f"{prefix}.{node.module}")
                else:  # `from . import x`: x is a module
                    found.update(f"{prefix}.{alias.name}" for alias in node.names)
            elif node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = dict(_modules())


def _graph(*, annotations: bool) -> dict[str, set[str]]:
    edges = {}
    for module, path in MODULES.items():
        found = _imports(module, path, annotations=annotations)
        # a script's `__main__` block may import its own module by name (for pickling)
        edges[module] = {name for name in found if name in MODULES and name != module}
    return edges


def _floor_package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "providers":
        return "providers"
    if parts[0] == "agent" and len(parts) > 1:
        return f"agent.{parts[1]}"
    return None


def _floor(package: str) -> int:
    for level, members in enumerate(FLOORS):
        if package in members:
            return level
    raise AssertionError(f"{package} is on no floor: add it to FLOORS in {__file__}")


def test_every_agent_package_says_what_lives_there() -> None:
    for init in sorted((ROOT / "agent").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init.relative_to(ROOT)} has no docstring"
        assert len(doc.splitlines()) <= 3, f"{init.relative_to(ROOT)}: say it in one or two lines"


def test_imports_run_only_downward() -> None:
    wrong = []
    for module, imported in _graph(annotations=False).items():
        own = _floor_package(module)
        if own is None:
            continue
        for name in imported:
            other = _floor_package(name)
            if other is None or other == own:
                continue
            if module.startswith("providers") and other != "providers":
                wrong.append(f"{module} -> {name}: providers/ knows nothing of agent/")
            elif _floor(other) >= _floor(own):
                wrong.append(f"{module} -> {name}")
    assert not wrong, "imports that run up or sideways:\n" + "\n".join(sorted(wrong))


def test_no_import_circle() -> None:
    # a circle through type annotations is still one: the modules cannot be read apart
    graph = _graph(annotations=True)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for name in sorted(graph[module]):
            if state.get(name) == 1:
                return [*path[path.index(name) :], name]
            if name not in state and (circle := visit(name)):
                return circle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (circle := visit(module)):
            pytest.fail("import circle: " + " -> ".join(circle))


def test_modules_classes_and_functions_stay_small() -> None:
    too_big = []
    for module, path in MODULES.items():
        source = path.read_text()
        if (lines := len(source.splitlines())) > MAX_MODULE_LINES:
            too_big.append(f"module {module}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            if size > limit:
                too_big.append(f"{module}.{node.name}: {size} lines (at most {limit})")
    assert not too_big, "\n".join(too_big)


def test_the_bench_stays_lean() -> None:
    # a section is one module on the shared protocol (bench/sections.py); plumbing a section
    # repeats belongs there, not in every section
    lines = {p.name: len(p.read_text().splitlines()) for p in sorted((ROOT / "bench").glob("*.py"))}
    biggest = ", ".join(f"{name} {n}" for name, n in sorted(lines.items(), key=lambda x: -x[1])[:5])
    assert sum(lines.values()) <= MAX_BENCH_LINES, (
        f"bench/ is {sum(lines.values())} lines (at most {MAX_BENCH_LINES}); largest: {biggest}"
    )
