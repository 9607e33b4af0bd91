"""Host hardening's decisions: the sshd drop-in only where it cannot lock the converge out, and
what verification compares for sshd, fail2ban and apt."""

import json
from pathlib import Path

from deploy import hardening as deploy_hardening  # noqa: F401 (the deploy module imports cleanly)
from lbstack import checks, hardening, packages
from lbstack.render import render as render_template
from lbstack.settings import load

FACTS = Path(__file__).parent.parent / "facts"
SETTINGS = load({})


def _fact(case: str):
    return json.loads((FACTS / f"{case}.json").read_text())["fact"]


def test_a_key_login_may_harden_sshd_and_a_password_or_unknown_login_may_not():
    effective = _fact("base.SshdEffective/nspawn-hardened")
    assert hardening.lockout_reason("publickey", "root", effective) is None
    why = hardening.lockout_reason("password", "root", effective)
    assert "with password, not a key" in why and "ssh-copy-id" in why
    assert "keyboard-interactive, not a key" in hardening.lockout_reason("keyboard-interactive", "admin", effective)
    assert "cannot see how it logs in" in hardening.lockout_reason(None, "pyinfra does not reach x over ssh", {})
    two_factor = dict(effective, authenticationmethods="publickey,password")
    assert "need a password as well as a key" in hardening.lockout_reason("publickey", "root", two_factor)
    assert hardening.lockout_reason("publickey", "root", dict(effective, authenticationmethods="publickey")) is None


def test_verification_of_a_hardened_host_from_recorded_facts():
    rows = checks.check_hardening(SETTINGS, None, _fact("base.SshdEffective/nspawn-hardened"),
                                  _fact("base.Fail2banJail/nspawn"), _fact("base.AptConfig/nspawn"))
    assert checks.failures(rows) == [] and len(rows) == len(hardening.SSHD_WANTED) + 4
    weak = dict(_fact("base.SshdEffective/nspawn-hardened"), passwordauthentication="yes")
    (bad,) = checks.failures(checks.check_hardening(SETTINGS, None, weak, _fact("base.Fail2banJail/nspawn"),
                                                    _fact("base.AptConfig/nspawn")))
    assert (bad.check, bad.actual) == ("sshd passwordauthentication", "yes")
    # left as it is (a password login): one row, not a failure, with the reason
    left = checks.check_hardening(SETTINGS, "pyinfra logged in as root with password", weak,
                                  _fact("base.Fail2banJail/nspawn"), _fact("base.AptConfig/nspawn"))
    assert left[0].ok is None and left[0].actual == "left as it is" and "password" in left[0].note
    assert checks.failures(left) == []
    log_file = dict(_fact("base.Fail2banJail/nspawn"), journal=False)
    (bad,) = checks.failures(checks.check_hardening(SETTINGS, None, _fact("base.SshdEffective/nspawn-hardened"),
                                                    log_file, _fact("base.AptConfig/nspawn")))
    assert (bad.check, bad.actual) == ("fail2ban", "sshd jail, log file")
    assert checks.failures(checks.check_hardening(SETTINGS, None, {}, {"running": False}, {}))[0].check.startswith("sshd")


def test_unattended_upgrades_off_is_checked_as_off_and_installs_nothing():
    off = load({"unattended_upgrades": False, "fail2ban": False, "os_hardening": False})
    assert hardening.upgrade_values(off) == {k: "0" for k in hardening.UPGRADE_KEYS}
    on_host = {"values": {k: "1" for k in hardening.UPGRADE_KEYS}, "upgrade_timer": "enabled"}
    bad = checks.failures(checks.check_hardening(off, None, _fact("base.SshdEffective/nspawn-hardened"), {}, on_host))
    assert [b.check for b in bad] == list(hardening.UPGRADE_KEYS)
    assert "hardening" not in packages.by_component(off, ("lb",))
    assert packages.by_component(SETTINGS, ("lb",))["hardening"] == ["fail2ban", "python3-systemd", "unattended-upgrades",
                                                                   *packages.OS_HARDENING]


def test_templates_say_keys_only_journal_backend_and_daily_security_updates():
    sshd = render_template(hardening.SSHD_DROPIN, max_auth_tries=hardening.MAX_AUTH_TRIES)
    for line in ("PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
                 "PubkeyAuthentication yes", f"MaxAuthTries {hardening.MAX_AUTH_TRIES}"):
        assert f"\n{line}\n" in sshd
    jail = render_template(hardening.FAIL2BAN_JAIL, **hardening.fail2ban_template_data(
        load({"fail2ban_ignore": ["203.0.113.7"]}), [22, 2222]))
    assert "\n[sshd]\nenabled = true\nbackend = systemd\nport = 22,2222\nmaxretry = 5\n" in jail
    assert "ignoreip = 127.0.0.1/8 ::1 203.0.113.7\n" in jail and "banaction = nftables-multiport" in jail
    apt = render_template(hardening.APT_CONF, enabled=True)
    assert 'APT::Periodic::Unattended-Upgrade "1";' in apt and 'Automatic-Reboot "false"' in apt
    assert 'APT::Periodic::Unattended-Upgrade "0";' in render_template(hardening.APT_CONF, enabled=False)


def test_unmanaged_files_are_those_neither_lbstack_nor_debian_put_in_its_directories():
    from lbstack import owned
    from lbstack.plan import make_plan

    plan = make_plan(8, 16384, SETTINGS)
    dirs = {d.path: d for d in owned.owned_dirs(SETTINGS, plan)}
    assert {"/etc/nginx/conf.d", "/etc/nginx/sites-enabled", "/etc/lbstack", "/etc/lbstack/fpm",
            "/etc/php/8.2/fpm/conf.d", "/etc/systemd/system/nginx.service.d",
            "/etc/systemd/system/lbstack-fpm@3.service.d", "/etc/systemd/system/mariadb.service.d"} <= set(dirs)
    entries = {
        "/etc/nginx/conf.d": [["extra.conf", "f", ""], ["lbstack.conf", "f", ""]],
        "/etc/php/8.2/fpm/conf.d": [["10-opcache.ini", "l", "/etc/php/8.2/mods-available/opcache.ini"],
                                    ["90-lbstack.ini", "f", ""], ["99-evil.ini", "f", ""],
                                    ["98-link.ini", "l", "/tmp/evil.ini"]],
        "/etc/lbstack/fpm": [["app1.conf", "f", ""], ["app5.conf", "f", ""], ["app6.conf", "f", ""],
                             ["preload.php", "f", ""], ["app1.conf.orig", "f", ""]],
        "/etc/systemd/system/lbstack-fpm@3.service.d": [["lbstack-cpu.conf", "f", ""], ["override.conf", "f", ""]],
    }
    assert owned.unmanaged(list(dirs.values()), entries) == {
        "/etc/nginx/conf.d": ["/etc/nginx/conf.d/extra.conf"],
        "/etc/php/8.2/fpm/conf.d": ["/etc/php/8.2/fpm/conf.d/99-evil.ini", "/etc/php/8.2/fpm/conf.d/98-link.ini"],
        # app6.conf: an instance scaled away, retired by the rolling update (which finds it so)
        "/etc/lbstack/fpm": ["/etc/lbstack/fpm/app1.conf.orig"],
        "/etc/systemd/system/lbstack-fpm@3.service.d": ["/etc/systemd/system/lbstack-fpm@3.service.d/override.conf"],
    }
    rows = checks.check_owned_dirs(owned.unmanaged(list(dirs.values()), entries))
    assert [r.check for r in checks.failures(rows)][0] == "unmanaged files in /etc/nginx/conf.d"
    assert checks.failures(checks.check_owned_dirs({})) == []
    assert "nginx -t -q" in dirs["/etc/nginx/conf.d"].then[0]  # tested before nginx re-reads


def test_extra_mariadb_accounts_are_named_and_kept_ones_are_not():
    from lbstack import layout

    security = _fact("mariadb.Security/nspawn") if (FACTS / "mariadb.Security/nspawn.json").exists() else None
    accounts = ["evil@%", "lbstack@localhost", "lbstack@10.0.0.2", "mariadb.sys@localhost", "mysql@localhost",
                "report@10.0.0.5", "root@localhost"]
    assert layout.mariadb_extra_accounts(accounts, "lbstack", []) == ["evil@%", "report@10.0.0.5"]
    assert layout.mariadb_extra_accounts(accounts, "lbstack", ["report@10.0.0.5"]) == ["evil@%"]
    if security:
        from lbstack.plan import make_plan
        rows = checks.check_mariadb(make_plan(8, 16384, SETTINGS), dict(security, accounts=accounts), SETTINGS)
        assert rows[0].actual == "evil@% report@10.0.0.5" and rows[0].ok is False


def test_an_account_name_read_from_the_server_is_quoted_as_sql():
    from deploy import mariadb

    assert mariadb._quoted("evil") == "'evil'"
    assert mariadb._quoted("a'b\\\\c") == "'a''b\\\\\\\\c'"


def test_os_hardening_adds_kernel_settings_to_the_plan_and_off_leaves_them_out():
    from lbstack.plan import HARDENING_SYSCTL, make_plan

    on = make_plan(8, 16384, SETTINGS).sysctl
    assert on["kernel.kptr_restrict"] == "2" and on["net.ipv4.conf.all.accept_redirects"] == "0"
    assert set(HARDENING_SYSCTL) <= set(on)
    off = make_plan(8, 16384, load({"os_hardening": False})).sysctl
    assert not set(HARDENING_SYSCTL) & set(off) and off["net.core.somaxconn"] == on["net.core.somaxconn"]
    modprobe = render_template(hardening.MODPROBE_CONF, modules=list(hardening.BLOCKED_MODULES))
    assert "install usb-storage /bin/true\nblacklist usb-storage\n" in modprobe
    assert "Authorized access only" in render_template("/etc/issue")
    assert "*    hard    core    0" in render_template(hardening.CORE_LIMITS)
    sshd = render_template(hardening.SSHD_DROPIN, **hardening.sshd_template_data())
    assert "\nAllowTcpForwarding no\n" in sshd and "\nAllowAgentForwarding no\n" in sshd


def test_lynis_report_parsing():
    from bench.lynis import parse_report

    report = ("lynis_tests_done=257\nhardening_index=74\nwarning[]=SSH-7408|weak|-|-|\n"
              "suggestion[]=DBS-1884|Configure Redis|-|-|\nsuggestion[]=LYNIS|Update|-|-|\n")
    assert parse_report(report) == {"index": 74, "tests": 257, "warnings": ["SSH-7408"],
                                    "suggestions": ["DBS-1884", "LYNIS"]}
    assert parse_report("")["index"] is None
