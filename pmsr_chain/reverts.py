"""Turn revert data into `ContractRevertError` with the error's name, arguments and a readable message.

Three kinds of revert data are understood: the ABI's custom errors (matched by their 4-byte
selector), `Error(string)` from `require`/`revert("...")`, and `Panic(uint256)` from the checks the
compiler inserts (overflow, division by zero, array bounds and so on).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import eth_abi

from .abi import ContractAbi
from .errors import ContractRevertError

__all__ = ["PANIC_REASONS", "format_value", "decode_revert", "revert_error_from_data", "extract_revert_data"]

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
PANIC_SELECTOR = bytes.fromhex("4e487b71")

# Panic codes defined by the Solidity documentation ("Panic via assert and Error via require").
PANIC_REASONS: dict[int, str] = {
    0x00: "generic compiler panic",
    0x01: "assert failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "invalid storage byte array encoding",
    0x31: "pop on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised function pointer",
}


def format_value(value: Any) -> str:
    """Format one decoded argument for a message: hex for bytes, names for enums."""
    if isinstance(value, IntEnum):
        return value.name
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    return str(value)


def decode_revert(data: bytes, abi: ContractAbi | None) -> tuple[str | None, dict[str, Any]]:
    """Return `(error_name, arguments)` for revert data; `(None, {})` if nothing matches."""
    selector = bytes(data[:4])
    try:
        if selector == ERROR_STRING_SELECTOR:
            (reason,) = eth_abi.decode(["string"], bytes(data[4:]))
            return "Error", {"reason": reason}
        if selector == PANIC_SELECTOR:
            (code,) = eth_abi.decode(["uint256"], bytes(data[4:]))
            return "Panic", {"code": code, "reason": PANIC_REASONS.get(code, "unknown panic code")}
        if abi is not None:
            decoded = abi.decode_custom_error(data)
            if decoded is not None:
                return decoded.name, decoded.arguments
    except eth_abi.exceptions.DecodingError:
        return None, {}
    return None, {}


def revert_error_from_data(
    function: str, data: bytes, abi: ContractAbi | None, *, transaction_hash: str | None = None
) -> ContractRevertError:
    """Build the `ContractRevertError` for a call of `function` that reverted with `data`."""
    name, arguments = decode_revert(data, abi)
    if name == "Error":
        detail = f'Error("{arguments["reason"]}")'
    elif name == "Panic":
        detail = f"Panic(0x{arguments['code']:02x}: {arguments['reason']})"
    elif name is not None:
        detail = f"{name}(" + ", ".join(f"{key}={format_value(value)}" for key, value in arguments.items()) + ")"
    elif not data:
        detail = "no revert data (out of gas, a call to a missing function, or a revert without reason)"
    else:
        detail = f"unknown error with selector 0x{bytes(data[:4]).hex()} ({len(data)} bytes of revert data)"
    return ContractRevertError(
        f"{function} reverted: {detail}",
        function=function,
        error_name=name,
        arguments=arguments,
        data=bytes(data),
        transaction_hash=transaction_hash,
    )


def extract_revert_data(error_data: Any) -> bytes | None:
    """Find revert bytes in a JSON-RPC error's `data` field (a hex string, or an object holding one)."""
    if isinstance(error_data, str) and error_data.startswith("0x"):
        try:
            return bytes.fromhex(error_data[2:])
        except ValueError:
            return None
    if isinstance(error_data, dict):
        for key in ("data", "result", "returnData"):
            found = extract_revert_data(error_data.get(key))
            if found is not None:
                return found
    return None
