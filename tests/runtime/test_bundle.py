"""The OCI configuration of a dyno: what every sandbox rule turns into (pure)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from dockyard.domain.formation import DYNO_SIZES
from dockyard.runtime import bundle, cgroups, seccomp

DYNO = Path("/var/lib/dockyard/dynos/d1")


def make(**overrides: Any) -> dict[str, Any]:
    spec = bundle.BundleSpec(
        hostname="web.1",
        root=Path("/var/lib/dockyard/stacks/mnt/dockyard-12-20250101-abcdefabcdef"),
        app_dir=DYNO / "app",
        hosts_file=DYNO / "hosts",
        run_dir=DYNO / "run",
        args=["bash", "-c", "launcher", "dyno", "python3 app.py"],
        env={"PORT": "5123", "DYNO": "web.1"},
        uid=1000,
        gid=1000,
        limits=cgroups.limits_for(DYNO_SIZES["standard-1x"], host_cpus=2),
        cgroups_path="/dockyard/d1",
        seccomp=seccomp.profile("SCMP_ARCH_X86_64"),
        id_map=bundle.IdMap(1 << 20),
    )
    return bundle.config(dataclasses.replace(spec, **overrides))


def mounts(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["destination"]: m for m in config["mounts"]}


def test_the_process_has_no_capabilities_no_new_privileges_and_no_core_dumps() -> None:
    process = make()["process"]
    assert all(caps == [] for caps in process["capabilities"].values())
    assert set(process["capabilities"]) == {
        "bounding",
        "effective",
        "inheritable",
        "permitted",
        "ambient",
    }
    assert process["noNewPrivileges"] is True
    assert {"type": "RLIMIT_CORE", "hard": 0, "soft": 0} in process["rlimits"]
    assert {"type": "RLIMIT_NOFILE", "hard": 10000, "soft": 10000} in process["rlimits"]
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": []}
    assert process["terminal"] is False
    assert process["cwd"] == "/app"
    assert process["env"] == ["PORT=5123", "DYNO=web.1"]


def test_the_root_is_the_stack_read_only_and_the_hostname_the_dyno_name() -> None:
    config = make()
    assert config["root"]["readonly"] is True
    assert config["root"]["path"].endswith("dockyard-12-20250101-abcdefabcdef")
    assert config["hostname"] == "web.1"


def test_app_tmp_and_run_are_the_only_writable_places_and_tmp_is_capped() -> None:
    by_destination = mounts(make(tmp_size_mb=64))
    assert by_destination["/app"]["source"] == str(DYNO / "app")
    assert "rw" in by_destination["/app"]["options"]
    assert "size=64m" in by_destination["/tmp"]["options"]
    assert {"nosuid", "nodev"} <= set(by_destination["/tmp"]["options"])
    assert by_destination["/run"]["source"] == str(DYNO / "run")
    assert "ro" in by_destination["/etc/hosts"]["options"]
    assert "ro" in by_destination["/sys"]["options"]
    assert "ro" in by_destination["/sys/fs/cgroup"]["options"]
    writable_binds = {
        d for d, m in by_destination.items() if m["type"] == "bind" and "rw" in m["options"]
    }
    assert writable_binds == {"/app", "/run"}


def test_namespaces_include_user_with_the_app_s_range_only_when_asked() -> None:
    config = make()
    kinds = [ns["type"] for ns in config["linux"]["namespaces"]]
    assert sorted(kinds) == ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"]
    mapping = [{"containerID": 0, "hostID": 1 << 20, "size": 65536}]
    assert config["linux"]["uidMappings"] == mapping == config["linux"]["gidMappings"]
    plain = make(id_map=None)
    assert "user" not in [ns["type"] for ns in plain["linux"]["namespaces"]]
    assert "uidMappings" not in plain["linux"]


def test_the_network_namespace_is_new_unless_a_path_is_given() -> None:
    [fresh] = [ns for ns in make()["linux"]["namespaces"] if ns["type"] == "network"]
    assert fresh == {"type": "network"}
    [joined] = [
        ns
        for ns in make(netns_path="/run/netns/dy-1")["linux"]["namespaces"]
        if ns["type"] == "network"
    ]
    assert joined == {"type": "network", "path": "/run/netns/dy-1"}


def test_proc_and_sys_paths_are_masked_and_read_only_as_docker_does() -> None:
    linux = make()["linux"]
    assert {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"} <= set(
        linux["maskedPaths"]
    )
    assert {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"} <= set(
        linux["readonlyPaths"]
    )


def test_resources_come_from_the_size_and_devices_are_denied() -> None:
    resources = make()["linux"]["resources"]
    assert resources["memory"]["limit"] == 512 << 20
    assert resources["memory"]["swap"] == 1024 << 20
    assert resources["pids"] == {"limit": 256}
    assert resources["cpu"] == {"shares": 1024, "quota": 100_000, "period": 100_000}
    assert resources["devices"] == [{"allow": False, "access": "rwm"}]
    assert make()["linux"]["cgroupsPath"] == "/dockyard/d1"


def test_without_swap_accounting_only_the_memory_limit_is_set() -> None:
    memory = make(swap_limit=False)["linux"]["resources"]["memory"]
    assert memory["limit"] == 512 << 20
    assert "swap" not in memory


def test_the_seccomp_profile_is_embedded() -> None:
    assert make()["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"


def test_hosts_file_names_the_dyno() -> None:
    assert bundle.hosts_file_text("web.1").splitlines()[0] == "127.0.0.1\tlocalhost web.1"


def test_sys_is_sysfs_unless_a_user_namespace_joins_a_host_made_network_namespace() -> None:
    assert mounts(make())["/sys"]["type"] == "sysfs"
    assert mounts(make(id_map=None, netns_path="/run/netns/dy-1"))["/sys"]["type"] == "sysfs"
    joined = mounts(make(netns_path="/run/netns/dy-1"))
    assert joined["/sys"]["type"] == "tmpfs"  # never a bind of the host's /sys
    assert "/sys/fs/cgroup" in joined
