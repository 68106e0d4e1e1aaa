"""passdb/userdb drivers named by dovecot.conf's `driver =`: passwd-file, shadow/passwd, pam,
static, prefetch. Each module implements one Dovecot 2.3 driver; `create_driver` picks one by
name from the tables in roost.auth.passdb and roost.auth.userdb.

Invariant: a driver module is imported only when a configuration names it (python-pam is
needed only for `driver = pam`). Security: driver names select from fixed tables only.
"""

from __future__ import annotations

import importlib

from roost.config.diagnostics import Diagnostics, excerpt

# driver name -> (module under roost.auth.drivers, class, whether it takes keyword options)
DriverTable = dict[str, tuple[str, str, bool]]


def create_driver(kind: str, table: DriverTable, driver: str, args: str, file: str, line: int,
                  diags: Diagnostics, **kwargs):
    """The `kind` ("passdb"/"userdb") driver named `driver`, or None (reported as fatal)."""
    entry = table.get(driver)
    if entry is None:
        diags.fatal(file, line, f"{kind} driver '{excerpt(driver)}' is not supported by roost"
                                f" (supported: {', '.join(table)})")
        return None
    module, class_name, takes_options = entry
    driver_class = getattr(importlib.import_module(f"roost.auth.drivers.{module}"), class_name)
    return driver_class.from_args(args, file, line, diags, **(kwargs if takes_options else {}))
