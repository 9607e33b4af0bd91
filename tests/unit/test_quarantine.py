"""The quarantine's moves: argument lists, a release without the secrets its config cache holds."""

from lbstack import layout, owned


def test_a_file_is_moved_under_its_full_path_and_the_quarantine_is_roots_alone():
    moves = owned.quarantine_moves(["/etc/nginx/conf.d/x.conf"], "20261202T050140Z")
    dest = f"{owned.QUARANTINE_DIR}/20261202T050140Z/etc/nginx/conf.d/x.conf"
    assert moves == [["mkdir", "-p", "-m", "700", dest.rsplit("/", 1)[0]],
                     ["mv", "-f", "/etc/nginx/conf.d/x.conf", dest],
                     ["chmod", "700", owned.QUARANTINE_DIR]]


def test_a_quarantined_release_loses_its_config_cache_but_its_manifest_is_kept():
    release = f"{layout.RELEASES_DIR}/20261202T083804-f38d5d462be1"
    manifest = layout.manifest("20261202T083804-f38d5d462be1")
    moves = owned.quarantine_moves([release, manifest], "S")
    dest = f"{owned.QUARANTINE_DIR}/S{release}"
    assert ["rm", "-f", f"{dest}/{layout.CONFIG_CACHE}"] in moves
    assert ["mv", "-f", manifest, f"{owned.QUARANTINE_DIR}/S{manifest}"] in moves
    assert [m for m in moves if m[0] == "rm"] == [["rm", "-f", f"{dest}/{layout.CONFIG_CACHE}"]]
    # removed after the move, from the quarantined copy, never from a live release
    assert moves.index(["rm", "-f", f"{dest}/{layout.CONFIG_CACHE}"]) > moves.index(["mv", "-f", release, dest])


def test_nothing_to_move_is_no_commands():
    assert owned.quarantine_moves([], "S") == []
