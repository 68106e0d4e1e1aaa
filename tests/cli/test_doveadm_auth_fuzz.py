"""Garbage arguments to `roost doveadm auth ...` and `roost doveadm user` never raise.

Random words (options, NULs, control characters, huge values) go through the in-process
command against a small passwd-file configuration; every run must end with one of doveadm's
exit codes, never an exception.
"""

from __future__ import annotations

import contextlib
import io

from hypothesis import HealthCheck, given, settings, strategies as st

from roost.cli import doveadm_auth, doveadm_user

WORDS = st.one_of(
    st.sampled_from(["-x", "-f", "-u", "-a", "-M", "-m", "-e", "-z", "--", "-", "alice", "pw",
                     "service=imap", "rip=192.0.2.1", "rip=not-an-ip", "user", "home",
                     "a:b", "*", "alice@example.test", "%u%%n", "\0", "x" * 5000]),
    st.text(max_size=40),
)
EXIT_CODES = {0, doveadm_auth.EX_USAGE, doveadm_auth.EX_NOUSER, doveadm_auth.EX_TEMPFAIL,
              doveadm_auth.EX_NOPERM, doveadm_auth.EX_CONFIG}


def write_config(root) -> str:
    users = root / "users"
    users.write_text("alice@example.test:{PLAIN}pw:1000:1000::/home/alice::userdb_x=1\n")
    conf = root / "dovecot.conf"
    conf.write_text(f"auth_default_realm = example.test\nmail_location = maildir:~/M\n"
                    f"passdb {{\n  driver = passwd-file\n  args = {users}\n}}\n"
                    f"userdb {{\n  driver = passwd-file\n  args = {users}\n}}\n")
    return str(conf)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["auth test", "auth login", "auth lookup", "user"]),
       st.lists(WORDS, max_size=6), st.text(max_size=20))
def test_garbage_arguments_give_an_exit_code(tmp_path, monkeypatch, command, words, stdin):
    monkeypatch.setenv("DOVEADM_CONFIG", write_config(tmp_path))
    module = doveadm_user if command == "user" else doveadm_auth
    with monkeypatch.context() as patch:
        patch.setattr("sys.stdin", io.StringIO(stdin))
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = module.main([command, *words])
    assert code in EXIT_CODES
