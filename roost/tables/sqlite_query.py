"""The `%` templates of sqlite_table(5) (`query`, `result_format`) and the translation of
a `query` template into SQL whose key data travels only as bound parameters.

Templates, as sqlite_table(5) of Postfix 3.7 documents and its `postmap -q` shows:
- in `query`, `%s` is the key, `%u` its local part (the whole key when it has no `@`),
  `%d` its domain (after the last `@`), `%1`..`%9` the domain's labels counted from the
  right (empty labels do not count), `%S %U %D` the same as lower case, `%%` a `%`. Any
  other `%` makes the template invalid ("Invalid query template"). When an expansion
  cannot be made (empty local part, no or empty domain, too few labels) the query is
  suppressed and the lookup finds nothing; this holds for every expansion in the
  template, even one inside an SQL comment or after the first statement.
- in `result_format` (default `%s`), `%s %u %d` are the parts of each result value (a
  value without the part is skipped), `%S %U %D %1`..`%9` the parts of the key (a key
  without the part suppresses the query).

Binding instead of quoting. Postfix pastes each expansion into the SQL text with its
single quotes doubled. Roost never puts key data into SQL text: at load time the
template is cut into SQL tokens once, and
- an expansion inside a quoted string, `'...%s...'`, turns that string into the
  concatenation `('...' || ?N || '...')` of its literal pieces and a bound parameter:
  the very string Postfix builds, so `= '%s'`, `LIKE '%%%s'` and `'%u@%d'` answer alike.
  `"..."`, `[...]` and backquoted text holding an expansion become strings the same way,
  with the value's `'` doubled as Postfix leaves them there (Postfix would let SQLite
  read such text as a column name when one has that name, or fail on a `"` in the key);
- an expansion outside quotes becomes `?N`, one bound value. For a number
  (`WHERE id = %s`) SQLite's type affinity gives Postfix's answer; text that Postfix
  would have run as SQL (`1 OR 1=1`, a column name) is compared as the value it is;
- comments are dropped and only the first statement is kept (Postfix's SQLite prepare
  ignores the rest too; roost warns); SQL parameters written by the administrator (`?`,
  `:name`, `@name`, `$name`) are refused, since roost numbers the parameters itself.

Invariants: parsing never raises on any input; a `SqlQuery` always holds exactly one
`Parameter` per `?N` in its SQL, numbered from 1 in order.
Security: key data only ever reaches SQLite as bound parameters, never as SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

KEY_LETTERS = frozenset("sudSUD123456789")
_RESULT_KEY_LETTERS = frozenset("SUD123456789")  # in result_format: parts of the key
_CLOSING = {"'": "'", '"': '"', "`": "`", "[": "]"}


@dataclass(frozen=True)
class Expansion:
    letter: str  # one of KEY_LETTERS


Template = tuple["str | Expansion", ...]  # literal characters and expansions, in order


@dataclass(frozen=True)
class AddressParts:
    """The parts of a key or result value that `%s %u %d %1..%9` stand for; None (and
    no labels) where the text lacks that part."""

    text: str
    local: str | None
    domain: str | None
    labels: tuple[str, ...]  # most significant first: ("com", "example", "mail")

    @classmethod
    def of(cls, text: str) -> AddressParts:
        local, at, domain = text.rpartition("@")
        if not at:
            return cls(text, text or None, None, ())
        labels = tuple(reversed([label for label in domain.split(".") if label]))
        return cls(text, local or None, domain or None, labels)

    def expand(self, letter: str) -> str | None:
        lower = letter.lower()
        if lower == "s":
            return self.text
        if lower == "u":
            return self.local
        if lower == "d":
            return self.domain
        index = int(letter) - 1
        return self.labels[index] if index < len(self.labels) else None


def parse_template(text: str) -> Template | None:
    """Characters and expansions of a `%` template; None when it holds an invalid `%`."""
    items: list[str | Expansion] = []
    index = 0
    while index < len(text):
        percent = text.find("%", index)
        if percent < 0:
            items.extend(text[index:])
            break
        items.extend(text[index:percent])
        following = text[percent + 1:percent + 2]
        if following == "%":
            items.append("%")
        elif following in KEY_LETTERS and following:
            items.append(Expansion(following))
        else:
            return None
        index = percent + 2
    return tuple(items)


def letters_of(template: Template) -> frozenset[str]:
    return frozenset(item.letter for item in template if isinstance(item, Expansion))


@dataclass(frozen=True)
class ResultFormat:
    template: Template

    @property
    def key_letters(self) -> frozenset[str]:
        return letters_of(self.template) & _RESULT_KEY_LETTERS

    def render(self, value: str, key: AddressParts) -> str | None:
        """The formatted value; None when the value lacks a part the format uses."""
        parts = AddressParts.of(value)
        out: list[str] = []
        for item in self.template:
            if isinstance(item, str):
                out.append(item)
                continue
            source = key if item.letter in _RESULT_KEY_LETTERS else parts
            expanded = source.expand(item.letter)
            if expanded is None:
                return None
            out.append(expanded)
        return "".join(out)


class Parameter(NamedTuple):
    letter: str  # the expansion bound here
    doubled_quotes: bool  # bind the value with ' doubled, as Postfix's quoting leaves it


@dataclass(frozen=True)
class SqlQuery:
    """A query template as SQL with numbered parameters `?1`, `?2`, ..."""

    sql: str
    parameters: tuple[Parameter, ...]  # what is bound to ?1, ?2, ...
    uses: frozenset[str]  # every expansion letter in the template, comments included
    notes: tuple[str, ...] = field(default=())  # harmless oddities worth a warning
    error: str | None = None  # the template cannot be run safely

    def bind(self, key: AddressParts) -> tuple[str, ...] | None:
        """Parameter values for `key`; None when an expansion cannot be made."""
        if any(key.expand(letter) is None for letter in self.uses):
            return None
        values = ((key.expand(letter) or "", doubled) for letter, doubled in self.parameters)
        return tuple(value.replace("'", "''") if doubled else value for value, doubled in values)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _is_identifier_char(item: str | Expansion | None) -> bool:
    return isinstance(item, str) and (item.isalnum() or item == "_" or item == "$" or not item.isascii())


class _Translator:
    """One pass over a template's items, SQL-token aware."""

    def __init__(self, items: Template) -> None:
        self.items = items
        self.out: list[str] = []
        self.parameters: list[Parameter] = []
        self.notes: list[str] = []
        self.error: str | None = None

    def item(self, index: int) -> str | Expansion | None:
        return self.items[index] if 0 <= index < len(self.items) else None

    def placeholder(self, letter: str, doubled_quotes: bool = False) -> str:
        self.parameters.append(Parameter(letter, doubled_quotes))
        # The space keeps a following digit from extending the parameter number.
        return f"?{len(self.parameters)} "

    def run(self) -> None:
        index, items = 0, self.items
        while index < len(items) and self.error is None:
            item = items[index]
            if isinstance(item, Expansion):
                self.out.append(self.placeholder(item.letter))
                index += 1
            elif item in _CLOSING:
                index = self.quoted(index)
            elif item == "-" and self.item(index + 1) == "-":
                index = self.skip_until(index + 2, "\n", keep_end=True)
            elif item == "/" and self.item(index + 1) == "*":
                index = self.skip_until(index + 2, "*/", keep_end=False)
            elif item == ";":
                self.check_rest(index + 1)
                return
            elif self.is_parameter(index):
                self.error = f'the query contains the SQL parameter "{item}"; use %s, %u, %d... instead'
            else:
                self.out.append(item)
                index += 1

    def is_parameter(self, index: int) -> bool:
        item, following = self.items[index], self.item(index + 1)
        if item == "?":
            return True
        if item in (":", "@"):
            return _is_identifier_char(following)
        return item == "$" and _is_identifier_char(following) and not _is_identifier_char(self.item(index - 1))

    def skip_until(self, index: int, end: str, keep_end: bool) -> int:
        """Skip a comment; it becomes one space, as in SQL."""
        self.out.append(" ")
        while index < len(self.items):
            if self.items[index] == end[0] and (len(end) == 1 or self.item(index + 1) == end[1]):
                return index if keep_end else index + len(end)
            index += 1
        return index

    def quoted(self, start: int) -> int:
        opening = self.items[start]
        closing = _CLOSING[opening]  # type: ignore[index]
        pieces: list[str | Expansion] = []
        text: list[str] = []
        index = start + 1
        while index < len(self.items):
            item = self.items[index]
            if isinstance(item, Expansion):
                pieces.extend(["".join(text), item])
                text = []
            elif item == closing and closing != "]" and self.item(index + 1) == closing:
                text.append(closing)  # a doubled quote stands for one
                index += 1
            elif item == closing:
                pieces.append("".join(text))
                self.emit_quoted(start, index + 1, pieces)
                return index + 1
            else:
                text.append(item)
            index += 1
        # Unterminated: pass the text on (without key data) and let SQLite report it.
        self.out.append("".join(item for item in self.items[start:] if isinstance(item, str)))
        return len(self.items)

    def emit_quoted(self, start: int, end: int, pieces: list[str | Expansion]) -> None:
        if not any(isinstance(piece, Expansion) for piece in pieces):
            self.out.append("".join(self.items[start:end]))  # type: ignore[arg-type]
            return
        # Inside '...' SQL undoes Postfix's doubling of quotes; inside "..." it stays.
        doubled = self.items[start] != "'"
        terms = [self.placeholder(piece.letter, doubled) if isinstance(piece, Expansion) else _sql_string(piece)
                 for piece in pieces if piece != ""]
        self.out.append(terms[0] if len(terms) == 1 else "(" + " || ".join(terms) + ")")

    def check_rest(self, index: int) -> None:
        """Note when anything but blanks, comments and semicolons follows the statement."""
        while index < len(self.items):
            item, following = self.items[index], self.item(index + 1)
            if item == "-" and following == "-":
                index = self.skip_until(index + 2, "\n", keep_end=True)
            elif item == "/" and following == "*":
                index = self.skip_until(index + 2, "*/", keep_end=False)
            elif isinstance(item, Expansion) or not (item.isspace() or item == ";"):
                self.notes.append("ignoring the text after the first SQL statement, as Postfix does")
                return
            else:
                index += 1


def translate_query(template: Template) -> SqlQuery:
    translator = _Translator(template)
    translator.run()
    if translator.error is not None:
        return SqlQuery("", (), letters_of(template), (), translator.error)
    return SqlQuery("".join(translator.out).strip(), tuple(translator.parameters), letters_of(template),
                    tuple(translator.notes))
