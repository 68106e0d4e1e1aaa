"""Shared test helpers: private Debian Postfix and Dovecot instances, process and port checks."""
