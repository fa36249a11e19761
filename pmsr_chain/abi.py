"""ABI tables built from a compiled artifact: calldata encoding, output, error and event decoding.

Decoded values are converted to the Python mirrors in `pmsr_chain.types`: a tuple whose
`internalType` is `struct X.OwnerPolicy` becomes an `OwnerPolicy`, an enum becomes its `IntEnum`,
`bytesN` and `bytes` become `bytes`, arrays become tuples, addresses are checksummed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import eth_abi
from eth_utils import keccak, to_checksum_address

from .errors import ConfigurationError, InvalidInputError
from .types import ENUM_TYPES, STRUCT_TYPES

__all__ = [
    "abi_type",
    "snake_case",
    "from_abi_value",
    "DecodedError",
    "DecodedEvent",
    "ContractAbi",
]

_ARRAY_SUFFIX = re.compile(r"(\[\d*\])+$")


def abi_type(parameter: Mapping[str, Any]) -> str:
    """Return the canonical ABI type of a parameter, expanding tuples: `(uint96,uint64,...)[]`."""
    declared = parameter["type"]
    if not declared.startswith("tuple"):
        return str(declared)
    suffix = declared[len("tuple"):]
    inner = ",".join(abi_type(component) for component in parameter["components"])
    return f"({inner}){suffix}"


def snake_case(name: str) -> str:
    """Convert a Solidity camelCase name to snake_case (`datasetCommitment` -> `dataset_commitment`)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _type_name(parameter: Mapping[str, Any]) -> str | None:
    internal = parameter.get("internalType") or ""
    match = re.match(r"^(?:struct|enum)\s+(?:[\w]+\.)?(\w+)", internal)
    return match.group(1) if match else None


def from_abi_value(parameter: Mapping[str, Any], value: Any) -> Any:
    """Convert one decoded ABI value to its Python mirror (see the module docstring)."""
    declared: str = parameter["type"]
    array = _ARRAY_SUFFIX.search(declared)
    if array is not None:
        element = dict(parameter)
        last = re.search(r"\[\d*\]$", declared)
        assert last is not None
        element["type"] = declared[: last.start()]
        internal = parameter.get("internalType")
        if internal and internal.endswith("]"):
            element["internalType"] = internal[: internal.rindex("[")]
        return tuple(from_abi_value(element, item) for item in value)
    if declared == "tuple":
        struct_type = STRUCT_TYPES.get(_type_name(parameter) or "")
        if struct_type is not None:
            # The mirrors convert their own nested structs and enums from the raw decoded tuple.
            return struct_type.from_abi(value)
        return tuple(from_abi_value(component, item) for component, item in zip(parameter["components"], value))
    internal = parameter.get("internalType") or ""
    if internal.startswith("enum "):
        enum_type = ENUM_TYPES.get(_type_name(parameter) or "")
        return enum_type(value) if enum_type is not None else int(value)
    if declared == "address":
        return to_checksum_address(value)
    if declared.startswith("bytes"):
        return bytes(value)
    return value


def _to_abi_input(parameter: Mapping[str, Any], value: Any) -> Any:
    """Prepare a Python value for the encoder: dataclasses to tuples, hex strings to bytes."""
    if hasattr(value, "to_abi"):
        return value.to_abi()
    declared: str = parameter["type"]
    if declared.startswith("bytes") and isinstance(value, str):
        try:
            return bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            raise InvalidInputError(f"{parameter.get('name')} must be bytes or hex, got {value!r}") from None
    if _ARRAY_SUFFIX.search(declared) and isinstance(value, (list, tuple)):
        element = dict(parameter)
        element["type"] = declared[: declared.rindex("[")]
        return [_to_abi_input(element, item) for item in value]
    return value


@dataclass(frozen=True)
class DecodedError:
    """A decoded revert: the error name, its arguments by ABI name, and the raw data."""

    name: str | None
    arguments: dict[str, Any]
    data: bytes


@dataclass(frozen=True)
class DecodedEvent:
    """A decoded log: the event name and its arguments by ABI name, with the log's position."""

    name: str
    arguments: dict[str, Any]
    address: str
    block_number: int
    transaction_hash: str
    log_index: int


def _signature(item: Mapping[str, Any]) -> str:
    return f"{item['name']}({','.join(abi_type(p) for p in item.get('inputs', []))})"


@dataclass(frozen=True)
class _FunctionEntry:
    abi: Mapping[str, Any]
    selector: bytes
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]


@dataclass(frozen=True)
class _ErrorEntry:
    abi: Mapping[str, Any]
    types: tuple[str, ...]


@dataclass(frozen=True)
class _EventEntry:
    abi: Mapping[str, Any]
    topic: bytes
    indexed: tuple[Mapping[str, Any], ...]
    data_inputs: tuple[Mapping[str, Any], ...]
    data_types: tuple[str, ...]


class ContractAbi:
    """Lookup tables for one contract's ABI: functions by name, errors by selector, events by topic."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self.abi = list(abi)
        self.functions: dict[str, _FunctionEntry] = {}
        self.errors: dict[bytes, _ErrorEntry] = {}
        self.events: dict[str, _EventEntry] = {}
        self._events_by_topic: dict[bytes, _EventEntry] = {}
        self.constructor: Mapping[str, Any] | None = None
        for item in self.abi:
            kind = item.get("type")
            if kind == "function":
                self._add_function(item)
            elif kind == "error":
                selector = keccak(text=_signature(item))[:4]
                self.errors[selector] = _ErrorEntry(item, tuple(abi_type(p) for p in item["inputs"]))
            elif kind == "event":
                self._add_event(item)
            elif kind == "constructor":
                self.constructor = item

    def _add_function(self, item: Mapping[str, Any]) -> None:
        name = item["name"]
        if name in self.functions:
            raise ConfigurationError(f"function {name} is overloaded; ContractAbi supports one function per name")
        self.functions[name] = _FunctionEntry(
            abi=item,
            selector=keccak(text=_signature(item))[:4],
            input_types=tuple(abi_type(p) for p in item.get("inputs", [])),
            output_types=tuple(abi_type(p) for p in item.get("outputs", [])),
        )

    def _add_event(self, item: Mapping[str, Any]) -> None:
        inputs = item.get("inputs", [])
        entry = _EventEntry(
            abi=item,
            topic=keccak(text=_signature(item)),
            indexed=tuple(p for p in inputs if p.get("indexed")),
            data_inputs=tuple(p for p in inputs if not p.get("indexed")),
            data_types=tuple(abi_type(p) for p in inputs if not p.get("indexed")),
        )
        self.events[item["name"]] = entry
        self._events_by_topic[entry.topic] = entry

    # ----------------------------------------------------------------------------------------------
    # Functions

    def _function(self, name: str) -> _FunctionEntry:
        try:
            return self.functions[name]
        except KeyError:
            raise ConfigurationError(f"the ABI has no function {name!r}; recompile or check the name") from None

    def encode_call(self, name: str, arguments: Sequence[Any]) -> bytes:
        """Return the calldata (selector and encoded arguments) for function `name`."""
        entry = self._function(name)
        inputs = entry.abi.get("inputs", [])
        if len(arguments) != len(inputs):
            raise InvalidInputError(f"{name} takes {len(inputs)} arguments, got {len(arguments)}")
        prepared = [_to_abi_input(p, v) for p, v in zip(inputs, arguments)]
        try:
            return entry.selector + eth_abi.encode(list(entry.input_types), prepared)
        except (eth_abi.exceptions.EncodingError, TypeError, ValueError) as error:
            raise InvalidInputError(f"cannot encode arguments for {name}: {error}") from error

    def decode_output(self, name: str, data: bytes) -> list[Any]:
        """Decode the return data of `name` into converted values, one per output."""
        entry = self._function(name)
        values = eth_abi.decode(list(entry.output_types), data)
        return [from_abi_value(p, v) for p, v in zip(entry.abi.get("outputs", []), values)]

    # ----------------------------------------------------------------------------------------------
    # Errors

    def decode_custom_error(self, data: bytes) -> DecodedError | None:
        """Decode revert data against the ABI's custom errors; `None` if no selector matches."""
        entry = self.errors.get(bytes(data[:4]))
        if entry is None:
            return None
        values = eth_abi.decode(list(entry.types), bytes(data[4:]))
        arguments = {
            parameter["name"] or f"arg{index}": from_abi_value(parameter, value)
            for index, (parameter, value) in enumerate(zip(entry.abi["inputs"], values))
        }
        return DecodedError(name=entry.abi["name"], arguments=arguments, data=bytes(data))

    # ----------------------------------------------------------------------------------------------
    # Events

    def event_topic(self, name: str) -> bytes:
        try:
            return self.events[name].topic
        except KeyError:
            raise ConfigurationError(f"the ABI has no event {name!r}; known: {', '.join(sorted(self.events))}") from None

    def decode_log(self, log: Mapping[str, Any]) -> DecodedEvent | None:
        """Decode a raw `eth_getLogs`/receipt log; `None` for a topic not in this ABI."""
        topics = [_to_bytes(topic) for topic in log["topics"]]
        if not topics:
            return None
        entry = self._events_by_topic.get(topics[0])
        if entry is None:
            return None
        arguments: dict[str, Any] = {}
        for parameter, topic in zip(entry.indexed, topics[1:]):
            # Indexed dynamic values (bytes, arrays, structs) are stored as their keccak256 only.
            if parameter["type"] in ("string", "bytes") or parameter["type"].startswith("tuple") or "[" in parameter["type"]:
                arguments[parameter["name"]] = topic
            else:
                arguments[parameter["name"]] = from_abi_value(parameter, eth_abi.decode([abi_type(parameter)], topic)[0])
        values = eth_abi.decode(list(entry.data_types), _to_bytes(log["data"]))
        for parameter, value in zip(entry.data_inputs, values):
            arguments[parameter["name"]] = from_abi_value(parameter, value)
        ordered = {p["name"]: arguments[p["name"]] for p in entry.abi["inputs"]}
        return DecodedEvent(
            name=entry.abi["name"],
            arguments=ordered,
            address=to_checksum_address(log["address"]),
            block_number=_to_int(log["blockNumber"]),
            transaction_hash=_to_hex(log["transactionHash"]),
            log_index=_to_int(log["logIndex"]),
        )


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


def _to_int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def _to_hex(value: Any) -> str:
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()
