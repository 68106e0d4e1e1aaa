"""Parts of the login processes (pop3-login, imap-login) that touch no socket: the log lines."""
