"""One deploy lock and one rolling update per stack (lbstack.operations): the lock is taken and
released on the stack's lock host, whichever app host's run holds it; an app host whose update
rolled back stops the app hosts after it; the app hosts take turns in the inventory's order.
The split rehearsal (tests/e2e/test_split.py) runs the same on real hosts under load."""

from __future__ import annotations

import pytest
from pyinfra.context import ctx_host, ctx_state

from lbstack import deploylock, operations, rollout


class FakeHost:
    def __init__(self, name: str):
        self.name, self.connected, self.said = name, True, []

    def log_styled(self, message, **_):
        self.said.append(message)

    def connect(self, **_):
        self.connected = True


class Executing:
    is_executing = True


@pytest.fixture
def calls(monkeypatch):
    """Every command a runner ran, as (host name, what); the lock's scripts answer as a host would."""
    seen: list[tuple[str, str]] = []

    def host_runner(target, argv=False):
        def run(command, timeout_s):
            seen.append((target.name, command if isinstance(command, str) else " ".join(command)))
            if argv:
                return rollout.Result(0, "balancer=reloaded\n")
            return True, "@removed\n"
        return run

    monkeypatch.setattr(operations, "host_runner", host_runner)
    monkeypatch.setattr(operations, "ROLL_STOPPED", {})
    monkeypatch.setattr(deploylock, "HELD", {})
    return seen


GATES = rollout.Gates("/health", "/smoke", 1, 5, 5)


def test_a_failed_update_releases_the_stacks_lock_on_its_host_and_stops_the_next_app_host(calls, monkeypatch):
    app1, app2, lb = FakeHost("app1"), FakeHost("app2"), FakeHost("lb1")
    deploylock.HELD["app1"] = '{"pid": 1}'  # app1 is the lock host: app2's run took it there

    def failing(self, steps, batch, release):
        raise rollout.RolloutFailed("gate 'health' failed on app1", "health")

    monkeypatch.setattr(rollout.Rollout, "run", failing)
    step = rollout.Step(rollout.Instance(1, "app2-app1", "10.0.0.3:9001"), release="R2")
    assert operations._roll(None, app2, [step], [], GATES, 1, "R2", [lb], app1) is False
    assert calls[-1][0] == "app1" and "rm -f" in calls[-1][1]  # released where it lives
    assert "app1" not in deploylock.HELD
    assert operations.ROLL_STOPPED == {"app2": "gate 'health'"}
    # the next app host (its turn comes after app2's) keeps its release
    app3 = FakeHost("app3")
    before = len(calls)
    assert operations._roll(None, app3, [step], [], GATES, 1, "R2", [lb], app1) is False
    assert len(calls) == before  # not one command: nothing drained, nothing switched
    assert "not rolled: the rolling update stopped on app2 (gate 'health')" in app3.said[0]


def test_a_passing_update_keeps_the_lock_for_the_app_hosts_after_it(calls, monkeypatch):
    app1, app2, lb1, lb2 = FakeHost("app1"), FakeHost("app2"), FakeHost("lb1"), FakeHost("lb2")
    deploylock.HELD["app1"] = '{"pid": 1}'
    monkeypatch.setattr(rollout.Rollout, "_wait_idle", lambda self, inst: None)
    monkeypatch.setattr(rollout.Rollout, "_apply", lambda self, step: "")
    monkeypatch.setattr(rollout.Rollout, "_gate", lambda self, inst, release, before: None)
    step = rollout.Step(rollout.Instance(1, "app1-app1", "10.0.0.2:9001"), release="R2")
    assert operations._roll(None, app1, [step], [], GATES, 1, "R2", [lb1, lb2], app1) is True
    drained_on = [name for name, what in calls if " drain " in f" {what} "]
    assert drained_on == ["lb1", "lb2"]  # drained on every balancer
    assert deploylock.HELD == {"app1": '{"pid": 1}'}  # still held: app2 rolls next


def test_the_unlock_step_releases_only_a_lock_this_run_holds(calls):
    lock = FakeHost("app1")
    with ctx_state.use(Executing()), ctx_host.use(FakeHost("app2")):
        assert list(operations.deploy_unlock._inner(lock=lock)) == []  # nothing held: no change
        deploylock.HELD["app1"] = '{"pid": 1}'
        (command,) = list(operations.deploy_unlock._inner(lock=lock))
    assert command.function(None, FakeHost("app2"), *command.args) is True
    assert calls == [("app1", calls[0][1])] and "rm -f" in calls[0][1] and deploylock.HELD == {}


def test_a_host_outside_the_run_is_connected_before_it_is_used():
    other = FakeHost("lb2")
    other.connected = False
    assert operations.reached(other) is other and other.connected


def test_an_app_host_that_failed_earlier_in_the_run_stops_the_stacks_update(calls):
    app1, app2, lb = FakeHost("app1"), FakeHost("app2"), FakeHost("lb1")
    app1.groups = ("app",)

    class Run:
        failed_hosts = {app1}

    step = rollout.Step(rollout.Instance(1, "app2-app1", "10.0.0.3:9001"), release="R2")
    assert operations._roll(Run(), app2, [step], [], GATES, 1, "R2", [lb], app1) is False
    assert calls == []
    assert "stopped on app1 (it failed earlier in this run)" in app2.said[0]


class TurnHost(FakeHost):
    current_op_hash = "roll"


class Run:
    """What :func:`operations.rolling_turn` reads of pyinfra's state: the inventory, the hosts
    still in the run, each host's operations and results, the operation's arguments and the pool."""

    def __init__(self, hosts, active, pool_size=None, without_op=(), parallel=None, errors=()):
        import types

        import gevent.pool

        self.inventory, self.active_hosts, self.failed_hosts = hosts, set(active), set()
        self.ops = {h: ({} if h.name in without_op else {"roll": object()}) for h in hosts}
        self.results = {h: types.SimpleNamespace(error_ops=int(h.name in errors)) for h in hosts}
        self.pool = gevent.pool.Pool(pool_size)
        self.meta = types.SimpleNamespace(global_arguments={"_parallel": parallel})

    def get_results_for_host(self, host):
        return self.results[host]

    def get_op_meta(self, op):
        return self.meta


def _take_turns(run, order, peers, hold_s=0.02, attempts=None):
    """Start every host's turn at once, in ``order`` (pyinfra's set order: any), as pyinfra's
    pool greenlets (``attempts``: how many times each host tries, a retry right after the first);
    return the (host, start|end) events."""
    import gevent

    events = []

    def turn(h):
        for _ in range((attempts or {}).get(h.name, 1)):
            with operations.rolling_turn(run, h, peers):
                events.append((h.name, "start"))
                gevent.sleep(hold_s)
                events.append((h.name, "end"))

    gevent.joinall([run.pool.spawn(turn, h) for h in order], timeout=10, raise_error=True)
    return events


def _one_at_a_time(events):
    for i in range(0, len(events), 2):  # never two at once: each start is followed by the same host's end
        assert events[i][1] == "start" and events[i + 1] == (events[i][0], "end"), events


def test_app_hosts_take_turns_in_the_inventorys_order_whatever_order_pyinfra_starts_them():
    app1, app2, app3, lb = (TurnHost(n) for n in ("app1", "app2", "app3", "lb1"))
    run = Run([lb, app1, app2, app3], [lb, app1, app2, app3])
    events = _take_turns(run, [app3, app2, app1], ["app1", "app2", "app3"])
    assert events == [("app1", "start"), ("app1", "end"), ("app2", "start"), ("app2", "end"),
                      ("app3", "start"), ("app3", "end")]


def test_hosts_outside_the_run_without_the_step_or_failed_are_not_waited_for():
    app1, app2, app3, app4 = (TurnHost(n) for n in ("app1", "app2", "app3", "app4"))
    # app1 failed earlier (no longer in the run), app2 has no rolling step this run, app3 failed an
    # operation under --no-wait (still "active", never comes): app4 goes at once
    run = Run([app1, app2, app3, app4], [app2, app3, app4], without_op=("app2",), errors=("app3",))
    assert _take_turns(run, [app4], ["app1", "app2", "app3", "app4"]) == [("app4", "start"), ("app4", "end")]


def test_a_retried_attempt_waits_for_the_host_whose_turn_came_meanwhile():
    app1, app2 = TurnHost("app1"), TurnHost("app2")
    run = Run([app1, app2], [app1, app2])
    events = _take_turns(run, [app2, app1], ["app1", "app2"], attempts={"app1": 2})
    _one_at_a_time(events)
    assert events[:2] == [("app1", "start"), ("app1", "end")] and len(events) == 6


def test_when_not_every_app_host_can_wait_at_once_they_still_roll_one_at_a_time():
    for pool_size, parallel in ((2, None), (None, 2)):  # a small pool; --parallel 2 (pyinfra's batches)
        app1, app2, app3 = (TurnHost(n) for n in ("app1", "app2", "app3"))
        run = Run([app1, app2, app3], [app1, app2, app3], pool_size=pool_size, parallel=parallel)
        events = _take_turns(run, [app3, app2, app1], ["app1", "app2", "app3"])
        assert len(events) == 6
        _one_at_a_time(events)
        assert "one at a time, in pyinfra's order" in app3.said[0]
