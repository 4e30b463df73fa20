"""The layering's one rule import-linter cannot state: a private name (one starting with `_`) is
used only inside the subpackage that defines it. Across subpackages, code goes through public names,
so a subpackage can change its insides without breaking another."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fadercli"


def _owner(module: str) -> str:
    """`fadercli.faces.detect` -> `faces`; a top-level module owns itself (`fadercli.api` -> `api`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")  # `__version__` is public


def private_imports_across(package: Path) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).with_suffix("")
        module = ".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts)
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
