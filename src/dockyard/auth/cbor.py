"""A strict decoder for the subset of CBOR (RFC 8949) that WebAuthn uses: attestation objects and COSE keys.

Definite lengths only (WebAuthn requires CTAP2 canonical encoding), nesting at most 16 deep, no floats.
"""

from __future__ import annotations

import struct
from typing import Any

from dockyard.errors import InvalidError

_MAX_DEPTH = 16


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise InvalidError("CBOR data ends too early")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def argument(self, info: int) -> int:
        if info < 24:
            return info
        sizes = {24: 1, 25: 2, 26: 4, 27: 8}
        if info not in sizes:
            raise InvalidError("indefinite-length or reserved CBOR items are not accepted")
        return int.from_bytes(self.take(sizes[info]), "big")

    def item(self, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise InvalidError("CBOR data is nested too deeply")
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            return self._simple(info)
        value = self.argument(info)
        if major == 0:
            return value
        if major == 1:
            return -1 - value
        if major == 2:
            return self.take(value)
        if major == 3:
            try:
                return self.take(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidError("CBOR text is not UTF-8") from exc
        if major == 4:
            return [self.item(depth + 1) for _ in range(value)]
        if major == 5:
            result: dict[Any, Any] = {}
            for _ in range(value):
                key = self.item(depth + 1)
                if isinstance(key, list | dict):
                    raise InvalidError("CBOR map keys must be plain values")
                result[key] = self.item(depth + 1)
            return result
        return self.item(depth + 1)  # major 6: a tag; the tagged value is what matters here

    def _simple(self, info: int) -> Any:
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):
            return None
        if info == 25:
            return _half_float(self.take(2))
        if info == 26:
            return struct.unpack(">f", self.take(4))[0]
        if info == 27:
            return struct.unpack(">d", self.take(8))[0]
        raise InvalidError("unsupported CBOR simple value")


def _half_float(raw: bytes) -> float:
    value: float = struct.unpack(">e", raw)[0]
    return value


def decode_first(data: bytes) -> tuple[Any, int]:
    """The first item in ``data`` and how many bytes it took (authenticator data carries a COSE key
    followed by extensions)."""
    reader = _Reader(data)
    return reader.item(), reader.pos


def decode(data: bytes) -> Any:
    """The single item ``data`` holds; trailing bytes are an error."""
    value, used = decode_first(data)
    if used != len(data):
        raise InvalidError("CBOR data has trailing bytes")
    return value
