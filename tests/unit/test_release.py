"""App releases are packed deterministically: the same source is the same release."""

import subprocess
import tarfile

import pytest

from lbstack import release
from lbstack.release import shown


def _app(root):
    (root / "public").mkdir(parents=True)
    (root / "public" / "index.php").write_text("<?php echo 'hi';\n")
    (root / "artisan").write_text("#!/usr/bin/env php\n")
    (root / "artisan").chmod(0o755)
    (root / "storage" / "logs").mkdir(parents=True)
    (root / "storage" / "logs" / "laravel.log").write_text("old log\n")
    (root / ".env").write_text("DB_PASSWORD=local\n")
    (root / "vendor").mkdir()  # its dependencies committed
    (root / "vendor" / "autoload.php").write_text("<?php\n")
    return root


def test_same_source_same_digest_and_shared_paths_left_out(tmp_path, monkeypatch):
    monkeypatch.setattr(release, "CACHE_DIR", tmp_path / "cache")
    app = _app(tmp_path / "app")
    first, second = release.build(str(app)), release.build(str(app))
    assert first.digest == second.digest and first.archive == second.archive
    with tarfile.open(first.archive) as tar:
        names = tar.getnames()
        assert "public/index.php" in names and "artisan" in names
        assert not any(n.startswith(("storage", ".env")) for n in names)
        assert tar.getmember("artisan").mode == 0o755 and tar.getmember("public/index.php").mtime == 315532800
        # never 0: OPcache does not cache a file whose mtime is 0, so the app would compile on every request
        assert all(member.mtime > 0 for member in tar.getmembers())
    (app / "public" / "index.php").write_text("<?php echo 'changed';\n")
    assert release.build(str(app)).digest != first.digest


def test_archive_with_one_top_directory_is_that_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(release, "CACHE_DIR", tmp_path / "cache")
    app = _app(tmp_path / "src" / "app-1.0")
    archive = tmp_path / "app.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(app, arcname="app-1.0")
    assert release.build(str(archive)).digest == release.build(str(app)).digest


def test_git_ref_is_checked_out(tmp_path, monkeypatch):
    monkeypatch.setattr(release, "CACHE_DIR", tmp_path / "cache")
    repo = _app(tmp_path / "repo")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(tmp_path)}
    for cmd in (["init", "-q", "-b", "main"], ["add", "public", "artisan", "vendor"], ["commit", "-qm", "v1"], ["tag", "v1"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True, env=env)
    built = release.build(f"git+file://{repo}@v1")
    with tarfile.open(built.archive) as tar:
        assert "public/index.php" in tar.getnames() and not any(n.startswith(".git") for n in tar.getnames())
    with pytest.raises(release.ReleaseError, match="checkout"):
        release.build(f"git+file://{repo}@no-such-ref")


def test_not_a_laravel_layout_is_refused(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(release.ReleaseError, match="public/index.php"):
        release.build(str(tmp_path / "x"))


def test_an_app_without_vendor_or_composer_json_is_refused_and_a_lock_is_required(tmp_path, monkeypatch):
    monkeypatch.setattr(release, "CACHE_DIR", tmp_path / "cache")
    app = _app(tmp_path / "app")
    (app / "vendor" / "autoload.php").unlink()
    (app / "vendor").rmdir()
    with pytest.raises(release.ReleaseError, match="neither vendor/ nor composer.json"):
        release.build(str(app))
    (app / "composer.json").write_text("{}\n")
    with pytest.raises(release.ReleaseError, match="without composer.lock"):
        release.build(str(app))
    (app / "composer.lock").write_text("{}\n")
    built = release.build(str(app))
    assert built.has_composer_json and not built.has_vendor  # the host runs composer install


def test_the_bundled_app_ships_composer_json_and_its_lock_without_vendor():
    built = release.build("sample")
    assert built.has_composer_json and not built.has_vendor


def test_release_id_is_time_then_digest():
    build = release.Build(archive=None, digest="abcdef0123456789" * 4, source="sample",
                          has_composer_json=False, has_vendor=False)
    rid = release.new_release_id(build, now=0)
    assert rid == "19700101T000000-abcdef012345" and release.digest_of(rid) == build.short


def test_credentials_in_a_source_url_are_never_shown():

    assert shown("git+https://deploy:s3cr3t@git.example.org/app.git@v1") == "git+https://***@git.example.org/app.git@v1"
    assert shown("/srv/src/app") == "/srv/src/app"
    assert "s3cr3t" not in shown("lbstack deploy --set app_source=git+https://u:s3cr3t@h/x.git@main")
