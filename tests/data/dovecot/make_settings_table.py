"""Regenerate roost/config/dovecot_settings_table.txt from the real doveconf on this machine.

Usage: python tests/data/dovecot/make_settings_table.py > roost/config/dovecot_settings_table.txt

For every setting Dovecot 2.3 knows (globally and inside passdb, userdb, service, inet_listener,
unix_listener, fifo_listener, namespace and mailbox sections) it records the default shown by
`doveconf -a` and a value type learned by feeding probe values to `doveconf -n`. The table is
data observed from the real tool, not code; tests/config/test_dovecot_table.py re-checks it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

# scope -> (text before the probed line, text after it)
SCOPES = {
    "global": ("", ""),
    "passdb": ("passdb {\n driver = pam\n", "}\n"),
    "userdb": ("userdb {\n driver = passwd\n", "}\n"),
    "service": ("service foo {\n", "}\n"),
    "inet_listener": ("service foo {\n inet_listener x {\n", " }\n}\n"),
    "unix_listener": ("service foo {\n unix_listener y {\n", " }\n}\n"),
    "fifo_listener": ("service foo {\n fifo_listener z {\n", " }\n}\n"),
    "namespace": ("namespace n {\n", "}\n"),
    "mailbox": ("namespace n {\n mailbox m {\n", " }\n}\n"),
}

SKELETON = """service foo {
 inet_listener x {
 }
 unix_listener y {
 }
 fifo_listener z {
 }
}
passdb {
 driver = pam
}
userdb {
 driver = passwd
}
namespace n {
 mailbox m {
 }
}
"""


def doveconf(text: str, *args: str) -> tuple[int, str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dovecot.conf"
        path.write_text(text)
        proc = subprocess.run(["doveconf", "-c", str(path), *args], capture_output=True, text=True)
        out = "\n".join(line for line in proc.stdout.splitlines() if not line.startswith("# "))
        return proc.returncode, out, proc.stderr


def defaults(*flags: str) -> dict[str, dict[str, str]]:
    """scope -> name -> default, read from `doveconf -a -s` of the skeleton config
    (without -s: only the settings doveconf shows by default)."""
    _rc, out, _err = doveconf(SKELETON, "-a", *(flags or ("-s",)))
    table: dict[str, dict[str, str]] = {scope: {} for scope in SCOPES}
    path: list[str] = []
    for line in out.splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        text = line.strip()
        del path[depth:]
        if text.endswith("{"):
            path.append(text[:-1].strip())
            continue
        if text == "}" or " = " not in text and not text.endswith(" ="):
            continue
        name, _sep, value = text.partition(" =")
        value = value[1:] if value.startswith(" ") else value
        scope = scope_of(path)
        if scope is not None:
            table[scope].setdefault(name, value)
    # the skeleton had to name a driver; Dovecot's own default is empty
    table["passdb"]["driver"] = table["userdb"]["driver"] = ""
    return table


def scope_of(path: list[str]) -> str | None:
    names = {
        (): "global", ("passdb",): "passdb", ("userdb",): "userdb", ("service foo",): "service",
        ("service foo", "inet_listener x"): "inet_listener",
        ("service foo", "unix_listener y"): "unix_listener",
        ("service foo", "fifo_listener z"): "fifo_listener",
        ("namespace n",): "namespace", ("namespace n", "mailbox m"): "mailbox",
    }
    return names.get(tuple(path))


def probe(scope: str, name: str, value: str) -> tuple[int, str, str]:
    before, after = SCOPES[scope]
    return doveconf(f"{before}{name} = {value}\n{after}", "-n")


def printed(out: str, name: str) -> str | None:
    for line in out.splitlines():
        text = line.strip()
        if text.startswith(name + " = ") or text == name + " =":
            return text[len(name) + 3:]
    return None


def value_type(scope: str, name: str) -> str:
    if scope in ("passdb", "userdb") and name == "driver":
        return "str"
    _rc, out, err = probe(scope, name, "8")
    shown = printed(out, name)
    if "missing units" in err:
        _rc, _out, err2 = probe(scope, name, "1500ms")
        return "time" if "Milliseconds not supported" in err2 else "time_msecs"
    if "Invalid boolean" in err:
        return "bool"
    if "Invalid value" in err:
        return "enum"
    if "Invalid port number" in err or "Invalid port" in err:
        return "port"
    if shown == "8 B":
        return "size"
    if shown == "010":
        return "octal"
    _rc, out, err = probe(scope, name, "x")
    if "Invalid number" in err:
        return "uint"
    if "Invalid port" in err:
        return "port"
    if printed(out, name) == "# hidden, use -P to show it":
        return "str_hidden"
    return "str"


def main() -> int:
    table = defaults()
    shown = defaults("-P")  # without -s: the settings `doveconf -a` lists
    print("# Dovecot 2.3 setting names, value types and defaults, observed from the real doveconf")
    print("# (Debian 2.3.19.1) by tests/data/dovecot/make_settings_table.py. Do not edit by hand.")
    print("# scope<TAB>name<TAB>type<TAB>shown|hidden (doveconf -a needs -s)<TAB>default")
    for scope, names in table.items():
        for name, default in sorted(names.items()):
            visibility = "shown" if name in shown[scope] else "hidden"
            print(f"{scope}\t{name}\t{value_type(scope, name)}\t{visibility}\t{default}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
