"""Compile the Solidity sources into deterministic artifacts with py-solc-x.

Every `contracts/**/*.sol` outside `contracts/test/` is compiled in one standard-JSON run with the
optimizer settings of `foundry.toml`, so Python and forge build the same code. Each contract gets
`build/artifacts/<Name>.json` (ABI and bytecode, sorted keys, no timestamps). A content hash of the
inputs (sources, compiler version, settings) is stored beside the artifacts, and a later call
recompiles only when that hash changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import solcx
import solcx.exceptions

from ._paths import find_solc, repository_root
from .errors import CompilationError, ConfigurationError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no fcntl; builds there are not locked
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ARTIFACT_FORMAT",
    "CompilerSettings",
    "ContractArtifact",
    "ArtifactSet",
    "read_compiler_settings",
    "collect_sources",
    "compile_contracts",
    "load_artifact",
    "compute_artifact_hash",
]

logger = logging.getLogger(__name__)

# Bumped when the artifact layout changes, so old builds are rebuilt.
ARTIFACT_FORMAT = 1
INPUTS_FILE = "inputs.json"
EXCLUDED_SOURCE_DIR = Path("contracts") / "test"


@dataclass(frozen=True)
class CompilerSettings:
    """Optimizer and EVM settings, read from `foundry.toml` so forge and Python agree."""

    optimizer: bool = True
    optimizer_runs: int = 200
    evm_version: str = "cancun"
    via_ir: bool = False

    def to_standard_json(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "optimizer": {"enabled": self.optimizer, "runs": self.optimizer_runs},
            "evmVersion": self.evm_version,
            "outputSelection": {
                "*": {
                    "*": [
                        "abi",
                        "evm.bytecode.object",
                        "evm.deployedBytecode.object",
                        "evm.deployedBytecode.immutableReferences",
                    ]
                }
            },
        }
        if self.via_ir:
            settings["viaIR"] = True
        return settings


@dataclass(frozen=True)
class ContractArtifact:
    """One compiled contract: ABI, creation and runtime bytecode, and the hash that names them."""

    name: str
    source: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes
    # (start, length) byte ranges of the runtime code that the constructor fills with immutables.
    immutable_ranges: tuple[tuple[int, int], ...]
    compiler_version: str
    artifact_hash: str
    path: Path

    @property
    def is_deployable(self) -> bool:
        return len(self.bytecode) > 0

    @classmethod
    def from_json(cls, document: Mapping[str, Any], path: Path) -> ContractArtifact:
        return cls(
            name=document["contractName"],
            source=document["sourceName"],
            abi=document["abi"],
            bytecode=bytes.fromhex(document["bytecode"].removeprefix("0x")),
            deployed_bytecode=bytes.fromhex(document["deployedBytecode"].removeprefix("0x")),
            immutable_ranges=tuple((int(s), int(n)) for s, n in document["immutableRanges"]),
            compiler_version=document["compiler"]["version"],
            artifact_hash=document["artifactHash"],
            path=path,
        )


@dataclass(frozen=True)
class ArtifactSet:
    """The artifacts of one build, by contract name."""

    directory: Path
    inputs_hash: str
    rebuilt: bool
    contracts: Mapping[str, ContractArtifact] = field(default_factory=dict)

    def __getitem__(self, name: str) -> ContractArtifact:
        try:
            return self.contracts[name]
        except KeyError:
            known = ", ".join(sorted(self.contracts)) or "none"
            raise ConfigurationError(f"no compiled contract named {name!r} (compiled: {known})") from None


def compute_artifact_hash(abi: list[dict[str, Any]], bytecode_hex: str, deployed_bytecode_hex: str) -> str:
    """Return `0x` + SHA-256 of the canonical JSON of the ABI and both bytecodes.

    The hash identifies what a deployment runs; compiler settings that produce the same code
    produce the same hash.
    """
    canonical = json.dumps(
        {"abi": abi, "bytecode": bytecode_hex, "deployedBytecode": deployed_bytecode_hex},
        sort_keys=True,
        separators=(",", ":"),
    )
    return "0x" + hashlib.sha256(canonical.encode()).hexdigest()


def read_compiler_settings(root: Path | None = None) -> CompilerSettings:
    """Read `[profile.default]` of `foundry.toml`; missing keys keep forge's own defaults."""
    root = root or repository_root()
    config_path = root / "foundry.toml"
    if not config_path.is_file():
        return CompilerSettings()
    try:
        profile = tomllib.loads(config_path.read_text()).get("profile", {}).get("default", {})
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{config_path} is not valid TOML: {error}; fix the file") from error
    return CompilerSettings(
        optimizer=bool(profile.get("optimizer", True)),
        optimizer_runs=int(profile.get("optimizer_runs", 200)),
        evm_version=str(profile.get("evm_version", "cancun")),
        via_ir=bool(profile.get("via_ir", False)),
    )


def collect_sources(root: Path | None = None) -> dict[str, str]:
    """Return every `contracts/**/*.sol` outside `contracts/test/`, keyed by repository-relative path."""
    root = root or repository_root()
    contracts_dir = root / "contracts"
    if not contracts_dir.is_dir():
        raise ConfigurationError(f"no contracts directory at {contracts_dir}")
    sources: dict[str, str] = {}
    for path in sorted(contracts_dir.rglob("*.sol")):
        relative = path.relative_to(root)
        if relative.is_relative_to(EXCLUDED_SOURCE_DIR):
            continue
        sources[relative.as_posix()] = path.read_text(encoding="utf-8")
    if not sources:
        raise ConfigurationError(f"no Solidity sources found under {contracts_dir}")
    return sources


_version_cache: dict[tuple[str, int], str] = {}


def _compiler_version(solc_path: Path) -> str:
    # Running the shim costs about a second of Node.js start-up, so the version is cached per process
    # for as long as the executable file is unchanged.
    key = (str(solc_path.resolve()), solc_path.stat().st_mtime_ns)
    if key not in _version_cache:
        _version_cache[key] = _read_compiler_version(solc_path)
    return _version_cache[key]


def _read_compiler_version(solc_path: Path) -> str:
    try:
        output = subprocess.run(
            [str(solc_path), "--version"], capture_output=True, text=True, check=True, timeout=120
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise CompilationError(f"`{solc_path} --version` failed: {error}; check the solc install") from error
    for line in output.splitlines():
        if line.startswith("Version:"):
            return line.removeprefix("Version:").strip()
    raise CompilationError(f"`{solc_path} --version` printed no version line: {output!r}")


def _inputs_hash(sources: Mapping[str, str], compiler_version: str, settings: CompilerSettings) -> str:
    document = {
        "format": ARTIFACT_FORMAT,
        "compiler": compiler_version,
        "settings": settings.to_standard_json(),
        "sources": {name: hashlib.sha256(text.encode()).hexdigest() for name, text in sources.items()},
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return "0x" + hashlib.sha256(canonical.encode()).hexdigest()


def _dump_json(document: Any) -> bytes:
    return (json.dumps(document, sort_keys=True, indent=2) + "\n").encode()


def _write_atomically(path: Path, content: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(content)
        temporary = Path(handle.name)
    os.replace(temporary, path)


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on the artifacts directory so parallel processes build once."""
    directory.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load_existing(directory: Path, inputs_hash: str) -> dict[str, ContractArtifact] | None:
    inputs_path = directory / INPUTS_FILE
    if not inputs_path.is_file():
        return None
    try:
        recorded = json.loads(inputs_path.read_text())
    except json.JSONDecodeError:
        return None
    if recorded.get("inputsHash") != inputs_hash:
        return None
    artifacts: dict[str, ContractArtifact] = {}
    for name in recorded.get("contracts", []):
        path = directory / f"{name}.json"
        if not path.is_file():
            return None
        try:
            artifacts[name] = ContractArtifact.from_json(json.loads(path.read_text()), path)
        except (json.JSONDecodeError, KeyError, ValueError):
            return None
    return artifacts


def _immutable_ranges(references: Mapping[str, Any]) -> list[list[int]]:
    ranges = {(int(entry["start"]), int(entry["length"])) for entries in references.values() for entry in entries}
    return [list(item) for item in sorted(ranges)]


def _run_compiler(
    sources: Mapping[str, str], settings: CompilerSettings, solc_path: Path, root: Path
) -> dict[str, Any]:
    standard_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": settings.to_standard_json(),
    }
    try:
        output = solcx.compile_standard(standard_input, solc_binary=solc_path, base_path=root, allow_paths=[root])
    except solcx.exceptions.SolcError as error:
        raise CompilationError(f"solc failed on {len(sources)} sources:\n{_summarise(error.message)}") from error
    for entry in output.get("errors", []):
        if entry.get("severity") == "warning":
            logger.debug("solc warning: %s", entry.get("formattedMessage", entry.get("message")))
    return output


def _summarise(message: str, max_lines: int = 40) -> str:
    """Keep the first lines of the compiler's messages; missing-implementation notes run to pages."""
    lines = message.splitlines()
    if len(lines) <= max_lines:
        return message
    return "\n".join(lines[:max_lines] + [f"... {len(lines) - max_lines} more lines"])


def _build(
    directory: Path, sources: Mapping[str, str], settings: CompilerSettings, solc_path: Path,
    compiler_version: str, inputs_hash: str, root: Path,
) -> dict[str, ContractArtifact]:
    logger.info("compiling %d Solidity sources with %s", len(sources), compiler_version)
    output = _run_compiler(sources, settings, solc_path, root)
    documents: dict[str, dict[str, Any]] = {}
    for source_name, contracts in sorted(output.get("contracts", {}).items()):
        for contract_name, compiled in sorted(contracts.items()):
            if contract_name in documents:
                other = documents[contract_name]["sourceName"]
                raise CompilationError(
                    f"contract name {contract_name!r} is defined in both {other} and {source_name}; "
                    "rename one, artifacts are stored by contract name"
                )
            bytecode = "0x" + compiled["evm"]["bytecode"]["object"]
            deployed = "0x" + compiled["evm"]["deployedBytecode"]["object"]
            references = compiled["evm"]["deployedBytecode"].get("immutableReferences", {})
            documents[contract_name] = {
                "contractName": contract_name,
                "sourceName": source_name,
                "abi": compiled["abi"],
                "bytecode": bytecode,
                "deployedBytecode": deployed,
                "immutableRanges": _immutable_ranges(references),
                "compiler": {"version": compiler_version, "settings": settings.to_standard_json()},
                "artifactHash": compute_artifact_hash(compiled["abi"], bytecode, deployed),
            }

    previous: list[str] = []
    inputs_path = directory / INPUTS_FILE
    if inputs_path.is_file():
        with contextlib.suppress(json.JSONDecodeError, OSError):
            previous = list(json.loads(inputs_path.read_text()).get("contracts", []))
    for stale in set(previous) - set(documents):
        (directory / f"{stale}.json").unlink(missing_ok=True)

    artifacts: dict[str, ContractArtifact] = {}
    for name, document in documents.items():
        path = directory / f"{name}.json"
        _write_atomically(path, _dump_json(document))
        artifacts[name] = ContractArtifact.from_json(document, path)
    # Written last: an interrupted build leaves no inputs record that claims it finished.
    _write_atomically(inputs_path, _dump_json({"inputsHash": inputs_hash, "contracts": sorted(documents)}))
    return artifacts


def compile_contracts(
    root: Path | None = None, *, artifacts_dir: Path | None = None, force: bool = False
) -> ArtifactSet:
    """Compile the contracts when their inputs changed, and return every artifact.

    `artifacts_dir` defaults to `<root>/build/artifacts`. `force=True` recompiles even when the
    stored inputs hash matches.
    """
    root = (root or repository_root()).resolve()
    directory = artifacts_dir or root / "build" / "artifacts"
    sources = collect_sources(root)
    settings = read_compiler_settings(root)
    solc_path = find_solc(root)
    compiler_version = _compiler_version(solc_path)
    inputs_hash = _inputs_hash(sources, compiler_version, settings)

    with _build_lock(directory):
        existing = None if force else _load_existing(directory, inputs_hash)
        if existing is not None:
            logger.debug("artifacts in %s are up to date (inputs %s)", directory, inputs_hash)
            return ArtifactSet(directory=directory, inputs_hash=inputs_hash, rebuilt=False, contracts=existing)
        artifacts = _build(directory, sources, settings, solc_path, compiler_version, inputs_hash, root)
    logger.info("wrote %d artifacts to %s", len(artifacts), directory)
    return ArtifactSet(directory=directory, inputs_hash=inputs_hash, rebuilt=True, contracts=artifacts)


def load_artifact(name: str, root: Path | None = None) -> ContractArtifact:
    """Return the artifact of contract `name`, compiling first when the sources changed."""
    return compile_contracts(root)[name]
