"""The capacity plan: a pure function of (host CPUs, host memory, settings, components).

It turns the requested per-component resources into systemd limits that fit the host, and derives
every size that depends on them (FPM children, InnoDB buffer pool, MariaDB connections, Redis
maxmemory, nginx workers). Nothing here touches a host.

Rules, in order:
1. Memory for the OS (``os_reserve_mib``, default 10 % of RAM within 256..2048 MiB) is kept
   outside every limit. The rest is *usable*.
2. MemoryMax of the host's components (lb, app slice = instances x per-instance, db, cache) must
   sum to at most *usable*. If the requests are larger, ``overcommit: scale`` shrinks them in
   proportion (never below a component's floor: the least it can run in) and records why;
   ``overcommit: refuse`` refuses with the numbers. If even the floors do not fit: refusal.
3. CPU is compressible, so CPU is planned twice. The *share* of each component is its request
   scaled the same way to fit the host's CPUs: what it gets when everything is busy at once, and
   what its worker counts are sized for. Its CPUQuota *ceiling* is its request, capped at the
   host's CPUs and not scaled: ceilings that sum to the host would leave cores idle while a
   busy component is throttled (measured by `lbstack bench`). Under contention the kernel shares
   CPU between the component slices.
4. MemoryHigh is 90 % of MemoryMax: the kernel reclaims before it kills.
5. Derived sizes come from the planned (not requested) budgets: pm.max_children from the
   instance's CPU share x ``php_workers_per_cpu``, within what its memory allows.
6. An app host's queue workers and scheduler (``queue_workers``, ``scheduler``) are a budgeted
   part of their own, ``queue`` (``lbstack-queue.slice``), planned like a component from
   ``queue_cpus`` / ``queue_memory_mib``; each of them also holds a MariaDB and a Redis connection.
7. Each app instance is placed on its own CPUs (``app_cpu_pinning``): as many as its ceiling,
   from the host's last real CPU down, round-robin (:func:`pin_instances`). Five FPM masters are
   five copies of the app's compiled code; pinned, each core's caches hold fewer of them
   (measured by `lbstack bench`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from lbstack.settings import Settings

COMPONENTS = ("lb", "app", "db", "cache")
# budgeted parts besides the components: the app hosts' queue workers and scheduler
QUEUE = "queue"
# ... and, with monitoring on, every host's exporters (and Prometheus on the host that runs it)
MONITORING = "monitoring"
SLICE_PARENT = "lbstack.slice"

MEMORY_HIGH_FRACTION = 0.90  # MemoryHigh as a share of MemoryMax
OS_RESERVE_FRACTION = 0.10  # default OS reserve as a share of RAM ...
OS_RESERVE_MIN_MIB, OS_RESERVE_MAX_MIB = 256, 2048  # ... within these bounds
FPM_MASTER_MIB = 32  # an FPM master process
OPCACHE_MIB = 128  # opcache.memory_consumption: shared memory per FPM master
MIN_CHILDREN = 2  # fewer FPM workers than this is not a pool
# Workers an instance gets even when its CPU share asks for fewer, memory allowing: with 2 per pool,
# `lbstack bench` at 2000 connections measured ~5 % more CPU per request than with 4.
PREFERRED_MIN_CHILDREN = 4
INNODB_FRACTION = 0.60  # buffer pool share of MariaDB's MemoryMax
INNODB_CHUNK_MIB = 128  # innodb_buffer_pool_chunk_size: the pool is a multiple of it
INNODB_MIN_MIB = 128
DB_BASE_MIB = 160  # MariaDB's own overhead besides pool and connections
DB_PER_CONNECTION_MIB = 3  # thread stack + per-session buffers, typical OLTP
REDIS_FRACTION = 0.75  # maxmemory share of Redis' MemoryMax (fork copy-on-write, fragmentation)
NGINX_CONNECTIONS_PER_CLIENT = 2  # a proxied request holds a client and an upstream connection
NGINX_CONNECTION_SLACK = 1.25
NGINX_MAX_FAILS = 3  # passive health: failures within the fail timeout before a member is skipped
# an FPM master that stops answering systemd's watchdog this long (frozen by SIGSTOP, a hung event
# loop; it pings at half of it) is killed with its workers and restarted: nginx sends the requests it
# held to another instance, so no request waits on a frozen instance for much longer than this.
# Half of it (4 s) is the margin a reload has: the re-executed master pings once its pool is up.
FPM_WATCHDOG_S = 8
NGINX_FAIL_TIMEOUT_S = 5  # ... and for how long: a crashed instance (restarted after 1 s) is back within ~6 s
MIN_SOMAXCONN = 4096
PHP_MEMORY_LIMIT_FACTOR = 2  # memory_limit: twice the expected worker size
DB_LOG_FILE_FRACTION = 0.25  # innodb_log_file_size as a share of the buffer pool ...
DB_LOG_FILE_MIN_MIB = 48  # ... at least this
DB_THREAD_CACHE_MAX = 128
REDIS_CLIENT_HEADROOM = 100  # connections beyond one per PHP worker (admin, monitoring)
REDIS_MIN_TCP_BACKLOG = 511

QUEUE_STOP_MARGIN_S = 30  # a worker's stop timeout and the queue's retry_after: the longest job plus this
# a queue:work worker of the bundled Laravel app is ~30 MiB resident (README, "Queue workers")
QUEUE_WORKER_FLOOR_MIB = 48

# The least each component can run in: below this the plan refuses rather than pretend.
FLOOR_CPUS = {"lb": 0.1, "app": 0.1, "db": 0.1, "cache": 0.1, QUEUE: 0.1, MONITORING: 0.1}
MONITORING_FLOOR_MIB = 128
FLOOR_MEMORY_MIB = {"lb": 64, "cache": 64}


def instance_floor_mib(s: Settings) -> int:
    """Least memory one FPM instance runs in: master, OPcache and MIN_CHILDREN workers."""
    return math.ceil((FPM_MASTER_MIB + OPCACHE_MIB + MIN_CHILDREN * s.php_worker_memory_mib) / MEMORY_HIGH_FRACTION)


def db_floor_mib(s: Settings) -> int:
    """Least memory MariaDB runs in: its base, the smallest pool, and connections for minimal pools
    and the queue workers."""
    connections = s.instances * MIN_CHILDREN + s.queue_workers + (1 if s.scheduler else 0) + s.db_connection_headroom
    return math.ceil((DB_BASE_MIB + INNODB_MIN_MIB + connections * DB_PER_CONNECTION_MIB) / MEMORY_HIGH_FRACTION)


def _max_children(instance_memory_mib: int, s: Settings, cpu_share: float | None = None) -> tuple[int, int, int]:
    """(pm.max_children, what memory alone allows, what the CPU share asks for) of one instance.

    A worker waiting on MariaDB or Redis uses no CPU, so an instance runs ``php_workers_per_cpu``
    workers per vCPU of its share; more only add memory, connections and context switches (on
    these machines 20-40 workers on 2 cores cost more CPU per request than 5). Without a share
    (a db host sizing for app hosts it cannot see) the memory bound applies.
    """
    high = math.floor(instance_memory_mib * MEMORY_HIGH_FRACTION)
    by_memory = (high - FPM_MASTER_MIB - OPCACHE_MIB) // s.php_worker_memory_mib
    by_cpu = math.ceil(cpu_share * s.php_workers_per_cpu - 1e-9) if cpu_share is not None else by_memory
    by_cpu = max(by_cpu, PREFERRED_MIN_CHILDREN)
    return max(MIN_CHILDREN, min(s.php_max_children_cap, by_memory, by_cpu)), by_memory, by_cpu


class PlanError(ValueError):
    """The stack cannot fit the host; the message carries the numbers."""


# os_hardening: the kernel settings Lynis (KRNL-6000) and the CIS benchmark ask of a server
HARDENING_SYSCTL = {
    "kernel.kptr_restrict": "2",
    "kernel.dmesg_restrict": "1",
    "kernel.sysrq": "0",
    "fs.suid_dumpable": "0",
    "fs.protected_fifos": "2",
    "fs.protected_regular": "2",
    "dev.tty.ldisc_autoload": "0",
    "net.core.bpf_jit_harden": "2",
    "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv4.conf.default.accept_redirects": "0",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
    "net.ipv4.conf.all.accept_source_route": "0",
    "net.ipv4.conf.all.log_martians": "1",
    "net.ipv4.conf.default.log_martians": "1",
    "net.ipv6.conf.all.accept_redirects": "0",
    "net.ipv6.conf.default.accept_redirects": "0",
}

@dataclass(frozen=True)
class Limits:
    """systemd resource limits for one unit or slice."""

    cpu_quota_pct: int  # CPUQuota=, percent of one CPU
    memory_high_mib: int  # MemoryHigh=
    memory_max_mib: int  # MemoryMax=
    tasks_max: int  # TasksMax=

    @property
    def cpu_quota_us(self) -> int:
        """cfs quota per 100 ms period (cgroup v1 cpu.cfs_quota_us, v2 first field of cpu.max)."""
        return self.cpu_quota_pct * 1000


@dataclass(frozen=True)
class Adjustment:
    """One thing the plan changed from what the settings asked for, and why."""

    component: str
    what: str
    requested: str
    planned: str
    why: str


@dataclass(frozen=True)
class NginxPlan:
    """The load balancer's sizes (templates/etc/nginx/*)."""

    max_clients: int  # lb_max_clients: concurrent clients it is sized for
    worker_processes: int
    worker_connections: int  # per worker: a proxied request holds a client and an upstream connection
    worker_rlimit_nofile: int
    listen_backlog: int  # listen ... backlog= (net.core.somaxconn)
    max_fails: int  # passive health: failures within fail_timeout before a member is skipped
    fail_timeout_s: int  # ... and for how long
    next_upstream_tries: int  # every member once: with all but one dead, a request still reaches it


@dataclass(frozen=True)
class PhpFpmPlan:
    """Each app instance's sizes (templates/etc/lbstack/fpm/*, the instance unit)."""

    max_children: int  # pm.max_children (static pool)
    memory_limit_mib: int  # php memory_limit: twice the expected worker size
    opcache_mib: int  # opcache.memory_consumption, per master
    instance_limits: Limits  # each lbstack-fpm@N unit
    instance_cpus: tuple[str, ...]  # each instance's CPUAffinity ("3", "0-1"; "" = not pinned)
    pinning_note: str  # when none is pinned, why


@dataclass(frozen=True)
class MariadbPlan:
    """MariaDB's sizes (templates/etc/mysql/mariadb.conf.d/90-lbstack.cnf)."""

    php_workers: int  # every PHP worker of every instance holds a (persistent) connection
    queue_clients: int  # every queue worker and scheduler run of every app host holds one too
    connection_headroom: int  # db_connection_headroom: admin, backups, cron
    max_connections: int
    buffer_pool_mib: int  # innodb_buffer_pool_size
    buffer_pool_chunk_mib: int  # innodb_buffer_pool_chunk_size: the pool is a multiple of it
    log_file_mib: int  # innodb_log_file_size: a quarter of the pool, at least 48
    thread_cache: int  # thread_cache_size


@dataclass(frozen=True)
class RedisPlan:
    """Redis' sizes (templates/etc/redis/redis.conf)."""

    maxmemory_mib: int
    maxclients: int  # one per PHP worker, queue worker and scheduler of every app host, plus CLIENT_HEADROOM
    tcp_backlog: int


@dataclass(frozen=True)
class QueuePlan:
    """The app host's queue workers (lbstack-queue@N) and scheduler (lbstack-schedule.timer)."""

    workers: int  # queue_workers
    connection: str  # queue_connection: the app's QUEUE_CONNECTION and the workers' argument
    queues: tuple[str, ...]  # --queue=
    tries: int  # --tries
    timeout_s: int  # --timeout: the longest job
    max_time_s: int  # --max-time
    stop_timeout_s: int  # TimeoutStopSec: the running job finishes before the worker stops
    retry_after_s: int  # QUEUE_RETRY_AFTER: a reserved job is handed out again only after this
    worker_memory_mib: int  # --memory: past it a worker exits after its job and starts fresh
    scheduler: bool  # schedule:run every minute


@dataclass(frozen=True)
class Plan:
    host_cpus: float
    host_memory_mib: int
    capacity_source: str  # "host" or "override"
    os_reserve_mib: int
    usable_memory_mib: int
    components: tuple[str, ...]  # the components placed on this host
    slices: dict[str, str]  # component (and "queue" on app hosts) -> slice unit
    limits: dict[str, Limits]  # component (and "queue") -> limits of its slice (app = all instances)
    instances: int  # app instances on this host (0 without the app)
    sysctl: dict[str, str]
    # each component's section; None when the component is not on this host
    nginx: NginxPlan | None = None
    php_fpm: PhpFpmPlan | None = None
    mariadb: MariadbPlan | None = None
    redis: RedisPlan | None = None
    queue: QueuePlan | None = None  # on app hosts with queue workers or the scheduler
    adjustments: tuple[Adjustment, ...] = field(default=())

    def to_data(self) -> dict:
        return asdict(self)

    @property
    def memory_max_total_mib(self) -> int:
        return sum(limit.memory_max_mib for limit in self.limits.values())

    @property
    def cpu_quota_total_pct(self) -> int:
        return sum(limit.cpu_quota_pct for limit in self.limits.values())


def os_reserve_mib(memory_mib: int, s: Settings) -> int:
    if s.os_reserve_mib is not None:
        return s.os_reserve_mib
    return int(min(OS_RESERVE_MAX_MIB, max(OS_RESERVE_MIN_MIB, memory_mib * OS_RESERVE_FRACTION)))


def _requested(s: Settings, components: tuple[str, ...]) -> tuple[dict[str, float], dict[str, int]]:
    cpus = {"lb": s.lb_cpus, "app": s.app_cpus * s.instances, "db": s.db_cpus, "cache": s.cache_cpus,
            QUEUE: s.queue_cpus, MONITORING: s.monitoring_cpus}
    memory = {
        "lb": s.lb_memory_mib,
        "app": s.app_memory_mib * s.instances,
        "db": s.db_memory_mib,
        "cache": s.cache_memory_mib,
        QUEUE: s.queue_memory_mib,
        MONITORING: s.monitoring_memory_mib,
    }
    return {c: cpus[c] for c in components}, {c: memory[c] for c in components}


def _fit(requested: dict[str, float], floors: dict[str, float], budget: float) -> dict[str, float]:
    """Scale ``requested`` proportionally into ``budget``, raising pinned items to their floor.

    Water-filling: items whose scaled share falls below their floor get the floor, and the rest
    of the budget is shared in proportion among the others. Caller checks sum(floors) <= budget.
    """
    pinned: dict[str, float] = {}
    while True:
        free = {c: v for c, v in requested.items() if c not in pinned}
        remaining = budget - sum(pinned.values())
        factor = remaining / sum(free.values())
        newly = {c: floors[c] for c, v in free.items() if v * factor < floors[c]}
        if not newly:
            return {**pinned, **{c: v * factor for c, v in free.items()}}
        pinned.update(newly)


def _refusal(what: str, unit: str, budget: float, rows: dict[str, tuple[float, float]], fix: str) -> PlanError:
    lines = [f"{what}: the stack needs more than the host has ({budget:g} {unit} usable)."]
    for component, (req, floor) in rows.items():
        lines.append(f"  {component:<6} requested {req:g} {unit}, needs at least {floor:g} {unit}")
    total_req = sum(r for r, _ in rows.values())
    total_floor = sum(f for _, f in rows.values())
    lines.append(f"  total  requested {total_req:g} {unit}, needs at least {total_floor:g} {unit}")
    lines.append(fix)
    return PlanError("\n".join(lines))


def cpu_list(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5' (the form of CPUAffinity= and /proc's Cpus_allowed_list)."""
    runs: list[list[int]] = []  # [first, last] of each run of consecutive CPUs
    for cpu in sorted(set(cpus)):
        if runs and runs[-1][1] == cpu - 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def pin_instances(instances: int, ceiling_pct: int, online_cpus: int | None, pin: bool) -> tuple[tuple[str, ...], str]:
    """Each instance's CPUs, and why none is pinned (rule 6 in the README's capacity section).

    An instance gets as many CPUs as its CPUQuota ceiling, rounded up (1 by default), counted
    round-robin from the host's last CPU down (CPU 0 takes most device interrupts on a VPS):
    on 8 vCPU instances 1-5 run on CPUs 7, 6, 5, 4, 3; on 2 vCPU on 1, 0, 1, 0, 1. The CPUs are the
    host's real ones (``online_cpus``), never a ``capacity_cpus`` rehearsal: pinning to a CPU the
    host lacks would stop the instance from starting.
    """
    none = ("",) * instances
    if not instances:
        return none, ""
    if not pin:
        return none, "app_cpu_pinning is off"
    if not online_cpus:
        return none, "the host's CPUs are unknown (planned from --cpus without a host)"
    if online_cpus < 2:
        return none, "the host has one CPU"
    per = max(1, math.ceil(ceiling_pct / 100 - 1e-9))
    if per >= online_cpus:
        return none, f"each instance's ceiling ({ceiling_pct}%) already spans all {online_cpus} CPUs"
    sets = []
    for i in range(instances):
        start = i * per
        sets.append(cpu_list([online_cpus - 1 - (start + j) % online_cpus for j in range(per)]))
    return tuple(sets), ""


def nginx_worker_connections(max_clients: int, workers: int) -> int:
    """nginx ``worker_connections`` for ``max_clients`` spread over ``workers``: a client and its
    upstream connection each, with slack (also the bench's tuned pool, for one worker)."""
    return max(1024, math.ceil(max_clients * NGINX_CONNECTIONS_PER_CLIENT * NGINX_CONNECTION_SLACK / workers))


def listen_backlog(max_clients: int) -> int:
    """``net.core.somaxconn`` and nginx's ``listen ... backlog=``: a burst of ``max_clients`` new
    connections fits (the next power of two), at least :data:`MIN_SOMAXCONN`."""
    return max(MIN_SOMAXCONN, 1 << math.ceil(math.log2(max(1, max_clients))))


def make_plan(host_cpus: float, host_memory_mib: int, s: Settings, components: tuple[str, ...] = COMPONENTS,
              online_cpus: int | None = None, app_hosts: int = 1) -> Plan:
    """Plan every limit and size for the ``components`` placed on a host of this size.

    ``online_cpus`` is the host's real CPU count (the ``Cpus`` fact), used only to place the
    instances on CPUs; ``host_cpus`` may be a ``capacity_cpus`` rehearsal of a bigger host.
    ``app_hosts``: how many app hosts the stack has (the upstream's members and Redis' clients
    span all of them; each runs ``instances`` instances).
    """
    if app_hosts < 1:
        raise PlanError(f"app_hosts is {app_hosts}: a stack has at least one app host.")
    components = tuple(c for c in COMPONENTS if c in components)
    if not components:
        raise PlanError("no lbstack component is placed on this host: put it in one of the groups lb, app, db, cache.")
    source = "host"
    if s.capacity_cpus is not None:
        host_cpus, source = s.capacity_cpus, "override"
    if s.capacity_memory_mib is not None:
        host_memory_mib, source = s.capacity_memory_mib, "override"
    if host_cpus <= 0 or host_memory_mib <= 0:
        raise PlanError(f"host reports {host_cpus} CPUs and {host_memory_mib} MiB: cannot plan.")
    reserve = os_reserve_mib(host_memory_mib, s)
    usable = host_memory_mib - reserve
    # the budgeted parts: the components, and the queue workers and scheduler of an app host
    queue_on = "app" in components and (s.queue_workers > 0 or s.scheduler)
    parts = components + ((QUEUE,) if queue_on else ()) + ((MONITORING,) if s.monitoring else ())
    req_cpus, req_mem = _requested(s, parts)
    floor_mem = {"lb": FLOOR_MEMORY_MIB["lb"], "app": instance_floor_mib(s) * s.instances,
                 "db": db_floor_mib(s), "cache": FLOOR_MEMORY_MIB["cache"],
                 QUEUE: QUEUE_WORKER_FLOOR_MIB * max(1, s.queue_workers), MONITORING: MONITORING_FLOOR_MIB}
    floor_mem = {c: floor_mem[c] for c in parts}
    floor_cpu = {c: FLOOR_CPUS[c] * (s.instances if c == "app" else 1) for c in parts}
    adjustments: list[Adjustment] = []

    if sum(floor_mem.values()) > usable:
        raise _refusal("memory", "MiB", usable, {c: (req_mem[c], floor_mem[c]) for c in parts},
                       "Use a bigger host, fewer instances (instances) or smaller php_worker_memory_mib.")
    planned_mem = {c: float(v) for c, v in req_mem.items()}
    if sum(req_mem.values()) > usable:
        if s.overcommit == "refuse":
            raise _refusal("memory", "MiB", usable, {c: (req_mem[c], floor_mem[c]) for c in parts},
                           "Lower the *_memory_mib settings, or set overcommit: scale to fit them to the host.")
        planned_mem = _fit({c: float(v) for c, v in req_mem.items()}, {c: float(v) for c, v in floor_mem.items()}, usable)

    if sum(floor_cpu.values()) > host_cpus:
        raise _refusal("cpu", "vCPU", host_cpus, {c: (req_cpus[c], floor_cpu[c]) for c in parts},
                       "Use a bigger host or fewer instances.")
    # shares: requests scaled to fit the host (sizing); ceilings: requests capped at the host
    share_cpu = dict(req_cpus)
    if sum(req_cpus.values()) > host_cpus + 1e-9:
        share_cpu = _fit(req_cpus, floor_cpu, host_cpus)
    per_instance_cpu = s.app_cpus

    n = s.instances if "app" in components else 0
    # Per-instance budgets are whole MiB/percent; the app slice is exactly the sum of its instances,
    # so rounding never lets the slice exceed what was planned.
    instance_cpu_pct = math.floor(min(per_instance_cpu, host_cpus) * 100) if n else 0
    instance_share = share_cpu["app"] / n if n else 0.0
    instance_mem = math.floor(planned_mem["app"] / n) if n else 0
    mem = {c: math.floor(planned_mem[c]) for c in parts}
    cpu_pct = {c: math.floor(min(req_cpus[c], host_cpus) * 100) for c in parts}
    if n:
        mem["app"], cpu_pct["app"] = instance_mem * n, instance_cpu_pct * n
    if sum(req_mem.values()) > usable:
        why = (f"requests total {sum(req_mem.values())} MiB but the host has {usable} MiB usable "
               f"({host_memory_mib} MiB - {reserve} MiB OS reserve)")
        adjustments += [Adjustment(c, "MemoryMax", f"{req_mem[c]} MiB", f"{mem[c]} MiB", why) for c in parts]
    capped = [c for c in parts if (req_cpus[c] if c != "app" else per_instance_cpu) > host_cpus + 1e-9]
    for c in capped:
        asked = req_cpus[c] if c != "app" else per_instance_cpu
        adjustments.append(Adjustment(c, "CPUQuota" if c != "app" else "CPUQuota per instance",
                                      f"{asked * 100:.0f}%", f"{math.floor(host_cpus * 100)}%",
                                      f"a ceiling above the host's {host_cpus:g} vCPU means nothing"))

    children = 0
    instance_limits = None
    if n:
        children, by_memory, by_cpu = _max_children(instance_mem, s, instance_share)
        if children < min(by_memory, by_cpu):
            adjustments.append(Adjustment(
                "app", "pm.max_children", f"{min(by_memory, by_cpu)}", str(children),
                f"php_max_children_cap is {s.php_max_children_cap}"))
        elif by_cpu < by_memory and children == by_cpu:
            adjustments.append(Adjustment(
                "app", "pm.max_children", f"{by_memory} (memory allows)", str(children),
                f"CPU share {instance_share:.2f} vCPU x php_workers_per_cpu {s.php_workers_per_cpu}"
                + (f", at least {PREFERRED_MIN_CHILDREN}"
                   if math.ceil(instance_share * s.php_workers_per_cpu - 1e-9) < PREFERRED_MIN_CHILDREN else "")))
        instance_high = math.floor(instance_mem * MEMORY_HIGH_FRACTION)
        instance_limits = Limits(instance_cpu_pct, instance_high, instance_mem, children + 16)

    # every queue worker and the scheduler of every app host hold a MariaDB and a Redis connection
    queue_clients = (s.queue_workers + (1 if s.scheduler else 0)) * app_hosts
    max_connections = php_workers = 0
    if "db" in components:
        # In a split topology the db host cannot see the app hosts' plan: it sizes for their
        # requested memory.
        php_workers = n * children if n else s.instances * _max_children(s.app_memory_mib, s)[0]
        max_connections = php_workers + queue_clients + s.db_connection_headroom
    buffer_pool = 0
    if "db" in components:
        db_high = math.floor(mem["db"] * MEMORY_HIGH_FRACTION)
        room = db_high - DB_BASE_MIB - max_connections * DB_PER_CONNECTION_MIB
        pool = min(mem["db"] * INNODB_FRACTION, room)
        buffer_pool = int(pool // INNODB_CHUNK_MIB * INNODB_CHUNK_MIB)
        if buffer_pool < INNODB_MIN_MIB:
            raise PlanError(
                f"db: {mem['db']} MiB for MariaDB cannot hold {max_connections} connections "
                f"(x{DB_PER_CONNECTION_MIB} MiB) and a {INNODB_MIN_MIB} MiB buffer pool. "
                "Raise db_memory_mib, or lower instances, php_max_children_cap or db_connection_headroom."
            )
    redis_max = math.floor(mem["cache"] * REDIS_FRACTION) if "cache" in components else 0

    workers = conns = nofile = 0
    if "lb" in components:
        workers = max(1, math.ceil(min(req_cpus["lb"], host_cpus) - 1e-9))
        conns = nginx_worker_connections(s.lb_max_clients, workers)
        nofile = 2 * conns

    tasks = {"lb": workers + 16, "app": (children + 16) * n, "db": max_connections + 64, "cache": 32,
             QUEUE: 16 + 8 * (s.queue_workers + 1),  # schedule:run starts each due command as a process
             MONITORING: 512}  # Go programs: a thread per busy goroutine (Prometheus, four exporters)
    limits = {
        c: Limits(cpu_pct[c], math.floor(mem[c] * MEMORY_HIGH_FRACTION), mem[c], tasks[c]) for c in parts
    }
    if n:  # the app slice's MemoryHigh is the sum of its instances', like its other limits
        limits["app"] = Limits(cpu_pct["app"], instance_limits.memory_high_mib * n, mem["app"], tasks["app"])
    pinned, pinning_note = pin_instances(n, instance_limits.cpu_quota_pct if n else 0, online_cpus, s.app_cpu_pinning)
    somaxconn = listen_backlog(s.lb_max_clients)
    sysctl = {
        "net.core.somaxconn": str(somaxconn),
        "net.ipv4.tcp_max_syn_backlog": str(2 * somaxconn),
        "net.core.netdev_max_backlog": str(2 * somaxconn),
        "net.ipv4.ip_local_port_range": "10240 65000",
        "net.ipv4.tcp_tw_reuse": "1",
        "net.ipv4.tcp_fin_timeout": "15",
        "fs.file-max": str(max(262144, 4 * nofile)),
        "vm.overcommit_memory": "1",
        "vm.swappiness": "10",
    }
    if s.os_hardening:
        sysctl.update(HARDENING_SYSCTL)
    nginx = php_fpm = mariadb = redis = None
    if "lb" in components:
        nginx = NginxPlan(max_clients=s.lb_max_clients, worker_processes=workers, worker_connections=conns,
                          worker_rlimit_nofile=nofile, listen_backlog=somaxconn, max_fails=NGINX_MAX_FAILS,
                          fail_timeout_s=NGINX_FAIL_TIMEOUT_S, next_upstream_tries=s.instances * app_hosts)
    if n:
        php_fpm = PhpFpmPlan(max_children=children, memory_limit_mib=s.php_worker_memory_mib * PHP_MEMORY_LIMIT_FACTOR,
                             opcache_mib=OPCACHE_MIB, instance_limits=instance_limits, instance_cpus=pinned,
                             pinning_note=pinning_note)
    if "db" in components:
        mariadb = MariadbPlan(php_workers=php_workers, queue_clients=queue_clients,
                              connection_headroom=s.db_connection_headroom,
                              max_connections=max_connections, buffer_pool_mib=buffer_pool,
                              buffer_pool_chunk_mib=INNODB_CHUNK_MIB,
                              log_file_mib=max(DB_LOG_FILE_MIN_MIB, math.floor(buffer_pool * DB_LOG_FILE_FRACTION)),
                              thread_cache=min(max_connections, DB_THREAD_CACHE_MAX))
    if "cache" in components:
        # every PHP worker of every app host may hold a (persistent) connection
        clients = s.instances * (children or _max_children(s.app_memory_mib, s)[0]) * app_hosts
        redis = RedisPlan(maxmemory_mib=redis_max, maxclients=clients + queue_clients + REDIS_CLIENT_HEADROOM,
                          tcp_backlog=max(REDIS_MIN_TCP_BACKLOG, somaxconn))
    queue = None
    if queue_on:
        queue = QueuePlan(workers=s.queue_workers, connection=s.queue_connection, queues=tuple(s.queue_names),
                          tries=s.queue_tries, timeout_s=s.queue_timeout_s, max_time_s=s.queue_max_time_s,
                          stop_timeout_s=s.queue_timeout_s + QUEUE_STOP_MARGIN_S,
                          retry_after_s=s.queue_timeout_s + QUEUE_STOP_MARGIN_S,
                          worker_memory_mib=limits[QUEUE].memory_high_mib // (s.queue_workers + 1),
                          scheduler=s.scheduler)
    return Plan(
        host_cpus=host_cpus,
        host_memory_mib=host_memory_mib,
        capacity_source=source,
        os_reserve_mib=reserve,
        usable_memory_mib=usable,
        components=components,
        slices={c: f"lbstack-{c}.slice" for c in parts},
        limits=limits,
        instances=n,
        sysctl=sysctl,
        nginx=nginx,
        php_fpm=php_fpm,
        mariadb=mariadb,
        redis=redis,
        queue=queue,
        adjustments=tuple(adjustments),
    )
