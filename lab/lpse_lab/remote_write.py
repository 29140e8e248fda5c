"""Prometheus remote-write request bodies, written out here (both formats are small): a
WriteRequest protobuf, snappy-compressed as one literal (valid snappy, just not smaller). The
national store's tests and benchmarks/national.py play sites with it, as a site's vmagent would."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

Series = tuple[Mapping[str, str], Sequence[tuple[float, int]]]  # labels, [(value, epoch ms)]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode(series: Iterable[Series]) -> bytes:
    """The body of one remote-write request: each series with its labels and samples."""
    proto = bytearray()
    for labels, samples in series:
        ts = b"".join(_field(1, _field(1, k.encode()) + _field(2, v.encode())) for k, v in sorted(labels.items()))
        ts += b"".join(_field(2, b"\x09" + struct.pack("<d", v) + b"\x10" + _varint(t)) for v, t in samples)
        proto += _field(1, ts)
    n = len(proto) - 1
    tag = bytes([n << 2]) if n < 60 else bytes([63 << 2]) + struct.pack("<I", n)
    return _varint(len(proto)) + tag + bytes(proto)
