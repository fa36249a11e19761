"""The public surface of pmsr_chain, and its place below offchain_workers in the import order."""

from __future__ import annotations

import subprocess
import sys

import pmsr_chain
from pmsr_chain._paths import repository_root


def test_all_names_resolve() -> None:
    missing = [name for name in pmsr_chain.__all__ if not hasattr(pmsr_chain, name)]
    assert missing == []


def test_does_not_import_offchain_workers() -> None:
    code = (
        "import importlib, pkgutil, sys, pmsr_chain\n"
        "for module in pkgutil.iter_modules(pmsr_chain.__path__):\n"
        "    importlib.import_module('pmsr_chain.' + module.name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('offchain_workers')))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repository_root()
    ).stdout
    assert output.strip() == "[]"
