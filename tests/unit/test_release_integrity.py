"""Release integrity: the manifest listing is real shell run here on a real directory, and the
fact reads what differs (facts.app.ReleaseIntegrity)."""

import subprocess

from facts.app import ReleaseIntegrity, release_listing
from lbstack import checks, release


def _listing(path) -> str:
    return subprocess.run(["sh", "-c", release_listing(str(path))], capture_output=True, text=True, check=True).stdout


def _integrity(root, manifests, ids):
    fact = ReleaseIntegrity()
    command = fact.command(releases=ids, root=str(root), manifests=str(manifests))
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout
    return fact.process(out.splitlines())


def test_a_changed_added_removed_file_and_a_moved_link_are_each_found(tmp_path):
    rel = tmp_path / "releases" / "r1"
    (rel / "public").mkdir(parents=True)
    (rel / "public" / "index.php").write_text("<?php echo 1;\n")
    (rel / "artisan").write_text("#!/usr/bin/env php\n")
    (rel / "storage").symlink_to("/srv/shared/storage")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "r1.sha256").write_text(_listing(rel))
    assert _integrity(tmp_path, manifests, ["r1"])["r1"]["state"] == "ok"

    with (rel / "public" / "index.php").open("a") as handle:
        handle.write("eval($_GET['x']);\n")
    (rel / "public" / "shell.php").write_text("<?php system($_GET['c']);\n")
    (rel / "artisan").unlink()
    (rel / "storage").unlink()
    (rel / "storage").symlink_to("/tmp")
    entry = _integrity(tmp_path, manifests, ["r1"])["r1"]
    assert entry["state"] == "tampered"
    assert entry["changed"] == ["public/index.php", "storage"]
    assert entry["added"] == ["public/shell.php"]
    assert entry["removed"] == ["artisan"]
    assert release.tampered(entry) == "changed public/index.php, storage; added public/shell.php; removed artisan"
    row, = checks.check_release_integrity({"r1": entry})
    assert not row.ok and "public/shell.php" in row.actual


def test_a_release_without_a_manifest_or_gone_is_said_so(tmp_path):
    (tmp_path / "releases" / "old").mkdir(parents=True)
    (tmp_path / "manifests").mkdir()
    result = _integrity(tmp_path, tmp_path / "manifests", ["old", "gone"])
    assert result["old"]["state"] == "no manifest"
    assert result["gone"]["state"] == "missing"
    rows = checks.check_release_integrity(result)
    assert [r.ok for r in rows] == [False, False]


def test_a_release_sealed_since_manifests_without_one_is_suspect_an_older_one_is_recorded():
    assert release.has_manifest_by_design("20261202T050000-3f2a9c1d4e5b")
    assert not release.has_manifest_by_design("20261124T101500-3f2a9c1d4e5b")
    old, new = checks.check_release_integrity({
        "20261124T101500-3f2a9c1d4e5b": {"state": "no manifest"},
        "20261202T050000-3f2a9c1d4e5b": {"state": "no manifest"}})
    assert "records it" in old.note and "replaces it" in new.note
