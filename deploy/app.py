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

from pyinfra import host, state as pyinfra_state
from pyinfra.api import deploy
from pyinfra.operations import apt, files, server

from deploy import owned as owned_ops, php_fpm
from facts.app import COMPLETE_MARKER, Instances, ReleaseIntegrity, Releases, release_listing
from facts.files import StagedDiffers
from facts.limits import StartedBeforeChange, UnitLimits
from lbstack import hostscripts, layout, owned, packages, phpsettings, release, rollout, verification
from lbstack.layout import ARCHIVES_DIR
from lbstack.operations import deploy_lock, deploy_unlock, directories, rolling_update, secret_file, template_file
from lbstack.plan import QUEUE_STOP_MARGIN_S, Plan
from lbstack.render import jinja, template
from lbstack.settings import Settings
from lbstack.topology import backend_address, first_of, group_hosts, listen_address, lock_host, member, same_host


def env_template_data(settings: Settings, db_host: str, redis_host: str) -> dict:
    name = settings.server_names[0]
    scheme = "https" if settings.tls != "off" else "http"
    return {
        "app_url": f"{scheme}://{'localhost' if name == '_' else name}",
        "db_host": db_host,
        "db_name": settings.db_name,
        "db_user": settings.db_user,
        "redis_host": redis_host,
        "queue_connection": settings.queue_connection,
        # a reserved job is handed out again only after this: longer than the longest job
        "queue_retry_after_s": settings.queue_timeout_s + QUEUE_STOP_MARGIN_S,
    }


def artisan(settings: Settings, directory: str, command: str) -> str:
    """Run an artisan command as the app user in ``directory``."""
    return f"cd {shlex.quote(directory)} && runuser -u {settings.app_user} -- php artisan {command} --no-interaction"


@deploy("lbstack app")
def app(settings: Settings, plan: Plan, fpm: php_fpm.Changes) -> list[str]:
    """Deploy the release; returns the tampered releases' paths (and their manifests') to move
    into the quarantine once the queue workers have left them (:func:`quarantined`, after
    ``deploy.queue``)."""
    try:
        build = release.build(settings.app_source)
    except release.ReleaseError as exc:
        print(f"lbstack: {host.name}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    user = settings.app_user
    if backend_address("cache") == layout.REDIS_SOCKET:  # before any worker starts: workers get it at spawn
        server.user(name=f"Service user {user} in group redis (the Redis unix socket, mode 770)",
                    user=user, groups=["redis"], append=True, ensure_home=False)
    tree = [
        (layout.APP_ROOT, "root", "root", "755"),
        (layout.RELEASES_DIR, "root", "root", "755"),
        (layout.INSTANCES_DIR, "root", "root", "755"),
        (layout.SHARED_DIR, "root", "root", "755"),
        (ARCHIVES_DIR, "root", "root", "700"),
        (layout.COMPOSER_HOME, user, user, "700"),
        (f"{layout.SHARED_DIR}/storage", user, user, "775"),
    ] + [(f"{layout.SHARED_DIR}/storage/{sub}", user, user, "775") for sub in layout.STORAGE_DIRS]
    directories(name=f"Directories {layout.APP_ROOT}/{{releases,instances,shared,shared/storage/...}}, "
                     f"{ARCHIVES_DIR} (storage: {user}, mode 775)", paths=tree)

    template_file(
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
    instance_state = host.get_fact(Instances, root=layout.APP_ROOT, bad_dir=layout.BAD_RELEASES_DIR)
    bad = instance_state["bad"]
    if build.short in bad:
        why = bad[build.short]
        print(f"lbstack: {host.name}: this build ({build.short}, from {release.shown(settings.app_source)}) was rolled back as bad: "
              f"gate '{why.get('gate', '?')}' failed on {why.get('instance', '?')} at {why.get('at', '?')}: "
              f"{why.get('detail', '')}. Fix the app and deploy a new build; to retry this very build, remove "
              f"{layout.BAD_RELEASES_DIR}/{build.short} on the host.", file=sys.stderr)
        raise SystemExit(1)
    # releases in service (and the one this build would reuse) against their manifests: a
    # tampered one is replaced by a new release of the same build, then moved into the quarantine
    in_service = sorted({state["current"], *instance_state["pointers"].values()} - {None})
    same_build = [r for r in state["complete"] if release.digest_of(r) == build.short]
    integrity = host.get_fact(ReleaseIntegrity, releases=sorted(set(in_service) | set(same_build)),
                              root=layout.APP_ROOT, manifests=layout.MANIFESTS_DIR)
    # no manifest: recorded now if sealed before lbstack wrote manifests, else as good as tampered
    tampered = [r for r in sorted(integrity) if integrity[r]["state"] == "tampered" or (
        integrity[r]["state"] == "no manifest" and release.has_manifest_by_design(r))]
    for r in tampered:
        what = release.tampered(integrity[r])
        print(f"lbstack: {host.name}: release {r} differs from its manifest ({what}): "
              f"it is replaced by a new release and moved into {owned.QUARANTINE_DIR}", file=sys.stderr)
    matching = [r for r in same_build if r not in tampered]
    release_id = matching[-1] if matching else release.new_release_id(build)

    def plan_steps():
        return instance_steps(settings, plan, release_id, fpm, env)

    lock = lock_host()
    deploy_lock(
        name="Deploy lock (a new release or instances to switch; another deploy running fails here, naming it)"
             + ("" if same_host(lock) else f": the stack's, on {lock.name}"),
        stale_s=settings.deploy_lock_stale_s,
        needed=lambda: not matching or any(plan_steps()),
        lock=lock,
    )
    if not matching:
        _new_release(settings, build, release_id)
    else:
        # same release, new environment: its cached config holds the old values
        server.shell(
            name=f"Re-cache the config of release {release_id} ({layout.ENV_FILE} changed)",
            commands=[artisan(settings, f"{layout.RELEASES_DIR}/{release_id}", "config:cache"),
                      f"chmod 600 {layout.RELEASES_DIR}/{release_id}/{layout.CONFIG_CACHE}",
                      manifest_command(release_id)],  # the config cache is part of the release
            _if=env.did_change,
        )
    rolling_update(
        name=f"Rolling update: instances to release {release_id}, their config and unit "
             f"({settings.rolling_batch} at a time: drain, switch, health gate, back)",
        plan_steps=plan_steps,
        gates=gates(settings),
        batch=settings.rolling_batch,
        release=release_id,
        lb_hosts=[h for h in group_hosts("lb") if not same_host(h)],
        lock=lock,
        peers=[h.name for h in group_hosts("app")],  # app hosts take turns, in the inventory's order
    )
    deploy_unlock(name="Release the deploy lock (every app host of the run has rolled)", lock=lock)
    if state["current"] != release_id:
        path = f"{layout.RELEASES_DIR}/{release_id}"
        server.shell(
            name=f"Switch {layout.CURRENT} to release {release_id} (every instance serves it; atomic rename)",
            commands=[
                f"ln -sfn {shlex.quote(path)} {layout.CURRENT}.lbstack-new",
                f"mv -Tf {layout.CURRENT}.lbstack-new {layout.CURRENT}",
            ],
        )
    unrecorded = [r for r in sorted(integrity) if integrity[r]["state"] == "no manifest" and r not in tampered]
    if unrecorded:
        server.shell(name=f"Record the manifest of release(s) {', '.join(unrecorded)} (sealed before lbstack "
                          "recorded manifests)",
                     commands=[manifest_command(r) for r in unrecorded])
    serving_tampered = [r for r in tampered if r != release_id]
    _cleanup(settings, state, release_id, instance_state, gone=set(serving_tampered))
    return [path for r in serving_tampered for path in [f"{layout.RELEASES_DIR}/{r}"]
            + ([layout.manifest(r)] if integrity[r]["state"] == "tampered" else [])]


@deploy("lbstack app: tampered releases")
def quarantined(paths: list[str]) -> None:
    """Move tampered releases and their manifests (``paths``) into the dated quarantine: after the
    instances (the rolling update) and the queue workers (each after its job) have left them."""
    if paths:
        releases = [p.rsplit("/", 1)[1] for p in paths if p.startswith(layout.RELEASES_DIR + "/")]
        owned_ops.moved_to_quarantine(
            name=f"Move the tampered release(s) {', '.join(releases)} into {owned.QUARANTINE_DIR}/<time>/ "
                 "(no instance or worker runs them now)",
            paths=paths)


def gates(settings: Settings) -> rollout.Gates:
    return rollout.Gates(health_path=settings.health_path, smoke_path=settings.smoke_path,
                         passes=settings.health_gate_passes, timeout_s=settings.health_gate_timeout_s,
                         drain_timeout_s=settings.drain_timeout_s)


def instances(plan: Plan, indexes) -> list[rollout.Instance]:
    """The instances with their upstream member's name (as the balancers' site file tags it:
    ``appN`` on this host's own nginx, ``<host>-appN`` on another host's; :func:`topology.members`)
    and their FPM address."""
    local_lb = "lb" in host.groups
    result = []
    for index in indexes:
        address = listen_address(index)
        behind = None if local_lb and not address.startswith("/") else member(host, index, address.startswith("/"))
        result.append(rollout.Instance(index=index, member=behind and behind["name"], fpm=address,
                                       member_address=behind and behind["address"]))
    return result


def instance_steps(settings: Settings, plan: Plan, release_id: str, fpm: php_fpm.Changes,
                   env) -> tuple[list[rollout.Step], list[rollout.Instance]]:
    """What each planned instance needs now (read from the host when called), and the surplus
    instances to retire. Called while executing, after the configs were rendered and validated."""
    executing = pyinfra_state.is_executing
    unit_changed = executing and fpm.unit.did_change()
    reload_all = executing and (fpm.ini.did_change() or fpm.preload.did_change() or env.did_change()
                                or (fpm.php_ini is not None and fpm.php_ini.did_change()))
    pointers = host.get_fact(Instances, root=layout.APP_ROOT, bad_dir=layout.BAD_RELEASES_DIR)["pointers"]
    units = host.get_fact(UnitLimits, units=[layout.fpm_unit(i) for i in range(1, plan.instances + 1)])
    differ = set(host.get_fact(StagedDiffers, pairs=[list(c) for c in fpm.configs.values()]))
    # started before their unit file or CPU drop-in was written (by this run or one that failed)
    stale = set(host.get_fact(StartedBeforeChange, units={
        layout.fpm_unit(i): [php_fpm.UNIT_FILE, f"{php_fpm.UNIT_FILE}.d", layout.fpm_cpu_dropin(i),
                             layout.fpm_cpu_dropin(i).rsplit("/", 1)[0]]  # a drop-in added or removed too
        for i in range(1, plan.instances + 1)}))
    # the settings each master runs with (a file edited and put back after a reload, one lbstack
    # does not manage): not lbstack's, it reloads (a fresh host's masters do not answer yet)
    expected, effective = verification.effective_php(settings, plan)
    astray = {name for name, got in effective.items()
              if "error" not in got and phpsettings.differences(expected.get(name, {}), got)}
    steps = []
    for inst in instances(plan, range(1, plan.instances + 1)):
        step = rollout.Step(inst)
        if pointers.get(inst.name) != release_id:
            step.release = release_id
            step.reasons.append(f"release {pointers.get(inst.name) or 'none'} -> {release_id}")
        if fpm.configs[inst.index][1] in differ:
            step.config = fpm.configs[inst.index]
            step.reasons.append("config")
        running = units.get(inst.unit, {}).get("active_state") == "active"
        cpus_changed = executing and fpm.cpus[inst.index].did_change()
        if unit_changed or cpus_changed or not running or inst.unit in stale:
            step.restart = True  # CPUAffinity applies when the master starts, not on a reload
            step.reasons.append("unit changed" if unit_changed else "CPU placement changed" if cpus_changed
                                else "not running" if not running else "started before its unit file changed")
        if reload_all:
            step.reasons.append("PHP settings or .env changed")
        elif inst.name in astray and not step.restart:
            step.reasons.append("its running PHP settings are not lbstack's")
        if step.reasons:
            steps.append(step)
    surplus = instances(plan, php_fpm.surplus_instances(plan))
    return steps, surplus


def _new_release(settings: Settings, build: release.Build, release_id: str) -> None:
    user = settings.app_user
    archive = f"{ARCHIVES_DIR}/{build.short}.tar.gz"
    path = f"{layout.RELEASES_DIR}/{release_id}"
    files.put(name=f"Upload the release archive {build.short} ({release.shown(build.source)})", src=str(build.archive),
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
    if build.needs_composer:
        apt.packages(name="Install Composer (the release ships composer.json without vendor/)",
                     packages=packages.COMPOSER, no_recommends=True)
        server.shell(  # a failure refuses the release with Composer's own message; nothing switched yet
            name=f"composer install (release {release_id}: --no-dev --optimize-autoloader, as {user})",
            commands=[f"cd {path} && runuser -u {user} -- env COMPOSER_HOME={layout.COMPOSER_HOME} "
                      + shlex.join(release.COMPOSER_INSTALL)],
        )
    if settings.php_preload:
        # before the backup and the migrations: a release OPcache cannot preload changes nothing
        server.shell(name=f"Check OPcache preloading of release {release_id} (as the masters will run it)",
                     commands=[hostscripts.shell(hostscripts.preload_check(settings, path))])
    if "db" in host.groups:  # the database is on this host: back it up first (split: `lbstack backup`)
        server.shell(
            name=f"Back up the database before the migrations of release {release_id} (lbstack-backup)",
            commands=[f"if [ -x {layout.BACKUP_HELPER} ]; then {layout.BACKUP_HELPER} create "
                      f"--reason {shlex.quote('before the migrations of release ' + release_id)}; fi"],
        )
    # one database for every app host: the first app host of the inventory migrates it (two at
    # once would both try to create the same tables)
    if first_of("app"):
        server.shell(
            name=f"Migrate the database (release {release_id}: artisan migrate --force)",
            commands=[artisan(settings, path, "migrate --force")],
        )
        if settings.app_source == "sample":
            server.shell(name=f"Seed the sample questions (release {release_id}: artisan db:seed, only when empty)",
                         commands=[artisan(settings, path, "db:seed --force")])
    # config:cache writes the real values (APP_KEY, the passwords) into bootstrap/cache/config.php:
    # it is the app user's alone (mode 600), like the .env it was made from
    extra = f", run artisan {', '.join(settings.artisan_commands)}" if settings.artisan_commands else ""
    server.shell(
        name=f"Link storage, cache the config, routes, views and events{extra} and seal release {release_id} "
             "(code root-owned, config cache mode 600, marked complete)",
        commands=[
            artisan(settings, path, "storage:link"),  # public/storage -> the shared storage/app/public
            *(artisan(settings, path, f"{what}:cache") for what in release.ARTISAN_CACHES),
            *(artisan(settings, path, shlex.join(command.split())) for command in settings.artisan_commands),
            f"chown -R root:root {path} && chown -R {user}:{user} {path}/bootstrap/cache",
            f"chmod 600 {path}/{layout.CONFIG_CACHE}",
            f"printf 'digest=%s\\nsource=%s\\n' {build.digest} {shlex.quote(release.shown(build.source))} > {path}/{COMPLETE_MARKER}",
            manifest_command(release_id),
        ],
    )


def manifest_command(release_id: str) -> str:
    """Shell: record release ``release_id``'s manifest (every file's SHA-256, every link's target:
    :func:`facts.app.release_listing`) as it is now, for verification and drift to check it against."""
    manifest = layout.manifest(release_id)
    return (f"mkdir -p -m 700 {layout.MANIFESTS_DIR} && {release_listing(f'{layout.RELEASES_DIR}/{release_id}')} "
            f"> {manifest}.partial && chmod 600 {manifest}.partial && mv -f {manifest}.partial {manifest}")




def _cleanup(settings: Settings, state: dict, keep_id: str, instance_state: dict, gone: set[str]) -> None:
    """Keep the newest ``releases_keep`` good releases (complete, not rolled back as bad), the one
    being deployed, the one in service and every one an instance points to: the last good release
    is never removed. Incomplete ones (failed builds) and older ones go."""
    bad = set(instance_state["bad"])
    good = sorted(r for r in set(state["complete"]) | {keep_id} if release.digest_of(r) not in bad and r not in gone)
    keep = set(good[-settings.releases_keep:]) | {keep_id} | set(instance_state["pointers"].values())
    if state["current"]:
        keep.add(state["current"])
    doomed = [r for r in state["releases"] if r not in keep and r not in gone]  # gone: quarantined
    if not doomed:
        return
    paths = " ".join(shlex.quote(f"{layout.RELEASES_DIR}/{r}") for r in doomed)
    manifests = " ".join(shlex.quote(layout.manifest(r)) for r in doomed)
    archives = " ".join(shlex.quote(f"{ARCHIVES_DIR}/{release.digest_of(r)}.tar.gz") for r in doomed
                        if release.digest_of(r) != release.digest_of(keep_id))
    server.shell(name=f"Remove old releases: {', '.join(doomed)}", commands=[f"rm -rf {paths} {manifests} {archives}"])
