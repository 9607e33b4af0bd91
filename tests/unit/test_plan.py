"""The capacity plan over host sizes and instance counts: every plan fits, or refuses with numbers."""

import itertools
import math

import pytest

from lbstack.plan import (
    DB_BASE_MIB,
    DB_PER_CONNECTION_MIB,
    FPM_MASTER_MIB,
    OPCACHE_MIB,
    PlanError,
    cpu_list,
    make_plan,
)
from lbstack.settings import load

MEMORY_GIB = (1, 2, 4, 8, 16, 32)
INSTANCES = range(1, 9)
CPUS = {1: 1, 2: 2, 4: 2, 8: 4, 16: 8, 32: 16}  # a typical VPS shape per memory size

# Which (memory GiB, instances) must be refused: the OS reserve plus each component's floor
# does not fit. Everything else must produce a plan.
REFUSED = {(1, n) for n in INSTANCES} | {(2, n) for n in range(5, 9)}


@pytest.mark.parametrize("gib,instances", list(itertools.product(MEMORY_GIB, INSTANCES)))
def test_plan_fits_the_host_or_refuses(gib, instances):
    settings = load({"instances": instances})
    memory = gib * 1024
    cpus = CPUS[gib]
    if (gib, instances) in REFUSED:
        with pytest.raises(PlanError) as err:
            make_plan(cpus, memory, settings)
        assert "MiB usable" in str(err.value) and "needs at least" in str(err.value)
        return
    plan = make_plan(cpus, memory, settings)
    # hard memory limits never sum past RAM minus the OS reserve
    assert plan.os_reserve_mib > 0
    assert plan.memory_max_total_mib <= plan.usable_memory_mib == memory - plan.os_reserve_mib
    # each CPU ceiling is its request capped at the host (ceilings are not scaled to sum to the host)
    requested_cpu = {"lb": 1.0, "app": 1.0 * instances, "db": 3.0, "cache": 1.0, "queue": 1.0}
    for component, limits in plan.limits.items():
        if component != "app":
            assert limits.cpu_quota_pct == int(min(requested_cpu[component], cpus) * 100)
    assert plan.php_fpm.instance_limits.cpu_quota_pct == int(min(1.0, cpus) * 100)
    for limits in plan.limits.values():
        assert 0 < limits.memory_high_mib < limits.memory_max_mib
        assert limits.cpu_quota_pct >= 10 and limits.tasks_max > 0
    # the app slice is exactly its instances
    inst = plan.php_fpm.instance_limits
    assert plan.limits["app"].memory_max_mib == inst.memory_max_mib * instances
    assert plan.limits["app"].cpu_quota_pct == inst.cpu_quota_pct * instances
    # the pool fits the instance's MemoryHigh
    assert plan.php_fpm.max_children >= 2
    # workers follow the instance's CPU share (requests scaled to fit the host) x php_workers_per_cpu
    share = min(1.0, cpus / sum(requested_cpu.values())) * 1.0
    by_memory = (math.floor(inst.memory_max_mib * 0.9) - FPM_MASTER_MIB - OPCACHE_MIB) // settings.php_worker_memory_mib
    by_cpu = max(4, math.ceil(share * settings.php_workers_per_cpu - 1e-9))
    assert plan.php_fpm.max_children == max(2, min(32, by_memory, by_cpu))
    assert FPM_MASTER_MIB + OPCACHE_MIB + plan.php_fpm.max_children * settings.php_worker_memory_mib <= inst.memory_high_mib
    # MariaDB: every PHP worker, queue worker and the scheduler can connect, plus headroom; pool +
    # connections fit its MemoryHigh
    assert plan.mariadb.max_connections == (instances * plan.php_fpm.max_children + settings.queue_workers + 1
                                            + settings.db_connection_headroom)
    db_high = plan.limits["db"].memory_high_mib
    assert plan.mariadb.buffer_pool_mib >= 128 and plan.mariadb.buffer_pool_mib % 128 == 0
    assert DB_BASE_MIB + plan.mariadb.buffer_pool_mib + plan.mariadb.max_connections * DB_PER_CONNECTION_MIB <= db_high
    # Redis leaves room under its MemoryMax; nginx holds 2000 clients plus their upstream connections
    assert 0 < plan.redis.maxmemory_mib < plan.limits["cache"].memory_max_mib
    assert plan.nginx.worker_processes * plan.nginx.worker_connections >= 2 * 2000
    assert plan.nginx.worker_rlimit_nofile >= plan.nginx.worker_connections
    assert int(plan.sysctl["net.core.somaxconn"]) >= 2000
    # scaling is explicit: adjustments exist exactly when the requests did not fit
    requested = 2048 + 3072 * instances + 6144 + 3072 + 512
    assert bool([a for a in plan.adjustments if a.what == "MemoryMax"]) == (requested > plan.usable_memory_mib)


def test_seed_profile_on_8_vcpu_16_gb_is_scaled_explicitly():
    plan = make_plan(8, 16384, load({}))
    memory = {a.component: a for a in plan.adjustments if a.what == "MemoryMax"}
    assert set(memory) == {"lb", "app", "db", "cache", "queue"}
    assert memory["app"].requested == "15360 MiB" and "27136 MiB" in memory["app"].why
    assert plan.memory_max_total_mib <= 16384 - plan.os_reserve_mib
    # CPU ceilings are requests (none above 8 vCPU): not scaled, although they sum past the host
    assert not [a for a in plan.adjustments if a.what.startswith("CPUQuota")]
    assert plan.cpu_quota_total_pct == 100 + 500 + 300 + 100 + 100 > 800
    # shares are scaled (11 requested on 8): 0.73 vCPU per instance x 4 workers per vCPU -> 4
    assert plan.instances == 5 and plan.php_fpm.max_children == 4
    assert any(a.what == "pm.max_children" and "CPU share 0.73" in a.why for a in plan.adjustments)


def test_two_cpu_host_keeps_ceilings_and_sizes_workers_by_share():
    plan = make_plan(2, 24 * 1024, load({}))
    assert plan.limits["lb"].cpu_quota_pct == 100 and plan.limits["cache"].cpu_quota_pct == 100
    assert plan.limits["db"].cpu_quota_pct == 200 and plan.php_fpm.instance_limits.cpu_quota_pct == 100
    assert {a.component for a in plan.adjustments if a.what.startswith("CPUQuota")} == {"db"}
    # share 2 x 5/10 / 5 = 0.2 vCPU per instance x 4 = 1 worker -> the preferred minimum of 4; 20 in all
    assert plan.php_fpm.max_children == 4 and plan.mariadb.max_connections == 20 + 2 + 1 + 20
    assert plan.nginx.worker_processes == 1
    more = make_plan(2, 24 * 1024, load({"php_workers_per_cpu": 40}))
    assert more.php_fpm.max_children == 8


def test_refuse_policy_refuses_with_the_numbers():
    with pytest.raises(PlanError) as err:
        make_plan(8, 16384, load({"overcommit": "refuse"}))
    text = str(err.value)
    assert "14746 MiB usable" in text and "requested 15360 MiB" in text and "total  requested 27136 MiB" in text


def test_capacity_override_wins_over_host_facts():
    plan = make_plan(2, 24 * 1024, load({"capacity_cpus": 8, "capacity_memory_mib": 16384}))
    assert (plan.host_cpus, plan.host_memory_mib, plan.capacity_source) == (8, 16384, "override")


def test_split_topology_plans_only_the_hosts_components():
    db_host = make_plan(4, 8192, load({}), components=("db",))
    assert db_host.components == ("db",) and set(db_host.limits) == {"db"}
    assert db_host.php_fpm is None and db_host.nginx is None and db_host.redis is None
    # the db host still sizes connections for every remote PHP worker
    assert db_host.mariadb.max_connections > 5 * 2
    assert db_host.memory_max_total_mib <= db_host.usable_memory_mib


def test_small_requests_are_not_scaled():
    plan = make_plan(8, 16384, load({"instances": 2, "app_memory_mib": 1024, "db_memory_mib": 2048,
                                     "cache_memory_mib": 512, "lb_memory_mib": 256, "db_cpus": 1}))
    assert plan.adjustments == () or all(a.what == "pm.max_children" for a in plan.adjustments)
    assert plan.limits["db"].memory_max_mib == 2048 and plan.limits["db"].cpu_quota_pct == 100


def test_cpu_floor_refusal():
    with pytest.raises(PlanError) as err:
        make_plan(0.5, 32768, load({"instances": 8}))
    assert "vCPU usable" in str(err.value)


# -- CPU placement of the instances (rule 6) -------------------------------------------------------

@pytest.mark.parametrize("online, expected", [
    (8, ("7", "6", "5", "4", "3")),   # each instance its own CPU, from the last down
    (2, ("1", "0", "1", "0", "1")),   # round-robin when there are fewer CPUs than instances
    (4, ("3", "2", "1", "0", "3")),
])
def test_instances_are_placed_from_the_last_cpu_down(online, expected):
    plan = make_plan(8, 16384, load({}), online_cpus=online)
    assert plan.php_fpm.instance_cpus == expected and plan.php_fpm.pinning_note == ""


def test_an_instance_gets_as_many_cpus_as_its_ceiling():
    plan = make_plan(8, 32768, load({"app_cpus": 1.5, "instances": 3, "rolling_batch": 1}), online_cpus=8)
    assert plan.php_fpm.instance_limits.cpu_quota_pct == 150
    assert plan.php_fpm.instance_cpus == ("6-7", "4-5", "2-3")


def test_pinning_uses_the_real_cpus_not_a_capacity_rehearsal():
    # rehearsing an 8 vCPU plan on a 2 vCPU host must not name CPUs 2..7, which would stop the instances
    plan = make_plan(2, 24 * 1024, load({"capacity_cpus": 8}), online_cpus=2)
    assert plan.host_cpus == 8
    assert set(plan.php_fpm.instance_cpus) == {"0", "1"}


@pytest.mark.parametrize("raw, online, note", [
    ({"app_cpu_pinning": False}, 8, "app_cpu_pinning is off"),
    ({}, 1, "the host has one CPU"),
    ({}, None, "the host's CPUs are unknown"),
    ({"app_cpus": 2.0}, 2, "already spans all 2 CPUs"),
])
def test_no_pinning_and_why(raw, online, note):
    plan = make_plan(max(online or 2, 2), 24 * 1024, load(raw), online_cpus=online)
    assert plan.php_fpm.instance_cpus == ("",) * plan.instances
    assert note in plan.php_fpm.pinning_note


def test_split_db_host_has_no_instances_to_place():
    plan = make_plan(8, 16384, load({}), ("db",), online_cpus=8)
    assert plan.instances == 0 and plan.php_fpm is None


def test_every_component_section_holds_the_sizes_its_templates_use():
    plan = make_plan(8, 16384, load({}))
    db = plan.mariadb
    assert db.php_workers == plan.instances * plan.php_fpm.max_children
    assert db.queue_clients == 2 + 1  # two queue workers and the scheduler
    assert db.max_connections == db.php_workers + db.queue_clients + db.connection_headroom
    assert db.log_file_mib == max(48, db.buffer_pool_mib // 4) and db.thread_cache == min(db.max_connections, 128)
    assert db.buffer_pool_mib % db.buffer_pool_chunk_mib == 0
    assert plan.redis.maxclients == plan.instances * plan.php_fpm.max_children + 3 + 100
    assert plan.redis.tcp_backlog == max(511, int(plan.sysctl["net.core.somaxconn"]))
    assert plan.nginx.next_upstream_tries == plan.instances
    assert plan.nginx.listen_backlog == int(plan.sysctl["net.core.somaxconn"])
    assert plan.php_fpm.memory_limit_mib == 2 * load({}).php_worker_memory_mib
    data = plan.to_data()  # what `lbstack plan --json` prints
    for section in ("nginx", "php_fpm", "mariadb", "redis", "queue", "limits", "sysctl"):
        assert data[section], section
    queue = plan.queue
    assert (queue.workers, queue.connection, queue.queues, queue.scheduler) == (2, "redis", ("default",), True)
    # a worker stops only after its job: the stop timeout and retry_after outlast the longest job
    assert queue.stop_timeout_s == queue.retry_after_s == queue.timeout_s + 30 == 90
    # two workers and the scheduler share the slice's MemoryHigh
    assert queue.worker_memory_mib == plan.limits["queue"].memory_high_mib // 3
    assert plan.slices["queue"] == "lbstack-queue.slice"


def test_the_queue_is_planned_only_on_app_hosts_and_only_when_it_runs_something():
    assert make_plan(4, 8192, load({}), components=("db",)).queue is None
    assert "queue" not in make_plan(4, 8192, load({}), components=("lb", "cache")).limits
    off = make_plan(8, 16384, load({"queue_workers": 0, "queue_connection": "sync", "scheduler": False}))
    assert off.queue is None and "queue" not in off.slices and "queue" not in off.limits
    scheduler_only = make_plan(8, 16384, load({"queue_workers": 0, "queue_connection": "sync"}))
    assert scheduler_only.queue.workers == 0 and scheduler_only.queue.scheduler
    assert scheduler_only.mariadb.queue_clients == 1
    # a small queue request is not scaled; its floor is a minimal worker each
    small = make_plan(8, 16384, load({"queue_workers": 4, "queue_memory_mib": 64, "instances": 1,
                                      "app_memory_mib": 1024, "db_memory_mib": 2048, "cache_memory_mib": 512,
                                      "lb_memory_mib": 256}))
    assert small.limits["queue"].memory_max_mib == 64
    assert small.limits["queue"].tasks_max == 16 + 8 * 5


def test_split_stack_sizes_span_every_app_host():
    three = make_plan(8, 16384, load({}), app_hosts=3)
    one = make_plan(8, 16384, load({}))
    assert three.nginx.next_upstream_tries == 3 * one.nginx.next_upstream_tries
    assert three.redis.maxclients - 100 == 3 * (one.redis.maxclients - 100)  # PHP and queue workers alike
    cache_only = make_plan(4, 8192, load({}), ("cache",), app_hosts=2)
    assert cache_only.redis.maxclients > 100  # sized for the app hosts' workers it cannot see
    with pytest.raises(PlanError, match="app_hosts"):
        make_plan(8, 16384, load({}), app_hosts=0)


@pytest.mark.parametrize("cpus, text", [([3], "3"), ([0, 1], "0-1"), ([7, 6, 5, 0, 2], "0,2,5-7"), ([], "")])
def test_cpu_list_is_the_kernel_form(cpus, text):

    assert cpu_list(cpus) == text


def test_monitoring_is_a_budgeted_part_with_its_own_slice_only_when_on():
    from deploy import limits as limits_mod
    off = make_plan(8, 16384, load({}))
    on = make_plan(8, 16384, load({"monitoring": True}))
    assert "monitoring" not in off.slices
    assert on.slices["monitoring"] == "lbstack-monitoring.slice"
    lim = on.limits["monitoring"]
    assert lim.cpu_quota_pct == 50 and 128 <= lim.memory_max_mib <= 512
    # its memory comes out of the same usable budget: the others get less
    assert sum(l.memory_max_mib for l in on.limits.values()) <= on.usable_memory_mib
    assert on.limits["app"].memory_max_mib < off.limits["app"].memory_max_mib
    text = limits_mod.slice_template_data(on, "monitoring")
    assert text["unit"] == "lbstack-monitoring.slice" and "Prometheus" in text["description"]
