"""Settings: defaults, and bad input refused with a message naming the key and the fix."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lbstack import REPO_ROOT
from lbstack.settings import FIELDS, SettingsError, load, load_file, markdown_table

# (raw settings, the key the message must name, a phrase of the fix)
BAD = [
    ({"instancess": 5}, "instancess", "Did you mean 'instances'"),
    ({"fail2ban_ignore": ["office"]}, "fail2ban_ignore", "not an IP address or network"),
    ({"db_keep_accounts": ["report"]}, "db_keep_accounts", "not an account as user@host"),
    ({"db_keep_accounts": ["x'@%"]}, "db_keep_accounts", "not an account as user@host"),
    ({"db_keep_accounts": ["root@%"]}, "db_keep_accounts", "always kept"),
    ({"fail2ban_ignore": [7]}, "fail2ban_ignore", "not an IP address or network"),
    ({"fail2ban_maxretry": 0}, "fail2ban_maxretry", "at least 1"),
    ({"ssh_hardening": "sometimes"}, "ssh_hardening", "true or false"),
    ({"no_such_thing": 1}, "no_such_thing", "unknown setting"),
    ({"instances": 0}, "instances", "at least 1"),
    ({"instances": -3}, "instances", "at least 1"),
    ({"instances": "five"}, "instances", "whole number"),
    ({"instances": True}, "instances", "whole number"),
    ({"instances": 2.5}, "instances", "whole number"),
    ({"instances": 100}, "instances", "at most 16"),
    ({"lb_method": "random"}, "lb_method", "least_conn, ip_hash, round_robin"),
    ({"server_names": ["exa mple.com"]}, "server_names", "not a valid host name"),
    ({"server_names": ["-bad.example.com"]}, "server_names", "not a valid host name"),
    ({"server_names": "example.com"}, "server_names", "must be a list"),
    ({"server_names": []}, "server_names", "at least one name"),
    ({"app_source": ""}, "app_source", "is empty"),
    ({"app_source": "/nonexistent/app/path"}, "app_source", "does not exist"),
    ({"app_source": "git+https://example.invalid/app.git"}, "app_source", "names no ref"),
    ({"php_version": "7.4"}, "php_version", "not packaged by Debian 12"),
    ({"php_version": "eight"}, "php_version", "MAJOR.MINOR"),
    ({"tls": "yes"}, "tls", "off, self_signed, files, acme"),
    ({"tls": "files"}, "tls_certificate_path", "a path is missing"),
    ({"tls": "files", "tls_certificate_path": "cert.pem", "tls_key_path": "/k"}, "tls_certificate_path", "absolute path"),
    ({"tls_key_path": "/etc/ssl/k.pem"}, "tls_key_path", "tls is not 'files'"),
    ({"tls": "acme"}, "server_names", "cannot have an ACME certificate"),
    ({"tls": "acme", "server_names": ["*.example.com"]}, "server_names", "wildcard"),
    ({"tls": "acme", "server_names": ["example.com"], "tls_acme_directory": "http://ca.example/dir"},
     "tls_acme_directory", "https:// URL"),
    ({"tls": "acme", "server_names": ["example.com"], "tls_acme_email": "ops"}, "tls_acme_email", "e-mail address"),
    ({"tls_acme_ca_bundle": "/etc/ssl/ca.pem"}, "tls_acme_ca_bundle", "tls is not 'acme'"),
    ({"tls_hsts_max_age_s": -1}, "tls_hsts_max_age_s", "0 (no HSTS)"),
    ({"lb_cpus": 0}, "lb_cpus", "at least 0.1"),
    ({"db_cpus": -1}, "db_cpus", "at least 0.1"),
    ({"app_memory_mib": 64}, "app_memory_mib", "at least 128 MiB"),
    ({"db_memory_mib": "6G"}, "db_memory_mib", "whole number"),
    ({"capacity_memory_mib": 16384, "db_memory_mib": 32768}, "db_memory_mib", "more than the host"),
    ({"capacity_cpus": 2, "db_cpus": 3}, "db_cpus", "more than the host"),
    ({"capacity_memory_mib": 256}, "capacity_memory_mib", "too small"),
    ({"capacity_cpus": -2}, "capacity_cpus", "must be positive"),
    ({"os_reserve_mib": -1}, "os_reserve_mib", "0 or more"),
    ({"overcommit": "maybe"}, "overcommit", "scale, refuse"),
    ({"app_user": "Root User"}, "app_user", "not a valid user name"),
    ({"ntp_servers": ["ntp server"]}, "ntp_servers", "not a host name"),
    ({"php_worker_memory_mib": 0}, "php_worker_memory_mib", "at least 8 MiB"),
    ({"lb_max_clients": 0}, "lb_max_clients", "at least 1"),
    ({"instances": None}, "instances", "must not be empty"),
    ({"firewall": "yes"}, "firewall", "true or false"),
    ({"firewall": 1}, "firewall", "true or false"),
    ({"ssh_port": 80}, "ssh_port", "web port"),
    ({"ssh_port": 70000}, "ssh_port", "1..65535"),
    ({"db_name": "My-App"}, "db_name", "plain name"),
    ({"db_user": "x" * 40}, "db_user", "plain name"),
    ({"releases_keep": 0}, "releases_keep", "at least 1"),
    ({"queue_workers": -1}, "queue_workers", "0..64"),
    ({"queue_workers": 65}, "queue_workers", "0..64"),
    ({"queue_workers": 0}, "queue_workers", "would never run"),
    ({"queue_connection": "sync"}, "queue_workers", "Set queue_workers: 0"),
    ({"queue_connection": "sqs"}, "queue_connection", "redis, database, sync"),
    ({"queue_names": []}, "queue_names", "at least one queue"),
    ({"queue_names": ["high prio"]}, "queue_names", "not a queue name"),
    ({"queue_timeout_s": 0}, "queue_timeout_s", "at least 1"),
    ({"queue_memory_mib": 32}, "queue_memory_mib", "at least 64 MiB"),
    ({"capacity_cpus": 2, "db_cpus": 2, "queue_cpus": 3}, "queue_cpus", "more than the host"),
    ({"scheduler": "yes"}, "scheduler", "true or false"),
    ({"artisan_commands": ["optimize; rm -rf /"]}, "artisan_commands", "no shell"),
    ({"artisan_commands": ["migrate:fresh"]}, "artisan_commands", "lbstack runs"),
    ({"artisan_commands": [""]}, "artisan_commands", "not an artisan command"),
    ({"artisan_commands": "optimize"}, "artisan_commands", "must be a list"),
    # settings that would hand out privileges (issue: hardened by default)
    ({"app_user": "root"}, "app_user", "is a system account"),
    ({"app_user": "www-data"}, "app_user", "is a system account"),
    ({"app_user": "nobody"}, "app_user", "an account of its own"),
    ({"app_user": "mysql"}, "app_user", "is a system account"),
    ({"app_user": "redis"}, "app_user", "is a system account"),
    ({"app_user": "systemd-network"}, "app_user", "is a system account"),
    ({"db_user": "root"}, "db_user", "MariaDB's own accounts"),
    ({"db_user": "mysql"}, "db_user", "MariaDB's own accounts"),
    ({"db_name": "mysql"}, "db_name", "MariaDB system schema"),
    ({"db_name": "information_schema"}, "db_name", "a database of its own"),
    ({"db_name": "performance_schema"}, "db_name", "MariaDB system schema"),
    ({"db_name": "sys"}, "db_name", "MariaDB system schema"),
    ({"server_names": ["example.com", "www.example.com", "example.com"]}, "server_names", "is listed twice"),
    ({"app_source": "https://example.org/app.tar.gz"}, "app_source", "the scheme 'https' is not supported"),
    ({"app_source": "ftp://example.org/app"}, "app_source", "'git+URL@REF'"),
    ({"app_source": "git+http://example.org/app.git@v1"}, "app_source", "git over 'http' is not supported"),
    ({"app_source": "git+example.org:app.git@v1"}, "app_source", "is not supported"),
]


def test_defaults_are_the_seed_profile():
    s = load({})
    assert (s.instances, s.lb_method, s.php_version, s.tls) == (5, "least_conn", "8.2", "off")
    assert (s.app_cpus, s.app_memory_mib, s.db_cpus, s.db_memory_mib) == (1.0, 3072, 3.0, 6144)
    assert (s.cache_cpus, s.cache_memory_mib, s.lb_memory_mib) == (1.0, 3072, 2048)


@pytest.mark.parametrize("raw,key,fix", BAD, ids=[f"{k}-{i}" for i, (_, k, _) in enumerate(BAD)])
def test_bad_settings_are_refused_naming_key_and_fix(raw, key, fix):
    with pytest.raises(SettingsError) as err:
        load(raw)
    message = str(err.value)
    assert message.startswith(key) or f"{key}:" in message or f"{key}/" in message, message
    assert fix in message, message


def test_good_values_are_kept():
    s = load({"instances": 3, "lb_method": "ip_hash", "server_names": ["example.com", "*.example.com"],
              "tls": "files", "tls_certificate_path": "/c.pem", "tls_key_path": "/k.pem",
              "capacity_cpus": 8, "capacity_memory_mib": 16384, "db_cpus": 2})
    assert s.instances == 3 and s.lb_method == "ip_hash" and s.server_names[1] == "*.example.com"
    assert s.db_cpus == 2.0 and isinstance(s.db_cpus, float)


def test_every_field_is_documented_with_a_unit_column():
    for f in FIELDS:
        assert f.metadata.get("doc"), f"{f.name} has no documentation"
        assert "unit" in f.metadata


def test_readme_settings_table_is_generated_from_the_fields():
    readme = (REPO_ROOT / "README.md").read_text()
    start = readme.index("<!-- settings-table:begin -->") + len("<!-- settings-table:begin -->")
    end = readme.index("<!-- settings-table:end -->")
    assert readme[start:end].strip() == markdown_table().strip(), (
        "README settings table is stale: regenerate it with `lbstack settings-doc`"
    )


def _pyinfra_with(tmp_path: Path, settings: dict) -> subprocess.CompletedProcess:
    """Run pyinfra with an inventory whose only host cannot be reached (nothing listens on port 9)."""
    inventory = tmp_path / "inv.py"
    inventory.write_text(
        "from lbstack.settings import inventory_data\n"
        f"all = (['127.0.0.1'], inventory_data({settings!r}, ssh_port=9, ssh_connect_retries=0))\n"
        "lb = app = db = cache = ['127.0.0.1']\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "pyinfra", "-y", str(inventory), "deploy/full.py"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("raw,key,fix", [BAD[0], BAD[2], BAD[8], BAD[9], BAD[26]],
                         ids=["unknown-key", "zero-instances", "lb-method", "server-name", "memory-beyond-host"])
def test_pyinfra_stops_before_connecting(tmp_path, raw, key, fix):
    result = _pyinfra_with(tmp_path, raw)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"lbstack: invalid settings: {key}" in output and fix in output, output
    assert "Connecting to hosts" not in output, output
    assert "Traceback" not in output, output


def _pyinfra_group_data(tmp_path: Path, settings: dict) -> subprocess.CompletedProcess:
    """pyinfra with settings in group_data/all.py, the other place pyinfra reads data from."""
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "all.py").write_text(
        f"from lbstack.settings import validated\nlbstack = validated({settings!r})\nssh_port = 9\n"
    )
    (tmp_path / "inv.py").write_text("lb = app = db = cache = ['127.0.0.1']\n")
    return subprocess.run(
        [sys.executable, "-m", "pyinfra", str(tmp_path / "inv.py"), "debug-inventory", "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )


def test_group_data_settings_are_loaded_and_validated(tmp_path):
    good = _pyinfra_group_data(tmp_path, {"instances": 3})
    assert good.returncode == 0, good.stderr
    (host,) = json.loads(good.stdout)
    assert host["data"]["lbstack"]["instances"] == 3 and host["data"]["lbstack"]["lb_method"] == "least_conn"
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = _pyinfra_group_data(bad_dir, {"lb_method": "fastest"})
    assert bad.returncode != 0
    assert "lbstack: invalid settings: lb_method" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr


def test_settings_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(SettingsError, match="missing.yaml: settings file not found"):
        load_file(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("instances: [5\n")
    with pytest.raises(SettingsError, match="broken.yaml: not valid YAML"):
        load_file(broken)
    typo = tmp_path / "typo.yaml"
    typo.write_text("instancs: 3\n")
    with pytest.raises(SettingsError, match="typo.yaml: instancs: unknown setting. Did you mean 'instances'"):
        load_file(typo)
    good = tmp_path / "good.yaml"
    good.write_text("instances: 3\nlb_method: ip_hash\n")
    assert load_file(good).lb_method == "ip_hash"


@pytest.mark.parametrize("value", [["/srv/app"], ["../etc"], ["app/../.."], ["app dir"], [3], "app"])
def test_php_preload_dirs_stay_inside_the_release(value):
    with pytest.raises(SettingsError) as err:
        load({"php_preload": value})
    assert "php_preload" in str(err.value)


def test_php_preload_defaults_to_app_and_can_be_turned_off():
    assert load({}).php_preload == ["app"]
    assert load({"php_preload": []}).php_preload == []
    assert load({"php_preload": ["app", "vendor/laravel/framework/src"]}).php_preload[1] == "vendor/laravel/framework/src"


def test_queue_and_artisan_settings_that_make_sense_load():
    s = load({"queue_workers": 0, "queue_connection": "sync", "scheduler": False,
              "artisan_commands": ["optimize", "horizon:publish --force", "cache:clear --store=redis"]})
    assert (s.queue_workers, s.queue_connection, s.scheduler) == (0, "sync", False)
    assert load({}).queue_workers == 2 and load({}).queue_connection == "redis"


def test_a_refused_app_source_url_never_shows_its_password():
    with pytest.raises(SettingsError) as refused:
        load({"app_source": "git+http://deploy:s3cr3t@git.example.org/app.git@v1"})
    assert "s3cr3t" not in str(refused.value) and "***@git.example.org" in str(refused.value)
    with pytest.raises(SettingsError) as refused:
        load({"app_source": "https://deploy:s3cr3t@example.org/app.tar.gz"})
    assert "s3cr3t" not in str(refused.value)


def test_the_documented_app_sources_are_still_accepted(tmp_path):
    (tmp_path / "app").mkdir()
    for source in ("sample", "git+https://example.org/you/app.git@v1.3.0", "git+ssh://git@example.org/app.git@main",
                   "git+file:///srv/git/app.git@v1", str(tmp_path / "app")):
        assert load({"app_source": source}).app_source == source


def test_an_existing_account_of_the_host_is_refused_as_app_user_but_lbstacks_own_is_not():
    from lbstack.settings import check_app_account

    settings = load({"app_user": "deployer"})
    check_app_account(settings, None, "/srv/lbstack")  # not there yet: lbstack creates it
    check_app_account(settings, {"uid": 999, "home": "/srv/lbstack"}, "/srv/lbstack")  # made by lbstack
    with pytest.raises(SettingsError, match=r"app_user: 'deployer' is a system account this host already has "
                                            r"\(uid 998, home /var/lib/deployer\)") as err:
        check_app_account(settings, {"uid": 998, "home": "/var/lib/deployer"}, "/srv/lbstack")
    assert "Choose a name the host does not have" in str(err.value)
    with pytest.raises(SettingsError, match="a person's account"):
        check_app_account(load({"app_user": "admin"}), {"uid": 1000, "home": "/home/admin"}, "/srv/lbstack")
