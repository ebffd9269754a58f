"""The library's rooms (docs/architecture.md): a handful of modules at the top of `restoration/`,
five subpackages stacked data < models < hub < inference < arena, and no import, inside a function
or not, from a room into one above it; the top-level modules import no room."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "restoration"
ROOMS = ["data", "models", "hub", "inference", "arena"]  # bottom to top


def room_of(module: str) -> str | None:
    """'restoration.arena.store' -> 'arena'; a top-level module ('restoration.settings') -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else None


def imports(path: Path) -> set[str]:
    """Every `restoration...` module or name `path` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import")
    return {m for m in found if m.split(".")[0] == "restoration"}


def test_the_top_of_the_library_holds_at_most_eight_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(ROOMS)


def test_no_room_imports_a_room_above_it():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = path.relative_to(PACKAGE).parts
        level = ROOMS.index(here[0]) if len(here) > 1 else -1  # a top-level module sits below every room
        for target in imports(path):
            room = room_of(target)
            if room is not None and ROOMS.index(room) > level:
                upward.append(f"{'/'.join(here)} imports {target}")
    assert not upward, upward


def test_the_check_sees_an_upward_import(tmp_path):
    """The check above can fail: an import from arena/ in a data/ module is found, in a function too."""
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from restoration.arena.store import VoteStore\n")
    assert [room_of(t) for t in imports(module)] == ["arena", "arena"]
