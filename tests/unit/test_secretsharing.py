"""Which hosts hold each secret, which keeps it, when a holder is sent it."""

from lbstack import secretsharing
from lbstack.layout import SECRETS

ONE = {g: ["vps"] for g in ("lb", "app", "db", "cache")}
SPLIT = {"lb": ["lb1", "lb2"], "app": ["app1", "app2"], "db": ["db1"], "cache": ["cache1"]}


def test_one_vps_holds_and_keeps_every_secret():
    for name in SECRETS:
        assert secretsharing.holders(name, ONE) == ["vps"] and secretsharing.keeper(name, ONE) == "vps"


def test_a_split_stack_keeps_each_secret_where_its_server_is_and_gives_it_only_to_its_users():
    assert secretsharing.holders("db_password", SPLIT) == ["db1", "app1", "app2"]
    assert secretsharing.holders("redis_password", SPLIT) == ["cache1", "app1", "app2"]
    assert secretsharing.holders("redis_admin_password", SPLIT) == ["cache1"]
    assert secretsharing.holders("app_key", SPLIT) == ["app1", "app2"]
    assert {secretsharing.keeper(n, SPLIT) for n in SECRETS} == {"db1", "cache1", "app1"}
    # the load balancers hold none
    assert not [n for n in SECRETS if {"lb1", "lb2"} & set(secretsharing.holders(n, SPLIT))]


def test_a_host_in_two_groups_is_listed_once():
    groups = {"lb": ["a"], "app": ["a", "b"], "db": ["b"], "cache": ["b"]}
    assert secretsharing.holders("db_password", groups) == ["b", "a"]


def test_a_holder_is_sent_the_value_unless_it_already_has_the_keepers():
    assert secretsharing.needs_sending(None, None)  # both new: the keeper makes it first in the run
    assert secretsharing.needs_sending(None, "d1") and secretsharing.needs_sending("d0", "d1")
    assert secretsharing.needs_sending("d1", None)  # the keeper lost it: it makes a new one, sent on
    assert not secretsharing.needs_sending("d1", "d1")
