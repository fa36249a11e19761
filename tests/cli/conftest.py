"""Fixtures of the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment of one test: its own data directory and a passphrase."""
    return {"PMSR_DATA_DIR": str(tmp_path / "data"), "PMSR_PASSWORD": "test passphrase"}
