"""Shared machinery of the differential restriction tests (restriction matrix, open relay).

A module-scoped `Matrix` starts one private Postfix (tests.policy.postfix_oracle) with one
smtpd service per case (the case's `-o` overrides), writes the tables into the oracle's
table directory and compiles the `hash:` ones with Debian's postmap *and* roost's postmap.
`roost_replies(case)` reads the very main.cf Postfix runs with (roost's main.cf parser),
applies the same overrides the way master.cf `-o` does (Settings.with_overrides), and drives
SmtpPolicy through tests.policy.session with a FakeResolver (no DNS on either side:
Postfix has smtpd_peername_lookup = no, so the client is `unknown[127.0.0.2]` for both).

Replies are compared whole (code, enhanced code, text); only the queue ID is masked and the
EHLO capability list is reduced to its status code.

Two targets for roost's side (environment variable ROOST_POLICY_TARGET):
  policy (default)  SmtpPolicy through tests.policy.session's minimal session driver;
  smtpd             roost's real smtpd (roost.net.smtpd, started in-process by the smtp
                    helper's tests/net/smtpd_harness.SmtpdServer) with the same main.cf text,
                    one listener per case with the same `-o` overrides, SmtpPolicy with a
                    FakeResolver, SASL through the oracle's fake Dovecot auth socket; the
                    dialogue is played by the oracle's own client (`dialogue`), and the policy
                    log lines are taken from the server's log for that session.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time
from dataclasses import dataclass, field

from roost.cli.postmap import run_tool
from roost.config.diagnostics import Diagnostics
from roost.config.main_cf import parse_main_cf
from roost.config.settings import Settings
from roost.net.dns import FakeResolver
from roost.tables.registry import clear_cache
from tests.conftest import RecordingLog, free_port_base, port_free
from tests.policy.postfix_oracle import PostfixOracle, Service, dialogue, postmap
from tests.policy.session import PolicySession, make_policy

FIRST_PORT_OFFSET = 30   # inside the block free_port_base claimed, past the standard ports


def free_ports(count: int) -> list[int]:
    """`count` free loopback ports from as many claimed port blocks as needed (offsets
    FIRST_PORT_OFFSET..99 of each block, past the standard ports roost init uses)."""
    ports: list[int] = []
    while len(ports) < count:
        base = free_port_base()
        ports += [p for p in range(base + FIRST_PORT_OFFSET, base + 100) if port_free(p)]
    return ports[:count]


@dataclass(frozen=True)
class Case:
    name: str
    commands: tuple[str, ...]
    overrides: tuple[tuple[str, str], ...] = ()
    source: str = "127.0.0.2"

    @property
    def override_dict(self) -> dict[str, str]:
        return dict(self.overrides)


def case(name: str, commands: list[str], source: str = "127.0.0.2", **overrides: str) -> Case:
    return Case(name, tuple(commands), tuple(overrides.items()), source)


def normalize(reply: str) -> str:
    reply = re.sub(r"queued as [0-9A-Za-z]+", "queued as ID", reply)
    if reply.startswith("250-"):
        return "250 (EHLO capabilities)"
    return reply


@dataclass
class Matrix:
    cases: list[Case]
    main_cf: str
    tables: dict[str, str]
    hash_tables: tuple[str, ...] = ()
    oracle: PostfixOracle | None = None
    ports: dict[str, int] = field(default_factory=dict)

    target: str = field(default_factory=lambda: os.environ.get("ROOST_POLICY_TARGET", "policy"))
    smtpd: object = None
    smtpd_ports: dict[str, int] = field(default_factory=dict)

    def start(self) -> None:
        candidates = free_ports(len(self.cases))
        services = []
        for item, port in zip(self.cases, candidates):
            self.ports[item.name] = port
            services.append(Service(item.name, port, {}))
        self.oracle = PostfixOracle(services, main_cf=self.main_cf)
        oracle = self.oracle
        oracle.main_cf = self.main_cf.replace("{tables}", oracle.tables)
        for service, item in zip(services, self.cases):
            service.overrides = {k: v.replace("{tables}", oracle.tables) for k, v in item.overrides}
        for name, content in self.tables.items():
            with open(oracle.table_path(name), "w", encoding="utf-8") as handle:
                handle.write(content)
        oracle.write_main_cf()
        for name in self.hash_tables:
            path = oracle.table_path(name)
            postmap("hash", path, oracle.etc)
            out, err = io.StringIO(), io.StringIO()
            status = run_tool("postmap", ["postmap", "-c", oracle.etc, f"hash:{path}"], stdout=out, stderr=err)
            assert status == 0, err.getvalue()
        oracle.start()
        if self.target == "smtpd":
            self._start_smtpd()

    def _start_smtpd(self) -> None:
        """roost's real smtpd for every case (see the module docstring)."""
        import tempfile

        from roost.policy import SmtpPolicy
        from tests.net.smtpd_harness import SmtpdServer
        assert self.oracle is not None
        candidates = free_ports(len(self.cases))
        lines = []
        for item, port in zip(self.cases, candidates):
            self.smtpd_ports[item.name] = port
            overrides = " ".join(f"-o {{ {k} = {v.replace('{tables}', self.oracle.tables)} }}" if v else f"-o {k}="
                                 for k, v in item.overrides)
            lines.append(f"127.0.0.1:{port} inet n - n - - smtpd -o syslog_name=pf/{item.name} {overrides}\n")
        master_cf = "".join(lines).replace("{", "{{").replace("}", "}}")
        main_cf = self.main_cf.replace("{tables}", self.oracle.tables) + (
            "compatibility_level = 3.6\n"
            f"smtpd_sasl_type = dovecot\nsmtpd_sasl_path = {os.path.join(self.oracle.base, 'auth')}\n"
            "smtpd_client_connection_count_limit = 0\nsmtpd_error_sleep_time = 0\n"
            "smtpd_soft_error_limit = 1000\nsmtpd_hard_error_limit = 1000\n")
        directory = tempfile.mkdtemp(prefix="roost-policy-smtpd-", dir="/tmp")

        def factory(settings, log):
            return SmtpPolicy(settings, resolver=FakeResolver({}), log=log)
        self.smtpd_directory = directory
        self.smtpd = SmtpdServer(directory, main_cf=main_cf, master_cf=master_cf, policy_factory=factory)
        self.smtpd.__enter__()

    def stop(self) -> None:
        clear_cache()
        try:
            if self.smtpd is not None:
                self.smtpd.__exit__(None, None, None)
                shutil.rmtree(self.smtpd_directory, ignore_errors=True)
        finally:
            if self.oracle is not None:
                self.oracle.stop()

    # ------------------------------------------------------------------ the two sides
    def postfix_replies(self, item: Case) -> list[str]:
        return [normalize(r) for r in dialogue(self.ports[item.name], list(item.commands), item.source)]

    def settings(self, item: Case) -> Settings:
        assert self.oracle is not None
        diags = Diagnostics()
        main = parse_main_cf(os.path.join(self.oracle.etc, "main.cf"), diags)
        settings = Settings.from_main_cf(main, self.oracle.etc, diags)
        pairs = [(k, v.replace("{tables}", self.oracle.tables)) for k, v in item.overrides]
        return settings.with_overrides(pairs, "master.cf", 1, diags) if pairs else settings

    def roost_replies(self, item: Case, log: RecordingLog | None = None,
                      resolver: FakeResolver | None = None) -> list[str]:
        if self.smtpd is not None:
            before = len(self.smtpd.log.lines)
            replies = [normalize(r) for r in dialogue(self.smtpd_ports[item.name], list(item.commands), item.source)]
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                    text.startswith("disconnect from") for _, text in self.smtpd.log.lines[before:]):
                time.sleep(0.02)
            if log is not None:
                log.lines.extend(self.smtpd.log.lines[before:])
            return replies
        settings = self.settings(item)
        policy = make_policy(settings, resolver or FakeResolver({}), log or RecordingLog())
        return [normalize(r) for r in PolicySession(policy, settings, item.source).replies(list(item.commands))]

    def postfix_policy_log(self, item: Case, timeout: float = 10) -> list[str]:
        """The policy lines Postfix logged for this case's session (once its `disconnect
        from` line is there), queue IDs masked."""
        assert self.oracle is not None
        tag = f" pf/{item.name}/smtpd["
        deadline = time.monotonic() + timeout
        while True:
            lines = [line.split("]: ", 1)[1] for line in self.oracle.read_log().splitlines() if tag in line]
            if any(line.startswith("disconnect from") for line in lines) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return [line for line in map(mask_queue_id, lines) if POLICY_LINE.match(line)]

    @staticmethod
    def roost_policy_log(log: RecordingLog) -> list[str]:
        lines = [text if level == "info" else f"{level}: {text}" for level, text in log.lines]
        return [line for line in map(mask_queue_id, lines) if POLICY_LINE.match(line)]

    def compare(self, item: Case) -> None:
        expected = self.postfix_replies(item)
        log = RecordingLog()
        got = self.roost_replies(item, log)
        pairs = [f"{c!r}\n   postfix: {e!r}\n   roost:   {g!r}" for c, e, g in zip(item.commands, expected, got)
                 if e != g]
        assert expected == got, f"case {item.name}:\n" + "\n".join(pairs) + f"\nroost log: {log.lines}"
        roost_lines, postfix_lines = self.roost_policy_log(log), self.postfix_policy_log(item)
        assert roost_lines == postfix_lines, (
            f"log lines of {item.name}:\nroost:   {roost_lines}\npostfix: {postfix_lines}")


# The lines the policy is responsible for: rejections, warnings, actions, restriction warnings.
POLICY_LINE = re.compile(r"(NOQUEUE|ID): (reject|reject_warning|hold|discard|warn|info|filter|redirect|bcc|prepend): "
                         r"|warning: (unknown smtpd restriction|restriction )")


def mask_queue_id(line: str) -> str:
    return re.sub(r"^[0-9A-F]{6,}: ", "ID: ", line)
