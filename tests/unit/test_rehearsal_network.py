"""Rehearsal networks: names, addresses, and what a host on one gets (no host is started here)."""

import pytest

from lbstack.rehearsal import RehearsalError, common, network


def test_a_network_has_its_own_subnet_and_namespace():
    net = network.Net("split", 7)
    assert net.subnet == "10.214.7.0/24" and net.address(3) == "10.214.7.3"
    assert net.netns == "lbsnet-split" and network.host_veth(3) == "vlbp3"
    assert len(network.host_veth(254)) <= 15  # an interface name's limit


@pytest.mark.parametrize("name", ["Split", "1net", "a" * 16, "a_b", ""])
def test_bad_network_names_are_refused_with_the_rule(name):
    with pytest.raises(RehearsalError, match="use 1-15 of a-z, 0-9 and '-'"):
        network.check_net_name(name)


def test_networks_are_read_from_their_records_in_the_state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(common.STATE_ENV, str(tmp_path))
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "one.json").write_text('{"name": "one", "index": 1}\n')
    (tmp_path / "nets" / "three.json").write_text('{"name": "three", "index": 3}\n')
    assert [n.name for n in network.list_nets()] == ["one", "three"]
    assert network.get_net("three") == network.Net("three", 3) and network.get_net("two") is None


def test_a_host_on_a_network_gives_pyinfra_its_private_address():
    info = common.HostInfo(name="h", kind="nspawn", address="10.213.4.2", ssh_port=22, ssh_user="root",
                           ssh_key="/k", pid=1, host_dir="/x", started_at=0.0, index=4, net="split",
                           private_address="10.214.1.4")
    assert common.pyinfra_host(info)[1]["private_address"] == "10.214.1.4"
    info.net = info.private_address = None
    assert "private_address" not in common.pyinfra_host(info)[1]
