"""Authentication, the Dovecot way: passdb/userdb drivers, password schemes, login lookups.

Modules: schemes (Dovecot `{SCHEME}` hashes, verify/generate), passdb/userdb and drivers,
variables (`%u %n %d`), lookup (the passdb/userdb chain). SASL mechanisms live in
roost.proto.sasl (sans-IO). Security: passwords never reach logs or reprs.
"""
