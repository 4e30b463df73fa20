"""The layering's rules import-linter cannot state: a private name (one starting with `_`) is used only
inside the subpackage that defines it (across subpackages, code goes through public names, so a
subpackage can change its insides without breaking another); and no two modules import each other,
directly or round a longer circle, at module level or inside a function (within one layer the
contracts allow both directions, and an import inside a function hides a circle until it runs)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fadercli"


def _owner(module: str) -> str:
    """`fadercli.faces.detect` -> `faces`; a top-level module owns itself (`fadercli.api` -> `api`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")  # `__version__` is public


def _modules(package: Path) -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own, for its __init__.py)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).with_suffix("")
        found[".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts)] = path
    return found


def private_imports_across(package: Path) -> list[str]:
    found = []
    for module, path in _modules(package).items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(package.name):
                continue
            for alias in node.names:
                private = _private(alias.name) or any(_private(part) for part in node.module.split("."))
                if private and _owner(node.module) != _owner(module):
                    found.append(f"{module}:{node.lineno} imports {node.module}.{alias.name}")
    return found


def test_no_private_name_crosses_a_subpackage():
    assert private_imports_across(PACKAGE) == []


def test_the_check_sees_a_private_import_across_subpackages(tmp_path):
    package = tmp_path / "fadercli"
    (package / "net").mkdir(parents=True)
    (package / "faces").mkdir()
    (package / "net" / "tensors.py").write_text("def _unit(x):\n    return x\n")
    (package / "faces" / "paste.py").write_text("from fadercli.net.tensors import _unit\n")
    (package / "net" / "editor.py").write_text("from fadercli.net.tensors import _unit\n")  # same subpackage: fine
    assert private_imports_across(package) == ["fadercli.faces.paste:1 imports fadercli.net.tensors._unit"]


def _type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING" or getattr(test, "attr", "") == "TYPE_CHECKING"


def _run_time(node: ast.AST):
    """The nodes under `node` that can run: all but the body of `if TYPE_CHECKING:` (type hints only)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _run_time(other)
            continue
        yield child
        yield from _run_time(child)


def _imported(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules one module imports, wherever the import stands (`from P import name` is
    P.name where that is a module, else P). A package's __init__ that a submodule's import runs on the
    way is not counted: a module inside a package always runs it."""
    found = set()
    for node in _run_time(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            named = (f"{node.module}.{alias.name}" for alias in node.names)
            found |= {name if name in modules else node.module for name in named}
    return found


def import_cycles(package: Path) -> list[str]:
    """Each circle of imports between the package's modules, as `a -> b -> a` from its first module."""
    modules = _modules(package)
    graph = {module: sorted(_imported(path, modules) - {module}) for module, path in modules.items()}
    cycles, done, path = set(), set(), []

    def visit(module: str) -> None:
        path.append(module)
        for other in graph[module]:
            if other in path:
                circle = path[path.index(other) :]
                start = circle.index(min(circle))
                cycles.add(" -> ".join([*circle[start:], *circle[:start], min(circle)]))
            elif other not in done:
                visit(other)
        path.pop()
        done.add(module)

    for module in graph:
        if module not in done:
            visit(module)
    return sorted(cycles)


def test_no_import_cycle():
    assert import_cycles(PACKAGE) == []


def test_the_check_sees_a_cycle_through_an_import_inside_a_function(tmp_path):
    cli = tmp_path / "fadercli" / "cli"
    cli.mkdir(parents=True)
    (cli / "__init__.py").write_text("from fadercli.cli import edit\n")  # a package over its modules: fine
    edit = "from fadercli.cli.outputs import rules\n\ndef edit():\n    from fadercli.cli import scale\n"
    (cli / "edit.py").write_text(edit)
    (cli / "scale.py").write_text("from fadercli.cli.edit import rules\n")
    hints = "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from fadercli.cli.edit import Options\n"
    (cli / "outputs.py").write_text(hints)  # type hints only: never imported when it runs
    assert import_cycles(tmp_path / "fadercli") == ["fadercli.cli.edit -> fadercli.cli.scale -> fadercli.cli.edit"]
