"""The floors of dreamerbench (docs/architecture.md), checked on the source.

``core`` imports no other room; ``suites`` imports only ``core``; ``agent`` imports ``core`` and
``suites``; ``experiments`` and ``analysis`` may import anything below them. Every ``.py`` file
under a room's folder is parsed (its ``ast``, so imports inside functions count too), and each
import is resolved to the room it reaches: ``from dreamerbench.X... import``,
``from dreamerbench import X``, ``import dreamerbench.X`` and relative imports alike.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("core", "suites", "agent", "experiments", "analysis", "slurm")
# room -> rooms it must not import (the rule docs/architecture.md states).
FORBIDDEN = {
    "core": {"suites", "agent", "experiments", "analysis", "slurm"},
    "suites": {"agent", "experiments", "analysis"},
    "agent": {"experiments", "analysis"},
}


def imported_rooms(path: Path, room: str, root: Path) -> list[tuple[int, str]]:
    """The project rooms that the file ``path`` (inside ``root / room``) imports.

    Returns:
        ``(line, room)`` pairs, one per import statement and room it reaches.
    Raises:
        SyntaxError: the file does not parse.
    """
    # The file's package as a dotted name, e.g. ["dreamerbench", "suites", "dmc"] for a module in
    # suites/dmc/; relative imports climb from there.
    package = ["dreamerbench", room, *path.relative_to(root / room).parent.parts]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = base + (node.module.split(".") if node.module else [])
            else:
                module = node.module.split(".")
            # `from dreamerbench import agent` reaches agent; `from dreamerbench.agent import x`
            # reaches agent whatever x is.
            names = (
                [module + [alias.name] for alias in node.names] if len(module) == 1 else [module]
            )
        else:
            continue
        for name in names:
            if len(name) >= 2 and name[0] == "dreamerbench" and name[1] in ROOMS:
                found.append((node.lineno, name[1]))
    return found


def violations(root: Path) -> list[str]:
    """Every import that breaks the floors under ``root``, as ``file:line: room imports room``."""
    found = []
    for room, forbidden in FORBIDDEN.items():
        for path in sorted((root / room).rglob("*.py")):
            for line, target in imported_rooms(path, room, root):
                if target in forbidden:
                    where = path.relative_to(root)
                    found.append(f"{where}:{line}: {room} imports {target}")
    return found


def test_the_floors_hold():
    assert violations(ROOT) == []


def test_every_room_has_source():
    # A moved or renamed folder would make the scan above pass vacuously.
    for room in FORBIDDEN:
        assert list((ROOT / room).rglob("*.py")), room


@pytest.mark.parametrize(
    ("room", "source", "expected"),
    [
        ("core", "from dreamerbench.suites import get_suite\n", "core imports suites"),
        ("core", "import dreamerbench.agent.policy\n", "core imports agent"),
        ("suites", "def f():\n    from dreamerbench import agent\n", "suites imports agent"),
        ("suites", "from ..experiments import tracking\n", "suites imports experiments"),
        ("agent", "from .. import analysis\n", "agent imports analysis"),
        ("agent", "from dreamerbench.experiments.spec import Spec\n", "agent imports experiments"),
    ],
)
def test_a_bad_import_is_named(tmp_path, room, source, expected):
    for name in FORBIDDEN:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    bad = tmp_path / room / "bad_import.py"
    bad.write_text('"""A module that breaks the floors."""\n\n' + source)
    line = 3 + source.count("\n") - 1
    assert violations(tmp_path) == [f"{room}/bad_import.py:{line}: {expected}"]


def test_allowed_imports_pass(tmp_path):
    sources = {
        "core": "import numpy\nfrom . import files\n",
        "suites": "from dreamerbench.core import reader\nfrom .. import core\n",
        "agent": "from dreamerbench import core, suites\nfrom ..suites import base\n",
    }
    for room, source in sources.items():
        (tmp_path / room).mkdir()
        (tmp_path / room / "ok.py").write_text(source)
    assert violations(tmp_path) == []
