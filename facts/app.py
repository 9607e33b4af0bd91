"""Facts about the app's releases on the host."""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase

COMPLETE_MARKER = ".lbstack-release"


def env_reader(env_file: str) -> str:
    """Shell function ``v KEY``: the value of KEY in the app's .env, read on the host (for facts
    that connect as the app; no value leaves the host)."""
    return f"v() {{ sed -n \"s/^$1=//p\" {shlex.quote(env_file)} | head -n1 | sed 's/^\"\\(.*\\)\"$/\\1/'; }}; "


def as_the_app(env_file: str) -> str:
    """Shell prefix of a fact that asks something with the app's own credentials: defines ``v KEY``
    (:func:`env_reader`) and stops with ``@error=...`` when the ``.env`` cannot be read."""
    return (env_reader(env_file)
            + f"[ -r {shlex.quote(env_file)} ] || {{ echo '@error=no readable {env_file}'; exit 0; }}; ")


class Releases(FactBase):
    """
    Releases under ``root``: every ``releases/<id>`` directory, which are complete (their deploy
    finished: marker file present), and the one ``current`` points to.

    Returns ``{"releases": ["20261124T101500-3f2a9c1d", ...], "complete": [...],
    "current": "20261124T101500-3f2a9c1d" | None, "activated_at": 1795000000 | None}``, ids in
    name (= time) order; ``activated_at`` is when ``current`` was last switched (epoch seconds).
    """

    @staticmethod
    def default():
        return {"releases": [], "complete": [], "current": None, "activated_at": None}

    def command(self, root) -> str:
        r = shlex.quote(root)
        return (
            f"cd {r} 2>/dev/null || exit 0; "
            "for d in releases/*/; do [ -d \"$d\" ] || continue; d=${d%/}; echo \"@release=${d#releases/}\"; "
            f"[ -f \"$d/{COMPLETE_MARKER}\" ] && echo \"@complete=${{d#releases/}}\"; done; "
            "t=$(readlink current 2>/dev/null) && echo \"@current=${t##*/}\" "
            "&& echo \"@activated=$(stat -c %Y current)\"; true"
        )

    def process(self, output) -> dict:
        result: dict = {"releases": [], "complete": [], "current": None, "activated_at": None}
        for line in output:
            key, _, value = line.strip().partition("=")
            if key == "@release":
                result["releases"].append(value)
            elif key == "@complete":
                result["complete"].append(value)
            elif key == "@current":
                result["current"] = value
            elif key == "@activated":
                result["activated_at"] = int(value)
        result["releases"].sort()
        result["complete"].sort()
        return result


class Instances(FactBase):
    """
    Which release each app instance runs: its pointer under ``root/instances`` (``app3 ->
    ../releases/<id>``), and the builds rolled back as bad (``bad_dir/<digest>``, JSON: release,
    gate, instance, detail, at).

    Returns ``{"pointers": {"app1": "20261124T101500-3f2a9c1d4e5b", ...}, "bad": {"3f2a9c1d4e5b":
    {"release": ..., "gate": "health", ...}}}``; a pointer to a missing release reads as its id
    all the same.
    """

    @staticmethod
    def default():
        return {"pointers": {}, "bad": {}}

    def command(self, root, bad_dir) -> str:
        r, b = shlex.quote(root), shlex.quote(bad_dir)
        return (
            f"for p in {r}/instances/*; do [ -L \"$p\" ] || continue; t=$(readlink \"$p\"); "
            "echo \"@pointer=${p##*/}=${t##*/}\"; done; "
            f"for f in {b}/*; do [ -f \"$f\" ] || continue; echo \"@bad=${{f##*/}}=$(head -c 2000 \"$f\" | tr -d '\\n')\"; done; true"
        )

    def process(self, output) -> dict:
        result: dict = {"pointers": {}, "bad": {}}
        for line in output:
            key, _, rest = line.strip().partition("=")
            name, _, value = rest.partition("=")
            if key == "@pointer" and name:
                result["pointers"][name] = value
            elif key == "@bad" and name:
                try:
                    result["bad"][name] = json.loads(value)
                except ValueError:
                    result["bad"][name] = {"detail": value}
        return result


# at most this many differing lines of a release are read back (a replaced vendor/ is thousands)
INTEGRITY_LINES = 400


def release_listing(path: str) -> str:
    """Shell: every regular file under ``path`` with its SHA-256 (``sha256sum``'s ``HASH  ./name``)
    and every symbolic link with its target (``link:TARGET  ./name``), sorted by name. A release's
    manifest is this listing taken when it is sealed; its integrity is the listing now, compared."""
    return (f"(cd {shlex.quote(path)} && {{ find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum --; "
            "find . -type l -printf 'link:%l  %p\\n' | LC_ALL=C sort; })")


class ReleaseIntegrity(FactBase):
    """
    Each release in ``releases`` (ids under ``root/releases``) compared with its manifest
    (``manifests/<id>.sha256``, :func:`release_listing` taken when it was sealed).

    Returns per release ``{"state": "ok" | "tampered" | "no manifest" | "missing", "changed": [...],
    "added": [...], "removed": [...], "truncated": bool}``, paths relative to the release
    (``public/index.php``); a file whose content or a link whose target differs is changed.
    """

    @staticmethod
    def default():
        return {}

    def command(self, releases, root, manifests) -> str:
        parts = []
        for release in releases:
            path = shlex.quote(f"{root}/releases/{release}")
            manifest = shlex.quote(f"{manifests}/{release}.sha256")
            parts.append(
                f"echo @release={shlex.quote(release)}; "
                f"if [ ! -d {path} ]; then echo @state=missing; "
                f"elif [ ! -f {manifest} ]; then echo @state=no-manifest; "
                f"else t=$(mktemp) && {release_listing(f'{root}/releases/{release}')} > \"$t\"; "
                f"diff {manifest} \"$t\" | grep '^[<>] ' | head -n {INTEGRITY_LINES + 1}; rm -f \"$t\"; "
                "echo @state=read; fi")
        return "; ".join(parts + ["true"])

    def process(self, output) -> dict[str, dict]:
        result: dict[str, dict] = {}
        current = None
        sides: dict[str, dict[str, str]] = {}
        lines = 0
        for line in output:
            if line.startswith("@release="):
                current = line.split("=", 1)[1].strip()
                sides = {"<": {}, ">": {}}
                lines = 0
                result[current] = {"state": "missing", "changed": [], "added": [], "removed": [], "truncated": False}
            elif current is None:
                continue
            elif line.startswith("@state="):
                state = line.split("=", 1)[1].strip()
                entry = result[current]
                if state == "read":
                    was, now = sides["<"], sides[">"]
                    entry["changed"] = sorted(p for p in was if p in now)
                    entry["removed"] = sorted(p for p in was if p not in now)
                    entry["added"] = sorted(p for p in now if p not in was)
                    entry["truncated"] = lines > INTEGRITY_LINES
                    entry["state"] = "tampered" if was or now else "ok"
                else:
                    entry["state"] = state.replace("-", " ")
            elif line[:2] in ("< ", "> ") and "  " in line[2:]:
                lines += 1
                if lines <= INTEGRITY_LINES:
                    value, name = line[2:].split("  ", 1)
                    sides[line[0]][name.removeprefix("./")] = value
        return result
