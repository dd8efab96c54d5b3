"""The house rules that CI keeps (issue 43): the import contracts name every module, a tab is one module that no other
tab imports, and no module grows past 400 lines. ``lint-imports`` checks the contracts themselves (``.ci/run``)."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+ (CI's); 3.10 reads the contracts only through lint-imports


ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "recon_demo"
MAX_LINES = 400


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    return {c["name"].split(":")[0]: c for c in config}


def _names(layers: list[str]) -> set[str]:
    return {name.strip() for layer in layers for name in layer.split("|")}


def _modules(folder: Path) -> set[str]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in folder.glob("*.py") if p.name != "__init__.py"}


def test_the_layers_name_every_package_and_module_of_the_core():
    named = _names(_contracts()["layers"]["layers"])
    tops = {f"recon_demo.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    tops |= {f"recon_demo.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert tops - named == set()  # a new module or package takes its place in a layer


def test_the_lab_contract_names_every_lab_module():
    assert _modules(PACKAGE / "lab") - _names(_contracts()["inside the lab"]["layers"]) == set()


def test_every_tab_is_in_the_contract_that_keeps_tabs_apart():
    tabs = {m for m in _modules(PACKAGE / "ui") if not m.rsplit(".", 1)[1].startswith("_") and not m.endswith(".queue")}
    assert tabs - set(_contracts()["one module per tab"]["modules"]) == set()


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
