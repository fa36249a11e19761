"""Locations of the repository's sources and of the toolchain binaries installed by `npm ci`."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from .errors import ConfigurationError

__all__ = ["repository_root", "find_anvil", "find_solc"]

# Environment variables that override the default locations, for installs outside the repository.
ROOT_ENV = "PMSR_ROOT"
ANVIL_ENV = "PMSR_ANVIL"
SOLC_ENV = "PMSR_SOLC"


def repository_root() -> Path:
    """Return the repository root: `$PMSR_ROOT`, or the parent of the `pmsr_chain` package."""
    configured = os.environ.get(ROOT_ENV)
    if configured:
        return Path(configured).resolve()
    return Path(__file__).resolve().parent.parent


def _platform_package_name() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    system = {"linux": "linux", "darwin": "darwin", "win32": "win32"}.get(sys.platform, sys.platform)
    return f"anvil-{system}-{arch}"


def find_anvil(root: Path | None = None) -> Path:
    """Locate the Anvil binary: `$PMSR_ANVIL`, the npm platform package, then `node_modules/.bin`.

    The platform package (`@foundry-rs/anvil-<os>-<arch>`) contains the native binary; the `.bin`
    entry is a Node.js launcher that works too but adds Node's start-up time.
    """
    configured = os.environ.get(ANVIL_ENV)
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ConfigurationError(f"{ANVIL_ENV}={configured!r} is not a file; point it at an anvil binary")
        return path
    root = root or repository_root()
    executable = "anvil.exe" if sys.platform == "win32" else "anvil"
    candidates = [
        root / "node_modules" / "@foundry-rs" / _platform_package_name() / "bin" / executable,
        root / "node_modules" / ".bin" / "anvil",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise ConfigurationError(f"anvil not found (searched {searched}); run `npm ci` in {root} or set {ANVIL_ENV}")


def find_solc(root: Path | None = None) -> Path:
    """Locate the Solidity compiler: `$PMSR_SOLC`, else the repository's `scripts/solc` shim."""
    configured = os.environ.get(SOLC_ENV)
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ConfigurationError(f"{SOLC_ENV}={configured!r} is not a file; point it at a solc executable")
        return path
    root = root or repository_root()
    shim = root / "scripts" / "solc"
    if not shim.is_file():
        raise ConfigurationError(f"solc shim not found at {shim}; set {SOLC_ENV} to a solc executable")
    if not (root / "node_modules" / "solc").is_dir():
        raise ConfigurationError(f"the npm package solc is missing under {root / 'node_modules'}; run `npm ci` in {root}")
    return shim
