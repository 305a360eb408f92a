"""Minimal AEDAT 4.0 event-file writer (uncompressed), readable by ``aedat`` / ``tonic.io.read_aedat4``.

Why it exists: N-Omniglot ships its recordings as AEDAT4 files written by iniVation's DV software.
The reader side goes through tonic (``tonic.io.read_aedat4``, backed by the ``aedat`` package); this
writer produces files in the same format so that tests can build a tiny N-Omniglot tree in the real
layout, and users can export event data for DV's viewer.

Format (as the ``aedat`` decoder parses it): the magic line ``#!AER-DAT4.0\\r\\n``; a little-endian
u32 length and an ``IOHE`` flatbuffer (``Ioheader{compression, file_data_position, description}``,
the description being DV's XML stream list with ``typeIdentifier = EVTS`` and ``sizeX``/``sizeY``);
then packets, each ``u32 stream id``, ``u32 length`` and a size-prefixed ``EVTS`` flatbuffer
``EventPacket{elements: [Event{t: int64, x: int16, y: int16, on: bool}]}`` (16-byte structs).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

__all__ = ["write_aedat4_events"]

_MAGIC = b"#!AER-DAT4.0\r\n"
_EVENT = np.dtype({"names": ["t", "x", "y", "on"], "formats": ["<i8", "<i2", "<i2", "u1"], "itemsize": 16})


def _description(width: int, height: int) -> bytes:
    return (
        '<dv version="2.0"><node name="outInfo" path="/outInfo/">'
        '<node name="0" path="/outInfo/0/">'
        '<attr key="compression" type="string">NONE</attr>'
        '<attr key="originalModuleName" type="string">spikesweep</attr>'
        '<attr key="originalOutputName" type="string">events</attr>'
        '<attr key="typeDescription" type="string">Array of events (polarity ON/OFF).</attr>'
        '<attr key="typeIdentifier" type="string">EVTS</attr>'
        '<node name="info" path="/outInfo/0/info/">'
        f'<attr key="sizeX" type="int">{width}</attr><attr key="sizeY" type="int">{height}</attr>'
        "</node></node></node></dv>"
    ).encode()


def _ioheader(description: bytes) -> bytes:
    # [root u32][ident 4][vtable: 10 bytes + 2 pad][table: soffset i32, uoffset u32][string]
    vtable = struct.pack("<HHHHH", 10, 8, 0, 0, 4) + b"\0\0"  # only field 2 (description) is set
    table_pos = 8 + len(vtable)
    string_pos = table_pos + 8
    table = struct.pack("<iI", table_pos - 8, string_pos - (table_pos + 4))
    string = struct.pack("<I", len(description)) + description + b"\0"
    string += b"\0" * (-len(string) % 4)
    return struct.pack("<I", table_pos) + b"IOHE" + vtable + table + string


def _event_packet(elements: np.ndarray) -> bytes:
    # Size-prefixed, as DV writes packets: [size u32] then, with offsets relative to the byte after
    # the prefix: [root u32][ident 4][vtable 6 + 2 pad][table 8][vector len u32][16-byte structs];
    # the structs land on an 8-byte boundary of the whole packet.
    vtable = struct.pack("<HHH", 6, 8, 4) + b"\0\0"
    table_pos = 16
    vector_pos = 24
    table = struct.pack("<iI", table_pos - 8, vector_pos - (table_pos + 4))
    body = struct.pack("<I", table_pos) + b"EVTS" + vtable + table
    assert len(body) == vector_pos
    body += struct.pack("<I", len(elements)) + elements.tobytes()
    return struct.pack("<I", len(body)) + body


def write_aedat4_events(
    path: str | Path,
    t: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    sensor_size: tuple[int, int] = (346, 260),
    packet_size: int = 4096,
) -> None:
    """Write events (``t`` in µs, ``p`` 1 = ON) as an uncompressed AEDAT4 file with one event stream."""
    elements = np.zeros(len(t), dtype=_EVENT)
    elements["t"], elements["x"], elements["y"], elements["on"] = t, x, y, np.asarray(p).astype(bool)
    with open(path, "wb") as handle:
        header = _ioheader(_description(*sensor_size))
        handle.write(_MAGIC + struct.pack("<I", len(header)) + header)
        for start in range(0, max(len(elements), 1), packet_size):
            packet = _event_packet(elements[start : start + packet_size])
            handle.write(struct.pack("<II", 0, len(packet)) + packet)
