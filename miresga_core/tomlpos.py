"""Line numbers for TOML key paths.

tomli returns plain dicts without positions, yet a config error must name its line. This
module scans the source once and maps each key path (``("listeners", 0, "routes", 1,
"pool")``) to the line where that key is written. It understands table headers, arrays of
tables, dotted and quoted keys, and keys of inline tables; values spanning several lines
(multi-line arrays and strings) are skipped over. A path it cannot place resolves to its
nearest placed ancestor, which is always a line worth showing.
"""

from __future__ import annotations

import re

__all__ = ["KeyLines"]

Path = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


class KeyLines:
    """Key path -> 1-based line number of a TOML document."""

    def __init__(self, source: str) -> None:
        self.lines: dict[Path, int] = {}
        self._aot_count: dict[Path, int] = {}
        self._scan(source)

    def line_of(self, path: Path) -> int | None:
        """Line of ``path`` or of its longest placed prefix; None when nothing matches."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    # ----------------------------------------------------------------------- scanning

    def _scan(self, source: str) -> None:
        table: Path = ()
        text = source
        pos = 0
        line = 1
        n = len(text)
        while pos < n:
            pos, line = _skip_space_and_comments(text, pos, line)
            if pos >= n:
                break
            if text.startswith("[[", pos):
                keys, pos = _parse_key(text, pos + 2)
                pos = text.find("]]", pos) + 2 if text.find("]]", pos) >= 0 else n
                base = self._resolve(tuple(keys[:-1])) + (keys[-1],) if keys else ()
                index = self._aot_count.get(base, 0)
                self._aot_count[base] = index + 1
                table = (*base, index)
                self.lines.setdefault(table[:-1], line)
                self.lines[table] = line
            elif text[pos] == "[":
                keys, pos = _parse_key(text, pos + 1)
                pos = text.find("]", pos) + 1 if text.find("]", pos) >= 0 else n
                table = self._resolve(tuple(keys))
                self.lines.setdefault(table, line)
            else:
                pos, line = self._key_value(text, pos, line, table)
            # to end of line
            eol = text.find("\n", pos)
            if eol < 0:
                break
            pos = eol + 1
            line += 1

    def _resolve(self, keys: tuple[str, ...]) -> Path:
        """Insert array-of-tables indexes: ``[listeners.routes]`` inside the 2nd listener
        is ``("listeners", 1, "routes")``."""
        out: list[str | int] = []
        for key in keys:
            out.append(key)
            count = self._aot_count.get(tuple(out))
            if count:
                out.append(count - 1)
        return tuple(out)

    def _key_value(self, text: str, pos: int, line: int, table: Path) -> tuple[int, int]:
        keys, pos = _parse_key(text, pos)
        path = (*table, *keys)
        for end in range(len(table) + 1, len(path) + 1):
            self.lines.setdefault(path[:end], line)
        eq = text.find("=", pos)
        if eq < 0:
            return pos, line
        return self._value(text, eq + 1, line, path)

    def _value(self, text: str, pos: int, line: int, path: Path) -> tuple[int, int]:
        """Skip one value, recording inline-table keys; returns position and line after it."""
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if text.startswith('"""', pos) or text.startswith("'''", pos):
            quote = text[pos : pos + 3]
            end = text.find(quote, pos + 3)
            end = len(text) if end < 0 else end + 3
            return end, line + text.count("\n", pos, end)
        if pos < len(text) and text[pos] in "\"'":
            return _skip_string(text, pos), line
        if pos < len(text) and text[pos] == "{":
            return self._inline_table(text, pos + 1, line, path)
        if pos < len(text) and text[pos] == "[":
            return self._array(text, pos + 1, line, path)
        while pos < len(text) and text[pos] not in ",}]\n#":
            pos += 1
        return pos, line

    def _inline_table(self, text: str, pos: int, line: int, path: Path) -> tuple[int, int]:
        while pos < len(text):
            while pos < len(text) and text[pos] in " \t,":
                pos += 1
            if pos >= len(text) or text[pos] == "}":
                return pos + 1, line
            if text[pos] == "\n":
                pos, line = pos + 1, line + 1
                continue
            keys, pos = _parse_key(text, pos)
            sub = (*path, *keys)
            for end in range(len(path) + 1, len(sub) + 1):
                self.lines.setdefault(sub[:end], line)
            eq = text.find("=", pos)
            if eq < 0:
                return len(text), line
            pos, line = self._value(text, eq + 1, line, sub)
        return pos, line

    def _array(self, text: str, pos: int, line: int, path: Path) -> tuple[int, int]:
        index = 0
        while pos < len(text):
            pos, line = _skip_space_and_comments(text, pos, line)
            if pos >= len(text):
                break
            if text[pos] == "]":
                return pos + 1, line
            if text[pos] == ",":
                index += 1
                pos += 1
                continue
            self.lines.setdefault((*path, index), line)
            pos, line = self._value(text, pos, line, (*path, index))
        return pos, line


def _skip_space_and_comments(text: str, pos: int, line: int) -> tuple[int, int]:
    while pos < len(text):
        ch = text[pos]
        if ch == "\n":
            line += 1
            pos += 1
        elif ch in " \t\r":
            pos += 1
        elif ch == "#":
            eol = text.find("\n", pos)
            pos = len(text) if eol < 0 else eol
        else:
            break
    return pos, line


def _skip_string(text: str, pos: int) -> int:
    quote = text[pos]
    pos += 1
    while pos < len(text) and text[pos] != quote and text[pos] != "\n":
        pos += 2 if (quote == '"' and text[pos] == "\\") else 1
    return pos + 1


def _parse_key(text: str, pos: int) -> tuple[list[str], int]:
    """Parse a (dotted, possibly quoted) key starting at ``pos``."""
    keys: list[str] = []
    while pos < len(text):
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] in "\"'":
            end = _skip_string(text, pos)
            raw = text[pos + 1 : end - 1]
            keys.append(raw.encode().decode("unicode_escape") if text[pos] == '"' else raw)
            pos = end
        else:
            match = _BARE.match(text, pos)
            if not match:
                break
            keys.append(match.group(0))
            pos = match.end()
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == ".":
            pos += 1
            continue
        break
    return keys, pos
