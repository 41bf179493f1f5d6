"""List the module-level mutable state of the operator package (process singletons).

A module-level name counts when a function rebinds it (`global`), or when it is not an ALL_CAPS
constant and holds a container (dict, list, set, deque, ...) or an object built from a class.
Locks and loggers do not count: they only serve other state or write logs.

    python benchmarks/module_state.py [operator/adaptive_operator]
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

CONTAINERS = {"dict", "list", "set", "defaultdict", "deque", "OrderedDict", "Counter",
              "WeakValueDictionary", "WeakKeyDictionary", "ContextVar"}
NOT_STATE = {"Lock", "RLock", "TypeVar", "ParamSpec", "NewType", "get", "getLogger",
             "get_logger", "namedtuple", "frozenset", "tuple", "compile", "Field", "field"}
PACKAGE = Path(__file__).resolve().parents[1] / "operator" / "adaptive_operator"


def _called(node: ast.expr) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _mutable(value: ast.expr | None) -> bool:
    if isinstance(value, ast.Dict | ast.List | ast.Set | ast.DictComp | ast.ListComp | ast.SetComp):
        return True
    name = _called(value) if value is not None else None
    if name is None or name in NOT_STATE:
        return False
    # A class's name, private ones included (`_IoLoop()`).
    return name in CONTAINERS or name.lstrip("_")[:1].isupper()


def _bindings(tree: ast.Module) -> Iterator[tuple[str, ast.expr | None]]:
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    yield target.id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            yield node.target.id, node.value


def module_state(path: Path) -> list[str]:
    """The names of one module's mutable module-level state."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rebound = {name for node in ast.walk(tree) if isinstance(node, ast.Global)
               for name in node.names}
    found = {name for name, value in _bindings(tree) if not name.startswith("__")
             and (name in rebound or (not name.isupper() and _mutable(value)))}
    return sorted(found)


def package_state(root: Path) -> list[str]:
    """`module.name` for every piece of module-level mutable state under `root`."""
    return [f"{path.relative_to(root.parent).with_suffix('').as_posix().replace('/', '.')}.{name}"
            for path in sorted(root.rglob("*.py")) for name in module_state(path)]


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE
    found = package_state(root)
    print("\n".join(found))
    print(f"{len(found)} module-level mutable singletons")


if __name__ == "__main__":
    main()
