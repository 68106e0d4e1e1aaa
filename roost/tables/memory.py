"""Tables held in memory: `texthash:`, `inline:{...}`, `static:`, `fail:` (DATABASE_README).

- texthash:FILE reads a postmap(1)-format file directly (no compiling); duplicates warn
  with file and line and the first entry wins; re-read when FILE changes.
- inline:{ key=value, { key = text with spaces } } — later entries replace earlier ones.
- static:text or static:{ text with spaces } answers the same value for every key.
- fail:name fails every lookup (for error tests).
Keys of texthash and inline are case-folded unless opened with fold_case off (`-f`).

Invariants: a syntax error in an inline/static spec makes the table unusable (every lookup
raises TableError with Postfix's message) rather than silently answering wrong.
Security: content is data only; nothing is executed or expanded.
"""

from __future__ import annotations

from roost.config.diagnostics import Diagnostics
from roost.tables.base import LookupTable, TableError, TableOptions
from roost.tables.source import WHITESPACE, decode, fold_key, logical_lines, printable, split_map_entry


class TextHashTable(LookupTable):
    def __init__(self, type: str, name: str, options: TableOptions | None = None,
                 diags: Diagnostics | None = None) -> None:
        self._entries: dict[str, str] = {}
        super().__init__(type, name, options, diags)

    def watched_files(self) -> tuple[str, ...]:
        return (self.name,)

    def _load(self) -> None:
        try:
            with open(self.name, "rb") as handle:
                text = decode(handle.read())
        except OSError as exc:
            raise TableError(f"open database {self.name}: {exc.strerror or exc}") from None
        entries: dict[str, str] = {}
        local = Diagnostics()
        for line in logical_lines(text, self.name, local):
            entry = split_map_entry(line, self.name, local, self.options.utf8)
            if entry is None:
                continue
            key, value = entry
            stored = self._fold(key)
            if stored in entries:
                local.warning(self.name, line.line, f'duplicate entry: "{printable(key, 100)}"')
                continue
            entries[stored] = value
        for item in local.items:
            if item.message == "expected format: key whitespace value":
                item = type(item)(item.severity, item.file, item.line, item.message + " -- ignoring this line")
            self.diags.items.append(item)
        self._entries = entries

    def _fold(self, key: str) -> str:
        return fold_key(key, self.options.utf8) if self.options.fold_case else key

    def _get(self, key: str) -> str | None:
        return self._entries.get(self._fold(key))

    def items(self):
        self.refresh()
        return iter(list(self._entries.items()))


class InlineTable(LookupTable):
    """`inline:{...}`; `name` is the text inside the braces, including them."""

    def __init__(self, type: str, name: str, options: TableOptions | None = None,
                 diags: Diagnostics | None = None) -> None:
        self._entries: dict[str, str] = {}
        self._error: str | None = None
        super().__init__(type, name, options, diags)
        self._parse()

    def _parse(self) -> None:
        spec = self.name.strip(WHITESPACE)
        need = f'need "{self.type}:{{name=value...}}"'
        if not (spec.startswith("{") and spec.endswith("}")):
            self._fail(f'bad syntax: "{self.spec}"; {need}')
            return
        items = split_braced_list(spec[1:-1])
        if items is None or not items:
            self._fail(f'bad syntax: "{self.spec}"; {need}')
            return
        for item in items:
            name, sep, value = item.partition("=")
            name = name.strip(WHITESPACE)
            if not sep or not name or any(c in WHITESPACE for c in name):
                self._fail(f'missing \'=\' after attribute name: "{self.spec}"; {need}')
                return
            key = fold_key(name, self.options.utf8) if self.options.fold_case else name
            self._entries[key] = value.strip(WHITESPACE)

    def _fail(self, message: str) -> None:
        self._error = message
        self.diags.fatal(self.spec, None, message)

    def _get(self, key: str) -> str | None:
        if self._error:
            raise TableError(self._error)
        return self._entries.get(fold_key(key, self.options.utf8) if self.options.fold_case else key)

    def items(self):
        if self._error:
            raise TableError(self._error)
        return iter(list(self._entries.items()))


def split_braced_list(text: str) -> list[str] | None:
    """Split `a=b, { c = d e }` on commas/whitespace outside braces; a braced item loses
    its braces. None when braces do not balance."""
    items: list[str] = []
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        if char in WHITESPACE or char == ",":
            index += 1
            continue
        if char == "{":
            depth, end = 0, index
            while end < length:
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                if depth == 0:
                    break
                end += 1
            if depth != 0:
                return None
            items.append(text[index + 1:end].strip(WHITESPACE))
            index = end + 1
            continue
        end, depth = index, 0
        while end < length and (depth > 0 or text[end] not in WHITESPACE + ","):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth < 0:
                return None
            end += 1
        if depth != 0:
            return None
        items.append(text[index:end])
        index = end
    return items


class StaticTable(LookupTable):
    def __init__(self, type: str, name: str, options: TableOptions | None = None,
                 diags: Diagnostics | None = None) -> None:
        super().__init__(type, name, options, diags)
        self._error: str | None = None
        value = name
        if name.startswith("{"):
            if not name.rstrip(WHITESPACE).endswith("}"):
                self._error = f"bad static:name syntax: missing '}}' in \"{name}\""
                self.diags.fatal(self.spec, None, self._error)
            value = name.rstrip(WHITESPACE)[1:-1]
        self.value = value.strip(WHITESPACE)

    def _get(self, key: str) -> str | None:
        if self._error:
            raise TableError(self._error)
        return self.value


class FailTable(LookupTable):
    def _get(self, key: str) -> str | None:
        raise TableError(f"table {self.spec}: query error: Application error")
