"""App releases, built on the machine running lbstack: the app source (the bundled sample app,
a directory, a .tar.gz archive or ``git+URL@REF``) packed into a deterministic archive whose
SHA-256 names the release, so the same source is the same release and a re-run deploys nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lbstack import REPO_ROOT
from lbstack.settings import SAMPLE_APP

SAMPLE_APP_DIR = REPO_ROOT / "sample-app"
# never shipped in a release: shared between releases on the host, or not the app's
EXCLUDED_TOP = {".env", "storage", ".git", "node_modules"}
CACHE_DIR = Path.home() / ".cache" / "lbstack" / "releases"


class ReleaseError(RuntimeError):
    """The app source cannot be packed; the message says why and what to fix."""


@dataclass(frozen=True)
class Build:
    archive: Path  # the deterministic .tar.gz
    digest: str  # its SHA-256 (hex)
    source: str  # what it was built from, for the release marker
    has_composer_json: bool
    has_vendor: bool

    @property
    def short(self) -> str:
        return self.digest[:12]

    @property
    def needs_composer(self) -> bool:
        """The host runs :data:`COMPOSER_INSTALL` in it: composer.json (and its lock), no vendor/."""
        return self.has_composer_json and not self.has_vendor


# How a release is built on its host, by the deploy (deploy/app.py) and by the bench's plain-apt
# hosts alike: Composer's optimized classmap (when the release needs it), then Laravel's caches.
COMPOSER_INSTALL = ("composer", "install", "--no-dev", "--optimize-autoloader", "--no-interaction", "--no-progress")
ARTISAN_CACHES = ("config", "route", "view", "event")  # `artisan <what>:cache` per release, in this order


def shown(source: str) -> str:
    """``source`` as lbstack prints or records it: credentials in a URL (``https://user:token@host``)
    replaced by ``***``."""
    return re.sub(r"://[^/@\s]+@", "://***@", source)


def new_release_id(build: Build, now: float | None = None) -> str:
    """``20261124T101500-3f2a9c1d4e5b``: UTC time of the first deploy, then the content digest."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + "-" + build.short


def digest_of(release_id: str) -> str:
    return release_id.rsplit("-", 1)[-1]


def build(app_source: str) -> Build:
    """Pack ``app_source`` (see the ``app_source`` setting) into the local release cache."""
    with tempfile.TemporaryDirectory(prefix="lbstack-release-") as tmp:
        if app_source == SAMPLE_APP:
            root = SAMPLE_APP_DIR
        elif app_source.startswith("git+"):
            root = _checkout(app_source[4:], Path(tmp) / "checkout")
        else:
            path = Path(app_source)
            path = path if path.is_absolute() else REPO_ROOT / path
            root = _unpack(path, Path(tmp) / "unpacked") if path.is_file() else path
        if not (root / "public" / "index.php").is_file():
            raise ReleaseError(f"app_source {app_source!r}: no public/index.php: not a Laravel-layout app.")
        has_vendor, has_composer = (root / "vendor").is_dir(), (root / "composer.json").is_file()
        if not has_vendor and not has_composer:
            raise ReleaseError(f"app_source {shown(app_source)!r}: neither vendor/ nor composer.json: lbstack deploys an "
                               "app with its dependencies committed (vendor/), or with composer.json and composer.lock "
                               "for `composer install` on the host. Add one of them.")
        if not has_vendor and not (root / "composer.lock").is_file():
            raise ReleaseError(f"app_source {shown(app_source)!r}: composer.json without composer.lock and no vendor/: "
                               "the host would resolve different versions each time. Run `composer update` where you "
                               "develop and commit composer.lock.")
        data = _pack(root)
        digest = hashlib.sha256(data).hexdigest()
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        archive = CACHE_DIR / f"{digest[:12]}.tar.gz"
        if not archive.exists():
            partial = archive.with_suffix(".partial")
            partial.write_bytes(data)
            partial.replace(archive)
        return Build(archive, digest, app_source, has_composer, has_vendor)


# Every member's mtime: fixed, so the archive depends only on content, and not 0: OPcache takes a
# zero mtime for "no timestamp" and then never caches the file (file_update_protection), which
# made every request compile the whole app again (3x the CPU per request, found by `lbstack bench`).
ARCHIVE_MTIME = 315532800  # 1980-01-01T00:00:00Z, the usual reproducible-build epoch


def _pack(root: Path) -> bytes:
    """A tar.gz of ``root`` that depends only on names, contents and executable bits."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if rel.parts[0] in EXCLUDED_TOP:
                continue
            info = tarfile.TarInfo(rel.as_posix())
            info.mtime = ARCHIVE_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if path.is_symlink():
                info.type = tarfile.SYMTYPE
                info.linkname = str(path.readlink())
                info.mode = 0o777
                tar.addfile(info)
            elif path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif path.is_file():
                info.size = path.stat().st_size
                info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def _unpack(archive: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ReleaseError(f"app_source {str(archive)!r}: cannot unpack: {exc}.") from None
    entries = [p for p in dest.iterdir()]
    # an archive holding one top directory (app-1.2/...) is that directory
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def _checkout(spec: str, dest: Path) -> Path:
    url, _, ref = spec.rpartition("@")
    git = shutil.which("git")
    if git is None:
        raise ReleaseError("app_source: git+URL@REF needs git on this machine (apt install git).")
    for cmd in ([git, "clone", "--quiet", "--no-checkout", url, str(dest)],
                [git, "-C", str(dest), "checkout", "--quiet", ref]):
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise ReleaseError(f"app_source: `{' '.join(cmd[1:3])}` failed for {url}@{ref}: {result.stderr.strip()}")
    return dest


# releases sealed from then on were given a manifest when sealed (release ids start with their
# UTC time): one of them without its manifest is as suspect as one that differs from it. Older
# releases get theirs recorded by the next converge.
MANIFESTS_SINCE = "20261202T000000"


def has_manifest_by_design(release_id: str) -> bool:
    """Was release ``release_id`` sealed with a manifest (by a version of lbstack that writes them)?"""
    return release_id[:len(MANIFESTS_SINCE)] >= MANIFESTS_SINCE


def tampered(integrity: dict, most: int = 3) -> str:
    """What differs in a release from its manifest (one entry of ``facts.app.ReleaseIntegrity``):
    ``changed public/index.php; added public/x.php``, a few names of each kind."""
    parts = []
    for kind in ("changed", "added", "removed"):
        names = integrity.get(kind, [])
        if names:
            more = f" and {len(names) - most} more" if len(names) > most else ""
            parts.append(f"{kind} {', '.join(names[:most])}{more}")
    if integrity.get("truncated"):
        parts.append("(more not read)")
    return "; ".join(parts) or integrity.get("state", "?")
