"""The shape of ``cnnlab/``, read from the source with :mod:`ast` (nothing is imported).

- The module import graph is acyclic, function-level imports included. Imports under
  ``if TYPE_CHECKING:`` are left out of the cycle check: they never run, so they cannot make an
  import cycle (they still count for the layering rules below).
- Data flows one way: ``counting/`` never imports ``training/``, ``views/`` or ``cli/``;
  ``training/`` never imports ``views/`` or ``cli/``; ``inside/`` (feature maps) never imports
  ``views/`` or ``cli/``; ``experiments/`` and ``classroom/`` never import ``inside/``, ``views/``
  or ``cli/``, and ``classroom/`` never imports ``experiments/`` (an experiment queues its
  runs through the class's fair queue); ``views/`` never imports ``cli/``.
- Nothing under ``cnnlab/`` imports Streamlit except ``cnnlab/views/ui.py`` and
  ``cnnlab/views/class_ui.py`` (the class's cookie identity and teacher login).
- A function-level import is there to keep start-up fast (or for another stated reason) and
  says so in a comment on its line or above it (one comment may head a block of imports).
- ``cnnlab --help`` does not import torch (nor Streamlit or SQLAlchemy).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cnnlab"
STREAMLIT_HELPER = "cnnlab.views.ui"
STREAMLIT_HELPERS = (STREAMLIT_HELPER, "cnnlab.views.class_ui")  # class_ui: cookies, teacher login

# room → rooms it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "cnnlab.counting": ("cnnlab.training", "cnnlab.inside", "cnnlab.views", "cnnlab.cli"),
    "cnnlab.training": ("cnnlab.inside", "cnnlab.views", "cnnlab.cli"),
    "cnnlab.views": ("cnnlab.cli",),
    "cnnlab.inside": ("cnnlab.views", "cnnlab.cli"),  # feature maps: views and cli show them
    # experiments: families of runs over training; views and cli show them
    "cnnlab.experiments": ("cnnlab.inside", "cnnlab.views", "cnnlab.cli"),
    # classroom: identities, the teacher role, class limits, the fair queue
    "cnnlab.classroom": ("cnnlab.inside", "cnnlab.views", "cnnlab.cli", "cnnlab.experiments"),
}


@dataclass(frozen=True)
class Import:
    """One ``import``/``from … import`` statement, resolved to the modules it names."""

    module: str  # the importing module
    targets: tuple[str, ...]  # dotted names imported (cnnlab modules resolved to their file)
    line: int
    in_function: bool
    type_checking: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(name: str, known: dict[str, Path]) -> str:
    """The deepest known module a dotted import name refers to (``a.b.func`` → ``a.b``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return name


def imports_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                targets = tuple(_resolve(a.name, known) for a in child.names)
                yield Import(name, targets, child.lineno, in_function, type_checking)
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative: from the importing module's package
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    source = ".".join([*base, *([child.module] if child.module else [])])
                else:
                    source = child.module or ""
                targets = tuple(
                    _resolve(f"{source}.{a.name}" if a.name != "*" else source, known)
                    for a in child.names
                )
                yield Import(name, targets, child.lineno, in_function, type_checking)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), in_function, True)
                for stmt in child.orelse:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), in_function, False)
            else:
                inner = in_function or isinstance(
                    child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
                )
                yield from visit(child, inner, type_checking)

    yield from visit(tree, False, False)


def all_imports() -> list[Import]:
    known = modules()
    return [imp for name, path in known.items() for imp in imports_of(name, path, known)]


def import_graph(*, with_type_checking: bool = False) -> dict[str, set[str]]:
    """cnnlab module → the cnnlab modules it imports (function-level imports included)."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for imp in all_imports():
        if imp.type_checking and not with_type_checking:
            continue
        for target in imp.targets:
            if target in known and target != imp.module:
                graph[imp.module].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, …, a]``, or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def _in(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def _where(imp: Import) -> str:
    return f"{modules()[imp.module].relative_to(ROOT)}:{imp.line}"


def _says_why(comment: str) -> bool:
    """A comment with words in it, not just a tool's directive (``noqa``, ``type: ignore``)."""
    text = comment.strip().lower()
    return bool(text) and not text.startswith(("noqa", "type:", "pragma", "fmt:", "isort:"))


# ---------------------------------------------------------------- the tests


def test_the_tree_is_read() -> None:
    graph = import_graph()
    assert {"cnnlab.counting.spec", "cnnlab.counting.rules", "cnnlab.views.ui"} <= set(graph)
    assert "cnnlab.counting.rules" in graph["cnnlab.counting.analyse"]
    # the checker itself finds a cycle when there is one
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_is_acyclic() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle (function-level imports included): " + " → ".join(cycle)


def test_data_flows_one_way() -> None:
    offenders = [
        f"{_where(imp)}: {imp.module} imports {target} ({room} must not import {bad})"
        for imp in all_imports()
        for room, forbidden in FORBIDDEN.items()
        if _in(imp.module, room)
        for target in imp.targets
        for bad in forbidden
        if _in(target, bad)
    ]
    assert not offenders, "imports against the flow:\n" + "\n".join(offenders)


def test_only_the_ui_helper_imports_streamlit() -> None:
    offenders = [
        f"{_where(imp)}: {imp.module} imports {target}"
        for imp in all_imports()
        if imp.module not in STREAMLIT_HELPERS
        for target in imp.targets
        if _in(target, "streamlit") or _in(target, "extra_streamlit_components")
    ]
    assert not offenders, (
        f"only {', '.join(STREAMLIT_HELPERS)} may import streamlit under cnnlab/:\n"
        + "\n".join(offenders)
    )


def test_function_level_imports_say_why() -> None:
    offenders = []
    lines_of: dict[str, list[str]] = {}
    for imp in all_imports():
        if not imp.in_function:
            continue
        path = modules()[imp.module]
        lines = lines_of.setdefault(imp.module, path.read_text(encoding="utf-8").splitlines())
        here = lines[imp.line - 1]
        up = imp.line - 2  # the comment may head a block of imports: look above the block
        while up >= 0 and lines[up].strip().startswith(("from ", "import ")):
            up -= 1
        above = lines[up].strip() if up >= 0 else ""
        comments = [here.partition("#")[2], above[1:] if above.startswith("#") else ""]
        if not any(_says_why(c) for c in comments):
            offenders.append(f"{_where(imp)}: {here.strip()}")
    assert not offenders, (
        "function-level imports without a comment saying why (e.g. `# lazy: keeps "
        "`cnnlab --help` from importing torch`), or move them to the top:\n" + "\n".join(offenders)
    )


def test_cli_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from cnnlab.cli import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = ('torch', 'torchvision', 'streamlit', 'sqlalchemy')\n"
        "heavy = sorted(m for m in heavy if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"`cnnlab --help` imports {done.stdout.strip()}"
