"""The layers: pages lay out widgets and call the facade (foxpipe.app), nothing else; the
facade holds no Streamlit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "pages").glob("*.py")) + [ROOT / "streamlit_app.py"]
FACADE = [ROOT / "foxpipe" / "app.py", *sorted((ROOT / "foxpipe").glob("app_*.py"))]

# What a page may import from foxpipe: the facade, the Streamlit adapter, and the pure domain
# (display constants, models, quiz data: no I/O, no engine).
ALLOWED = ("foxpipe.app", "foxpipe.ui", "foxpipe.domain")


def imported(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports (``from foxpipe import ui`` counts as foxpipe.ui)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.lineno, node.module)]
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def allowed(module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in ALLOWED)


def foxpipe_imports(path: Path) -> list[tuple[int, str]]:
    """The foxpipe modules a page imports, most specific form: ``from foxpipe import app``
    is foxpipe.app; ``from foxpipe.domain.models import Job`` is foxpipe.domain.models.Job."""
    out = []
    for line, name in imported(path):
        if name == "foxpipe" or not name.startswith("foxpipe."):
            continue
        out.append((line, name))
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_import_only_the_facade_the_adapter_and_the_domain(page: Path) -> None:
    # A ``from foxpipe.X import Y``: the module foxpipe.X must be allowed (Y is a name in it).
    # A ``from foxpipe import Y``: foxpipe.Y must be allowed.
    bad = []
    tree = ast.parse(page.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = (
                [f"foxpipe.{a.name}" for a in node.names]
                if node.module == "foxpipe"
                else [node.module]
            )
        else:
            continue
        for name in names:
            if (name == "foxpipe" or name.startswith("foxpipe.")) and not allowed(name):
                bad.append(f"line {node.lineno}: {name}")
    assert not bad, f"{page.name} reaches past the facade: " + ", ".join(bad)


def test_the_facade_holds_no_streamlit() -> None:
    assert len(FACADE) >= 1 and FACADE[0].exists()
    for path in FACADE:
        mods = [name for _, name in imported(path)]
        assert not [m for m in mods if m == "streamlit" or m.startswith("streamlit.")], path.name


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The check itself: an engine import on a page is caught, the allowed ones are not."""
    page = tmp_path / "page.py"
    page.write_text(
        "from foxpipe import app as workflow\nfrom foxpipe import ui\n"
        "from foxpipe.domain.models import Job\nimport foxpipe.engine.jobs\n"
        "from foxpipe.store import StoreError\nfrom foxpipe import export\n"
    )
    flagged = [n for _, n in foxpipe_imports(page) if not allowed(n)]
    assert "foxpipe.engine.jobs" in flagged and "foxpipe.store" in flagged
    assert "foxpipe.export" in flagged
    assert not [n for n in flagged if n.startswith(("foxpipe.app", "foxpipe.ui", "foxpipe.domain"))]


# Reaching the engine without importing it: the adapter's registry, the facade's engine.
ENGINE_HANDLES = {("ui", "registry"), ("workflow", "engine"), ("workflow", "current")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_do_not_hold_the_engine(page: Path) -> None:
    tree = ast.parse(page.read_text(encoding="utf-8"))
    held = [
        f"line {n.lineno}: {n.value.id}.{n.attr}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute)
        and isinstance(n.value, ast.Name)
        and (n.value.id, n.attr) in ENGINE_HANDLES
    ]
    assert not held, f"{page.name} holds the engine: " + ", ".join(held)
