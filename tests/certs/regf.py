"""A minimal registry hive (REGF) writer, so hive reading is tested on real hive files.

It writes what a hive needs and no more: the 4 KiB base block (with its XOR checksum), one
hive bin, and ``nk`` (key), ``lf`` (subkey list), value-list, ``vk`` (value) and data cells.
Security (``sk``) cells, class names and big-data (``db``) values are left out: regipy does
not need the first two, and certificates are far below the 16 KiB that needs the third.
Layout from the public REGF format description (base block, hbin, cells of negative size).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

BASE_BLOCK = 4096
HBIN_HEADER = 32
BIG_DATA = 16344  # values above this need db cells, which this writer does not make
NO_OFFSET = 0xFFFFFFFF
FILETIME_2024 = 133_485_408_000_000_000  # 2024-01-01T00:00:00Z

KEY_HIVE_ENTRY = 0x0004
KEY_NO_DELETE = 0x0008
KEY_COMP_NAME = 0x0020
VALUE_COMP_NAME = 0x0001


@dataclass
class HiveKey:
    """A key to write: its name, values ``(name, REG_* type, data)`` and subkeys."""

    name: str
    values: list[tuple[str, int, bytes]] = field(default_factory=list)
    subkeys: list[HiveKey] = field(default_factory=list)

    def child(self, name: str) -> HiveKey:
        """The subkey called ``name`` (any case), made if missing."""
        for sub in self.subkeys:
            if sub.name.casefold() == name.casefold():
                return sub
        made = HiveKey(name)
        self.subkeys.append(made)
        return made

    def at(self, path: str) -> HiveKey:
        """The key at a backslash path below this one, made if missing."""
        key = self
        for part in path.split("\\"):
            key = key.child(part)
        return key


class _Cells:
    """Cells of one hive bin; offsets count from the start of the hive bins (after 4 KiB)."""

    def __init__(self) -> None:
        self.data = bytearray(b"\x00" * HBIN_HEADER)

    def alloc(self, payload: bytes) -> int:
        offset = len(self.data)
        size = (4 + len(payload) + 7) // 8 * 8
        self.data += struct.pack("<i", -size) + payload + b"\x00" * (size - 4 - len(payload))
        return offset

    def patch(self, offset: int, payload: bytes) -> None:
        self.data[offset + 4 : offset + 4 + len(payload)] = payload


def _name_bytes(name: str) -> tuple[bytes, bool]:
    if name.isascii():
        return name.encode("ascii"), True
    return name.encode("utf-16-le"), False


def _write_value(cells: _Cells, name: str, value_type: int, data: bytes) -> int:
    if len(data) > BIG_DATA:
        raise ValueError(f"value {name!r}: {len(data)} bytes needs big-data cells (not written)")
    if len(data) <= 4:  # small data lives in the offset field itself
        size, data_offset = len(data) | 0x80000000, int.from_bytes(data.ljust(4, b"\x00"), "little")
    else:
        size, data_offset = len(data), cells.alloc(data)
    raw_name, ascii_name = _name_bytes(name)
    flags = VALUE_COMP_NAME if ascii_name and raw_name else 0
    head = struct.pack("<2sHIIIHH", b"vk", len(raw_name), size, data_offset, value_type, flags, 0)
    return cells.alloc(head + raw_name)


def _nk(key: HiveKey, parent: int, subkey_list: int, value_list: int, is_root: bool) -> bytes:
    raw_name, ascii_name = _name_bytes(key.name)
    flags = (KEY_COMP_NAME if ascii_name else 0) | (
        KEY_HIVE_ENTRY | KEY_NO_DELETE if is_root else 0
    )
    longest_sub = max((len(_name_bytes(s.name)[0]) for s in key.subkeys), default=0)
    longest_name = max((len(n) * 2 for n, _, _ in key.values), default=0)
    longest_data = max((len(d) for _, _, d in key.values), default=0)
    head = struct.pack(
        "<2sHQIIIIIIIIIIIIIIIHH",
        b"nk",
        flags,
        FILETIME_2024,
        0,  # access bits
        parent,
        len(key.subkeys),
        0,  # volatile subkeys
        subkey_list,
        NO_OFFSET,
        len(key.values),
        value_list,
        NO_OFFSET,  # security cell: none
        NO_OFFSET,  # class name: none
        longest_sub,
        0,
        longest_name,
        longest_data,
        0,  # work var
        len(raw_name),
        0,  # class name length
    )
    return head + raw_name


def _write_key(cells: _Cells, key: HiveKey, parent: int, is_root: bool) -> int:
    offset = cells.alloc(_nk(key, parent, NO_OFFSET, NO_OFFSET, is_root))
    value_offsets = [_write_value(cells, *value) for value in key.values]
    value_list = (
        cells.alloc(struct.pack(f"<{len(value_offsets)}I", *value_offsets))
        if value_offsets
        else NO_OFFSET
    )
    children = sorted(key.subkeys, key=lambda k: k.name.upper())  # lf lists are sorted
    child_offsets = [_write_key(cells, child, offset, False) for child in children]
    subkey_list = NO_OFFSET
    if children:
        elements = b"".join(
            struct.pack("<I4s", off, _name_bytes(child.name)[0][:4].ljust(4, b"\x00"))
            for off, child in zip(child_offsets, children, strict=True)
        )
        subkey_list = cells.alloc(struct.pack("<2sH", b"lf", len(children)) + elements)
    cells.patch(offset, _nk(key, parent, subkey_list, value_list, is_root))
    return offset


def _base_block(root_offset: int, bins_size: int, file_name: str) -> bytes:
    head = struct.pack(
        "<4sIIQIIIIIII",
        b"regf",
        1,  # primary sequence number
        1,  # secondary: equal means the hive was written completely
        FILETIME_2024,
        1,  # major version
        5,  # minor version
        0,  # primary file
        1,  # direct memory load format
        root_offset,
        bins_size,
        1,  # clustering factor
    )
    head += file_name.encode("utf-16-le")[:64].ljust(64, b"\x00")
    head = head.ljust(508, b"\x00")
    checksum = 0
    for (word,) in struct.iter_unpack("<I", head):
        checksum ^= word
    checksum = {0: 1, 0xFFFFFFFF: 0xFFFFFFFE}.get(checksum, checksum)
    return (head + struct.pack("<I", checksum)).ljust(BASE_BLOCK, b"\x00")


def build_hive(root: HiveKey, file_name: str = "") -> bytes:
    """The bytes of a hive file whose root key is ``root`` (the root key is the first cell)."""
    cells = _Cells()
    root_offset = _write_key(cells, root, NO_OFFSET, True)
    size = (len(cells.data) + BASE_BLOCK - 1) // BASE_BLOCK * BASE_BLOCK
    free = size - len(cells.data)
    if free:
        cells.data += struct.pack("<i", free) + b"\x00" * (free - 4)  # one free cell
    cells.data[:HBIN_HEADER] = struct.pack("<4sIIQQI", b"hbin", 0, size, 0, FILETIME_2024, 0)
    return _base_block(root_offset, size, file_name) + bytes(cells.data)
