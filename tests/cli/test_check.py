"""`roost check`: every problem in every configuration file, with file and line, in one run."""

from __future__ import annotations

import re
import textwrap

from tests.conftest import run_roost


def write(path, text):
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def broken_config(tmp_path):
    main = write(tmp_path / "main.cf", """
        myhostname = mail.example.test
        this line has no equals sign
        mydestination = $myhostname, localhost
        loop_a = $loop_b
        loop_b = $loop_a
        message_size_limit = $loop_a
        queue_directory = %s
        """ % (tmp_path / "spool"))
    master = write(tmp_path / "master.cf", """
        smtp      inet  n       -       n       -       -       smtpd
        bogus     socket n      -       n       -       -       smtpd
        submission inet n       x       n       -       -       smtpd
        """)
    dovecot = write(tmp_path / "dovecot.conf", """
        protocols = imap
        ssl = no
        ssl_cert = </nonexistent/cert.pem
        !include /nonexistent/dir/file.conf
        service imap-login {
          inet_listener imap {
            port = 12345
        """)
    return main, master, dovecot


def test_check_lists_every_error_of_every_file_and_fails(tmp_path):
    main, master, dovecot = broken_config(tmp_path)
    result = run_roost("-c", str(tmp_path), "check")
    assert result.returncode == 1, result.stderr
    fatal_places = set(re.findall(r"fatal: (\S+), line (\d+):", result.stderr))
    # main.cf: the line without '=' and the expansion loop; master.cf: the bad type and the
    # bad 'unpriv' field; dovecot.conf: the missing <file, the missing include, the section
    # never closed (reported where it opened).
    assert {(master, "2"), (master, "3")} <= fatal_places, result.stderr
    assert {(dovecot, "3"), (dovecot, "4"), (dovecot, "5")} <= fatal_places, result.stderr
    assert any(f == main and n == "2" for f, n in re.findall(r"(?:fatal|warning): (\S+), line (\d+):", result.stderr)), result.stderr
    assert re.search(rf"fatal: {re.escape(main)}, line [456]: .*loop", result.stderr), result.stderr
    assert "the mail system will not start" in result.stderr


def test_start_refuses_a_broken_configuration_and_lists_the_errors(tmp_path):
    main, master, dovecot = broken_config(tmp_path)
    result = run_roost("-c", str(tmp_path), "start", timeout=60)
    assert result.returncode != 0
    assert f"{master}, line 2" in result.stderr + result.stdout
    assert f"{dovecot}, line 3" in result.stderr + result.stdout


def test_a_parameter_used_only_from_a_master_cf_override_is_not_unused(tmp_path):
    write(tmp_path / "main.cf", f"""
        queue_directory = {tmp_path / 'spool'}
        mua_client_restrictions = permit_sasl_authenticated, reject
        nobody_uses_this = 1
        """)
    write(tmp_path / "master.cf", """
        submission inet n - n - - smtpd
          -o smtpd_client_restrictions=$mua_client_restrictions
        """)
    result = run_roost("-c", str(tmp_path), "check")
    assert result.returncode == 0, result.stderr
    assert "mua_client_restrictions" not in result.stderr
    assert "unused parameter: nobody_uses_this=1" in result.stderr
