"""Supplied secrets are checked before any host is touched, and the message never shows a value."""

import pytest

from deploy import secrets

GOOD = "Abcdefghijklmnop0123456789+/=:._-"


def test_nothing_supplied(monkeypatch):
    for name in ("LBSTACK_SECRETS_FILE", "LBSTACK_SECRET_DB_PASSWORD", "LBSTACK_SECRET_REDIS_PASSWORD",
                 "LBSTACK_SECRET_APP_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert secrets.supplied() == {}


def test_environment_and_file(monkeypatch, tmp_path):
    path = tmp_path / "secrets.yaml"
    path.write_text(f"redis_password: {GOOD}\ndb_password: from-file-0123456789\n")
    monkeypatch.setenv("LBSTACK_SECRETS_FILE", str(path))
    monkeypatch.setenv("LBSTACK_SECRET_DB_PASSWORD", "from-env-0123456789")
    assert secrets.supplied() == {"redis_password": GOOD, "db_password": "from-env-0123456789"}


@pytest.mark.parametrize("value", ["short", "has space in it 0123456789", "quote'0123456789abcdef", "x" * 300])
def test_a_bad_value_is_refused_without_showing_it(monkeypatch, capsys, value):
    monkeypatch.delenv("LBSTACK_SECRETS_FILE", raising=False)
    monkeypatch.setenv("LBSTACK_SECRET_APP_KEY", value)
    with pytest.raises(SystemExit) as exc:
        secrets.supplied()
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "LBSTACK_SECRET_APP_KEY" in err and "value not shown" in err and value not in err


def test_an_unknown_name_in_the_file_is_refused(monkeypatch, tmp_path, capsys):
    path = tmp_path / "secrets.yaml"
    path.write_text(f"db_pasword: {GOOD}\n")
    monkeypatch.setenv("LBSTACK_SECRETS_FILE", str(path))
    with pytest.raises(SystemExit):
        secrets.supplied()
    assert "unknown secret 'db_pasword'" in capsys.readouterr().err
