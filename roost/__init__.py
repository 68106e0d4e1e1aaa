"""roost: a complete mail server configured like Postfix + Dovecot.

SMTP (25/465/587), LMTP, POP3 and IMAP in one Python package that reads main.cf, master.cf,
aliases, lookup tables and dovecot.conf. See DESIGN.md in the shared folder for the scope.
"""

__version__ = "0.1.0"
