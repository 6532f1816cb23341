"""The RAPL meter against fake powercap trees on disk, read by the real code."""

from __future__ import annotations

import logging
import shutil

import pytest
from powercap import FakePowercap

from carbon_core.faults import FaultLog
from carbon_core.meters.base import MeterUnavailable
from carbon_core.meters.rapl import RaplMeter


def test_two_sockets_with_dram_count_each_domain_once(tmp_path):
    tree = FakePowercap(tmp_path, sockets=2)
    meter = RaplMeter(root=tree.root)
    assert sorted(c.name for c in meter.channels) == [
        "cpu:dram-0",
        "cpu:dram-1",
        "cpu:package-0",
        "cpu:package-1",
    ]
    assert {c.name: c.component for c in meter.channels}["cpu:dram-1"] == "ram"
    tree.add("package-0", 30_000_000)
    tree.add("package-1", 20_000_000)
    tree.add("core-0", 25_000_000)  # inside package-0: must not be added again
    tree.add("uncore-1", 1_000_000)
    tree.add("dram-0", 4_000_000)
    tree.add("dram-1", 5_500_000)
    assert meter.read() == {
        "cpu:package-0": 30.0,
        "cpu:package-1": 20.0,
        "cpu:dram-0": 4.0,
        "cpu:dram-1": 5.5,
    }
    tree.add("package-0", 1_000_000)
    assert meter.read()["cpu:package-0"] == 31.0


def test_counter_wraparound_uses_max_energy_range(tmp_path):
    tree = FakePowercap(tmp_path, sockets=1, dram=False, max_range_uj=1_000_000_000)
    tree.set("package-0", 999_000_000)
    meter = RaplMeter(root=tree.root)
    tree.add("package-0", 3_000_000)  # wraps to 2_000_000
    assert (tree.zones["package-0"] / "energy_uj").read_text().strip() == "2000000"
    assert meter.read() == {"cpu:package-0": 3.0}
    tree.add("package-0", 500_000)
    assert meter.read() == {"cpu:package-0": 3.5}


def test_counter_going_backwards_is_a_reset_not_a_huge_wrap(tmp_path, caplog):
    tree = FakePowercap(tmp_path, sockets=1, dram=False)
    tree.set("package-0", 50_000_000)
    faults = FaultLog()
    meter = RaplMeter(faults, root=tree.root)
    tree.set("package-0", 60_000_000)
    assert meter.read() == {"cpu:package-0": 10.0}
    tree.set("package-0", 1_000_000)  # counter reset
    assert meter.read() == {"cpu:package-0": 10.0}
    tree.set("package-0", 3_000_000)
    assert meter.read() == {"cpu:package-0": 12.0}
    assert len(faults) == 1 and "backwards" in faults.messages[0]


def test_file_unreadable_mid_run_keeps_total_and_other_zones(tmp_path, caplog):
    tree = FakePowercap(tmp_path, sockets=2, dram=False)
    faults = FaultLog()
    meter = RaplMeter(faults, root=tree.root)
    tree.add("package-0", 7_000_000)
    tree.add("package-1", 2_000_000)
    meter.read()
    energy = tree.zones["package-0"] / "energy_uj"
    energy.unlink()
    energy.mkdir()  # reading it now fails, as an unreadable counter does (tests run as root)
    tree.add("package-1", 3_000_000)
    with caplog.at_level(logging.WARNING, logger="carbon_core"):
        assert meter.read() == {"cpu:package-0": 7.0, "cpu:package-1": 5.0}
        tree.add("package-1", 1_000_000)
        assert meter.read() == {"cpu:package-0": 7.0, "cpu:package-1": 6.0}
    assert len([r for r in caplog.records if "unreadable" in r.getMessage()]) == 1


def test_permission_error_on_one_zone_does_not_disable_others(tmp_path, monkeypatch):
    tree = FakePowercap(tmp_path, sockets=2, dram=False)
    blocked = tree.zones["package-1"] / "energy_uj"
    real_read_text = type(blocked).read_text

    def read_text(self, *a, **k):  # root ignores file modes, so deny this one file here
        if self.resolve() == blocked.resolve():
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *a, **k)

    monkeypatch.setattr(type(blocked), "read_text", read_text)
    faults = FaultLog()
    meter = RaplMeter(faults, root=tree.root)
    assert [c.name for c in meter.channels] == ["cpu:package-0"]
    assert "chmod" in faults.messages[0] and "5.10" in faults.messages[0]


def test_all_zones_unreadable_is_unavailable_with_the_reason(tmp_path, monkeypatch):
    tree = FakePowercap(tmp_path, sockets=1, dram=False)
    real_read_text = type(tree.root).read_text

    def read_text(self, *a, **k):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *a, **k)

    monkeypatch.setattr(type(tree.root), "read_text", read_text)
    faults = FaultLog()
    with pytest.raises(MeterUnavailable, match="none is readable"):
        RaplMeter(faults, root=tree.root)
    assert "sudo chmod" in faults.messages[0]


def test_duplicate_mmio_domain_is_counted_once(tmp_path):
    tree = FakePowercap(tmp_path, sockets=1, dram=False, mmio_duplicate=True)
    meter = RaplMeter(root=tree.root)
    assert [c.name for c in meter.channels] == ["cpu:package-0"]
    assert meter.info["zones"]["cpu:package-0"].endswith("intel-rapl:0")
    tree.add("package-0", 2_000_000)
    tree.add("mmio-package-0", 2_000_000)
    assert meter.read() == {"cpu:package-0": 2.0}


def test_nested_only_tree_without_flat_links(tmp_path):
    tree = FakePowercap(tmp_path, sockets=1)
    for link in list(tree.root.iterdir()):
        if link.name != "intel-rapl:0":
            link.unlink()
    meter = RaplMeter(root=tree.root)
    assert sorted(c.name for c in meter.channels) == ["cpu:dram-0", "cpu:package-0"]


def test_missing_tree_is_unavailable(tmp_path, monkeypatch):
    with pytest.raises(MeterUnavailable, match="no RAPL powercap tree"):
        RaplMeter(root=tmp_path / "nope")
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tmp_path / "nope"))
    with pytest.raises(MeterUnavailable):
        RaplMeter()


def test_root_from_environment(tmp_path, monkeypatch):
    tree = FakePowercap(tmp_path, sockets=1, dram=False)
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tree.root))
    assert RaplMeter().root == tree.root
    shutil.rmtree(tmp_path / "devices")
    with pytest.raises(MeterUnavailable):
        RaplMeter()
