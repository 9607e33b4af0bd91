"""lbstack's own operations that read the host in one command (``template_file``, ``directories``,
``service_user``): run as generators against a scripted host, as pyinfra runs them, checking
which facts they read and which commands they yield. When something differs they hand over to
pyinfra's own operation, whose commands are the ones expected here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pyinfra.api import Config, FileUploadCommand
from pyinfra.context import ctx_host, ctx_state
from pyinfra.facts import files as pf, server as ps

from facts.base import Account
from facts.files import Directories, FileState
from lbstack import operations

SHA1_OF_NOTHING = hashlib.sha1(b"").hexdigest()


class ScriptedHost:
    """The part of pyinfra's Host the operations use: facts come from ``facts``
    (``{FactClass: value or callable(**kwargs)}``); every read is recorded."""

    name = "scripted"
    current_op_global_arguments = None

    def __init__(self, facts: dict):
        self.facts = facts
        self.reads: list[tuple[str, dict]] = []
        self.noops: list[str] = []

    def get_fact(self, cls, *args, **kwargs):
        self.reads.append((cls.__name__, kwargs))
        value = self.facts.get(cls)
        return value(**kwargs) if callable(value) else value

    def noop(self, message):
        self.noops.append(message)

    def get_temp_filename(self, hash_key=None, hash_filename=True, *, temp_directory=None):
        return "/tmp/pyinfra-test"


class ScriptedState:
    cwd = None
    inventory = None
    config = Config()


def run(op, host: ScriptedHost, **kwargs) -> list[str]:
    with ctx_state.use(ScriptedState()), ctx_host.use(host):
        return [f"upload {c.dest}" if isinstance(c, FileUploadCommand) else str(c.get_raw_value())
                for c in op._inner(**kwargs)]


@pytest.fixture
def template(tmp_path) -> Path:
    path = tmp_path / "x.conf.j2"
    path.write_text("workers {{ workers }}\n")
    return path


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def file_state(mode=644, content="workers 4\n", kind="regular file", user="root"):
    return {"type": kind, "mode": mode, "user": user, "group": "root", "sha256": sha256(content)}


def test_template_file_unchanged_is_one_read_and_no_command(template):
    host = ScriptedHost({FileState: file_state()})
    assert run(operations.template_file, host, src=str(template), dest="/etc/x.conf", mode="644", workers=4) == []
    assert [name for name, _ in host.reads] == ["FileState"]
    assert host.noops == ["file /etc/x.conf is already uploaded"]


@pytest.mark.parametrize("live,why", [
    (file_state(content="workers 2\n"), "content"),
    (file_state(kind="symbolic link"), "not a regular file"),
])
def test_template_file_uploads_through_files_template_when_the_content_differs(template, live, why):
    host = ScriptedHost({FileState: live, pf.File: {"mode": 644, "user": "root", "group": "root"},
                         pf.Directory: {"mode": 755}, pf.Sha1File: SHA1_OF_NOTHING})
    commands = run(operations.template_file, host, src=str(template), dest="/etc/x.conf", mode="644", workers=4)
    assert commands[0] == "upload /etc/x.conf", why
    assert "FileState" in [name for name, _ in host.reads] and "Sha1File" in [name for name, _ in host.reads]


def test_template_file_missing_is_created_with_its_mode(template):
    host = ScriptedHost({FileState: None, pf.File: None, pf.Directory: lambda path: {"mode": 755} if path == "/etc" else None})
    commands = run(operations.template_file, host, src=str(template), dest="/etc/x.conf", mode="640", workers=4)
    assert commands == ["upload /etc/x.conf", "chmod 640 /etc/x.conf"]


def test_template_file_wrong_mode_is_only_chmodded(template):
    host = ScriptedHost({FileState: file_state(mode=600),
                         pf.File: {"mode": 600, "user": "root", "group": "root"},
                         pf.Directory: {"mode": 755},
                         pf.Sha1File: hashlib.sha1(b"workers 4\n").hexdigest()})
    commands = run(operations.template_file, host, src=str(template), dest="/etc/x.conf", mode="644", workers=4)
    assert commands == ["chmod 644 /etc/x.conf"]


def test_template_file_checks_owner_only_when_asked(template):
    host = ScriptedHost({FileState: file_state(user="nobody")})
    assert run(operations.template_file, host, src=str(template), dest="/etc/x.conf", mode="644", workers=4) == []


DIRS = [("/srv/a", "root", "root", "755"), ("/srv/a/b", "app", "app", "775"), ("/srv/a/c", "root", "root", "700")]


def test_directories_in_place_are_one_read_and_no_command():
    host = ScriptedHost({Directories: {"/srv/a": {"user": "root", "group": "root", "mode": 755},
                                       "/srv/a/b": {"user": "app", "group": "app", "mode": 775},
                                       "/srv/a/c": {"user": "root", "group": "root", "mode": 700}}})
    assert run(operations.directories, host, paths=DIRS) == []
    assert host.reads == [("Directories", {"paths": ["/srv/a", "/srv/a/b", "/srv/a/c"]})]


def test_directories_makes_or_corrects_only_those_that_differ_in_order():
    live = {"/srv/a": {"user": "root", "group": "root", "mode": 755},
            "/srv/a/c": {"user": "root", "group": "root", "mode": 755}}
    pyinfra_view = {"/srv/a/b": None, "/srv/a/c": {"user": "root", "group": "root", "mode": 755}}
    host = ScriptedHost({Directories: live, pf.Directory: lambda path: pyinfra_view[path]})
    commands = run(operations.directories, host, paths=DIRS)
    assert commands == ["mkdir -p /srv/a/b", "chmod 775 /srv/a/b", "chown app:app /srv/a/b", "chmod 700 /srv/a/c"]


ACCOUNT = {"uid": 999, "gid": 999, "group": "lbstack", "home": "/srv/lbstack", "shell": "/usr/sbin/nologin"}
USER = {"user": "lbstack", "group": "lbstack", "home": "/srv/lbstack", "shell": "/usr/sbin/nologin"}


def test_service_user_in_place_is_one_read_and_no_command():
    host = ScriptedHost({Account: ACCOUNT})
    assert run(operations.service_user, host, **USER) == []
    assert host.reads == [("Account", {"user": "lbstack"})]


def users_fact(shell):
    return {"lbstack": {"home": "/srv/lbstack", "shell": shell, "group": "lbstack", "groups": [], "comment": "",
                        "password": None}}


@pytest.mark.parametrize("account,users,expected", [
    (None, {}, "useradd -d /srv/lbstack -s /usr/sbin/nologin -g lbstack -r -M lbstack"),
    (dict(ACCOUNT, shell="/bin/sh"), users_fact("/bin/sh"), "usermod -s /usr/sbin/nologin lbstack"),
])
def test_service_user_missing_or_different_goes_through_server_user(account, users, expected):
    host = ScriptedHost({Account: account, ps.Os: "Linux", ps.Users: users, ps.Groups: ["lbstack"],
                         ps.Which: "/usr/sbin/useradd"})
    assert run(operations.service_user, host, **USER) == [expected]
