"""The dynos' seccomp profile: default deny with EPERM, Docker's allow-list made stricter (pure)."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from dockyard.runtime import seccomp


def rules(profile: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [rule for rule in profile["syscalls"] if name in rule["names"]]


def test_everything_not_listed_is_refused_with_eperm() -> None:
    profile = seccomp.profile("SCMP_ARCH_X86_64")
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["defaultErrnoRet"] == errno.EPERM


@pytest.mark.parametrize("name", seccomp.DENIED_NOTABLY)
def test_dangerous_system_calls_are_not_allowed(name: str) -> None:
    assert rules(seccomp.profile("SCMP_ARCH_X86_64"), name) == []


def test_only_the_native_architecture_is_allowed() -> None:
    assert seccomp.profile("SCMP_ARCH_X86_64")["architectures"] == ["SCMP_ARCH_X86_64"]
    assert seccomp.native_architecture("x86_64") == "SCMP_ARCH_X86_64"
    assert seccomp.native_architecture("aarch64") == "SCMP_ARCH_AARCH64"
    with pytest.raises(ValueError, match="riscv64"):
        seccomp.native_architecture("riscv64")


def test_clone_is_allowed_only_without_namespace_flags_and_clone3_says_enosys() -> None:
    profile = seccomp.profile("SCMP_ARCH_X86_64")
    [clone] = rules(profile, "clone")
    assert clone["args"] == [
        {"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    ]
    [clone3] = rules(profile, "clone3")
    assert (clone3["action"], clone3["errnoRet"]) == ("SCMP_ACT_ERRNO", errno.ENOSYS)


def test_sockets_are_allowed_except_vsock() -> None:
    [socket] = rules(seccomp.profile("SCMP_ARCH_X86_64"), "socket")
    assert socket["args"] == [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]


def test_what_programs_need_is_allowed() -> None:
    [allowed] = [r for r in seccomp.profile("SCMP_ARCH_X86_64")["syscalls"] if len(r["names"]) > 50]
    for name in (
        "read",
        "write",
        "execve",
        "epoll_wait",
        "accept4",
        "futex",
        "arch_prctl",
        "wait4",
    ):
        assert name in allowed["names"]
    arm = seccomp.profile("SCMP_ARCH_AARCH64")
    assert "arch_prctl" not in arm["syscalls"][0]["names"]
