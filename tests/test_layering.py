"""Import contracts: the dependency rules of ARCHITECTURE.md ("Layout"), checked on every import
statement of the packages (module level and inside functions alike), so `make test` and CI fail
when a layer reaches where it must not.

    app ──► policy ──► robot.base      training ──► policy      evaluation ──► policy, training, robot
    robot imports none of policy / training / app / evaluation; policy none of training (the arrow
    runs the other way) / app;
    only app knows the UI (gradio); nothing imports evaluation.

Entry points (`python -m` modules) may wire any lower layer together; in `policy` those are
`policy/__main__.py` and the one home of a simulated episode's wiring, `policy/sim_episode.py`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "policy", "robot", "training", "evaluation")

# package -> top-level names (or dotted prefixes) its modules may never import
FORBIDDEN = {
    "robot": ("policy", "training", "app", "evaluation", "gradio", "gradio_client"),
    "policy": ("training", "app", "evaluation", "gradio", "gradio_client"),
    "training": ("app", "evaluation", "gradio", "gradio_client"),
    "app": ("evaluation",),
    "evaluation": ("app", "gradio", "gradio_client"),
}
# library modules of policy import only robot.base from robot
POLICY_ROBOT_ALLOWED = ("robot.base",)
POLICY_WIRING = {"policy/__main__.py", "policy/sim_episode.py"}


def _absolute(module: str | None, level: int, path: Path) -> str:
    """`from .x import y` in robot/sim/robot.py -> robot.sim.x (level 1 is the module's own package)."""
    if level == 0:
        return module or ""
    package = list(path.relative_to(ROOT).parts[:-1])
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file; `from X import y` also yields X.y."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = _absolute(node.module, node.level, path)
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names if a.name != "*"]
    return out


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations() -> list[str]:
    """One line per offending import statement."""
    found: dict[tuple[str, int], str] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for line, name in imports_of(path):
                bad = [p for p in FORBIDDEN[pkg] if _under(name, p)]
                if pkg == "policy" and rel not in POLICY_WIRING and _under(name, "robot") and name != "robot":
                    if not any(_under(name, ok) for ok in POLICY_ROBOT_ALLOWED):
                        bad.append("robot (only robot.base)")
                if bad:
                    found.setdefault((rel, line), f"{rel}:{line} imports {name} ({pkg} may not import {', '.join(bad)})")
    return sorted(found.values())


def test_the_code_keeps_the_import_contracts():
    assert violations() == []


@pytest.mark.parametrize("pkg, source, rule", [
    ("robot", "from policy.language import parse_actions\n", "robot may not import policy"),
    ("policy", "def f():\n    import gradio\n", "policy may not import gradio"),
    ("policy", "from robot.sim.robot import SimRobot\n", "robot (only robot.base)"),
    ("training", "from app.format import cm_short\n", "training may not import app"),
    ("app", "import evaluation.trials\n", "app may not import evaluation"),
    ("policy", "from robot import sim\n", "robot (only robot.base)"),
])
def test_a_forbidden_import_is_caught(tmp_path, monkeypatch, pkg, source, rule):
    """The checker itself can fail: a planted module breaking each kind of rule is reported."""
    import tests.test_layering as layering

    fake = tmp_path / pkg / "sub"
    fake.mkdir(parents=True)
    (fake / "planted.py").write_text(source)
    monkeypatch.setattr(layering, "ROOT", tmp_path)
    monkeypatch.setattr(layering, "PACKAGES", (pkg,))
    (v,) = layering.violations()
    assert v.startswith(f"{pkg}/sub/planted.py:") and rule in v


def test_relative_imports_resolve_to_their_package():
    names = {n for _, n in imports_of(ROOT / "robot" / "sim" / "robot.py")}
    assert "robot.sim.scene" in names and "robot.base" in names


def test_the_wiring_exemptions_name_real_files():
    assert all((ROOT / rel).is_file() for rel in POLICY_WIRING)
