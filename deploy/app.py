"""The app: releases under ``/srv/lbstack/app/releases/<id>``, an atomic ``current`` symlink swap,
a shared ``.env`` (0640, the app user; secrets filled in on the host) and ``storage/``.

A release is the app source packed locally into a deterministic archive (``lbstack.release``):
its id is the time of its first deploy plus the archive's digest, so re-running with the same
source finds the release already complete and changes nothing. A new release is unpacked, linked
to the shared files, given its Composer dependencies when it ships ``composer.json`` without
``vendor/``, migrated (``artisan migrate --force``: once per release), its config cached
(``artisan config:cache``), marked complete, and only then swapped in. The last
``releases_keep`` complete releases stay for rollback; the one in service is never removed.
"""

from __future__ import annotations

import shlex
import sys

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, files, server

from deploy import group_hosts, jinja, php_fpm, private_address, same_host, template
from facts.app import COMPLETE_MARKER, Releases
from lbstack import layout, release
from lbstack.operations import secret_file
from lbstack.plan import Plan
from lbstack.settings import Settings

ARCHIVES_DIR = "/var/lib/lbstack/archives"
STORAGE_DIRS = ("app/public", "framework/cache/data", "framework/sessions", "framework/views", "logs")


def backend_address(group: str) -> str:
    """How the app reaches the db or cache group: locally, or the first such host's address."""
    hosts = group_hosts(group) or [host]
    local = "localhost" if group == "db" else "127.0.0.1"  # MariaDB: "localhost" is the socket
    return local if any(same_host(h) for h in hosts) else private_address(hosts[0])


def env_template_data(settings: Settings, db_host: str, redis_host: str) -> dict:
    name = settings.server_names[0]
    scheme = "https" if settings.tls != "off" else "http"
    return {
        "app_url": f"{scheme}://{'localhost' if name == '_' else name}",
        "db_host": db_host,
        "db_name": settings.db_name,
        "db_user": settings.db_user,
        "redis_host": redis_host,
    }


def artisan(settings: Settings, directory: str, command: str) -> str:
    """Run an artisan command as the app user in ``directory``."""
    return f"cd {shlex.quote(directory)} && runuser -u {settings.app_user} -- php artisan {command} --no-interaction"


@deploy("lbstack app")
def app(settings: Settings, plan: Plan) -> None:
    try:
        build = release.build(settings.app_source)
    except release.ReleaseError as exc:
        print(f"lbstack: {host.name}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    user = settings.app_user
    for path, owner, mode in (
        (layout.APP_ROOT, "root", "755"),
        (layout.RELEASES_DIR, "root", "755"),
        (layout.SHARED_DIR, "root", "755"),
        (ARCHIVES_DIR, "root", "700"),
        (f"{layout.SHARED_DIR}/storage", user, "775"),
    ):
        files.directory(name=f"Directory {path}", path=path, user=owner, group=user if owner == user else "root",
                        mode=mode)
    for sub in STORAGE_DIRS:
        path = f"{layout.SHARED_DIR}/storage/{sub}"
        files.directory(name=f"Directory {path}", path=path, user=user, group=user, mode="775")

    files.template(
        name=f"Render {layout.ENV_FILE} (secret-free source {layout.source(layout.ENV_FILE)})",
        src=template(layout.ENV_FILE),
        dest=layout.source(layout.ENV_FILE),
        mode="600",
        jinja_env_kwargs=jinja(),
        **env_template_data(settings, backend_address("db"), backend_address("cache")),
    )
    env = secret_file(
        name=f"Write {layout.ENV_FILE} on the host (secrets filled in there; mode 640, {user})",
        source=layout.source(layout.ENV_FILE),
        dest=layout.ENV_FILE,
        owner=user,
        group=user,
        mode="640",
    )

    state = host.get_fact(Releases, root=layout.APP_ROOT)
    matching = [r for r in state["complete"] if release.digest_of(r) == build.short]
    release_id = matching[-1] if matching else release.new_release_id(build)
    if not matching:
        _new_release(settings, build, release_id)
    path = f"{layout.RELEASES_DIR}/{release_id}"
    if state["current"] != release_id:
        server.shell(
            name=f"Switch {layout.CURRENT} to release {release_id} (atomic rename)",
            commands=[
                f"ln -sfn {shlex.quote(path)} {layout.CURRENT}.lbstack-new",
                f"mv -Tf {layout.CURRENT}.lbstack-new {layout.CURRENT}",
            ],
        )
    else:
        # same release, new environment: its cached config holds the old values
        server.shell(
            name=f"Re-cache the config of release {release_id} ({layout.ENV_FILE} changed)",
            commands=[artisan(settings, path, "config:cache")],
            _if=env.did_change,
        )
    php_fpm.one_at_a_time(plan, "reload-or-restart",
                          "Reload the app instances one at a time (new release or environment)",
                          lambda: state["current"] != release_id or env.did_change())
    _cleanup(settings, state, release_id)


def _new_release(settings: Settings, build: release.Build, release_id: str) -> None:
    user = settings.app_user
    archive = f"{ARCHIVES_DIR}/{build.short}.tar.gz"
    path = f"{layout.RELEASES_DIR}/{release_id}"
    files.put(name=f"Upload the release archive {build.short} ({build.source})", src=str(build.archive),
              dest=archive, mode="600")
    unpack = [
        f"rm -rf {path}",
        f"mkdir -p {path}",
        f"tar -xzf {archive} -C {path} --no-same-owner",
        f"ln -sfn {layout.ENV_FILE} {path}/.env",
        f"rm -rf {path}/storage && ln -sfn {layout.SHARED_DIR}/storage {path}/storage",
        f"mkdir -p {path}/bootstrap/cache",
        f"chown -R {user}:{user} {path}",  # the build steps below run as the app user
    ]
    server.shell(name=f"Unpack release {release_id} into {path}", commands=unpack)
    if build.has_composer_json and not build.has_vendor:
        apt.packages(name="Install Composer (the release ships composer.json without vendor/)",
                     packages=["composer", "unzip"], no_recommends=True)
        server.shell(
            name=f"composer install (release {release_id})",
            commands=[f"cd {path} && runuser -u {user} -- composer install --no-dev --optimize-autoloader "
                      "--no-interaction --no-progress"],
        )
    server.shell(
        name=f"Migrate the database (release {release_id}: artisan migrate --force)",
        commands=[artisan(settings, path, "migrate --force")],
    )
    if settings.app_source == "sample":
        server.shell(name=f"Seed the sample questions (release {release_id}: artisan db:seed, only when empty)",
                     commands=[artisan(settings, path, "db:seed --force")])
    server.shell(
        name=f"Cache the config and seal release {release_id} (code root-owned, marked complete)",
        commands=[
            artisan(settings, path, "config:cache"),
            f"chown -R root:root {path} && chown -R {user}:{user} {path}/bootstrap/cache",
            f"printf 'digest=%s\\nsource=%s\\n' {build.digest} {shlex.quote(build.source)} > {path}/{COMPLETE_MARKER}",
        ],
    )


def _cleanup(settings: Settings, state: dict, keep_id: str) -> None:
    """Keep the newest ``releases_keep`` complete releases (and always the one in service);
    remove incomplete ones (failed builds) other than the one being deployed."""
    complete = sorted(set(state["complete"]) | {keep_id})
    keep = set(complete[-settings.releases_keep:]) | {keep_id}
    if state["current"]:
        keep.add(state["current"])
    doomed = [r for r in state["releases"] if r not in keep]
    if not doomed:
        return
    paths = " ".join(shlex.quote(f"{layout.RELEASES_DIR}/{r}") for r in doomed)
    archives = " ".join(shlex.quote(f"{ARCHIVES_DIR}/{release.digest_of(r)}.tar.gz") for r in doomed
                        if release.digest_of(r) != release.digest_of(keep_id))
    server.shell(name=f"Remove old releases: {', '.join(doomed)}", commands=[f"rm -rf {paths} {archives}"])
