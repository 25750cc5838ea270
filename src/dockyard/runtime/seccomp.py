"""The seccomp profile of every dyno: deny by default (``EPERM``), allow a list of system calls.

The list is Docker's default profile (moby ``profiles/seccomp/default.json``) for a container that holds no
capabilities, made stricter:

- only the host's native architecture is allowed, so the 32-bit entry points (``int 0x80``) of an x86-64
  host are refused instead of being a second, less tested way in;
- ``io_uring_*`` (a frequent source of kernel bugs), ``ptrace``, ``process_vm_readv``/``writev`` and
  ``userfaultfd`` are refused;
- everything Docker allows only with a capability (``mount``, ``unshare``, ``setns``, ``bpf``, ``keyctl``,
  ``add_key``, ``kexec_*``, module loading, ``reboot``, clock setting, ``perf_event_open``…) is refused, since
  dynos hold none;
- ``clone`` is allowed only without namespace flags, and ``clone3`` answers ``ENOSYS`` so that the C library
  falls back to ``clone`` (whose flags a filter can see);
- ``socket`` is refused for ``AF_VSOCK`` (40); raw sockets fail anyway for want of ``CAP_NET_RAW``.

The profile is data for the OCI ``linux.seccomp`` field; runc compiles it with libseccomp.
"""

from __future__ import annotations

import errno
import platform
from typing import Any

CLONE_NAMESPACE_FLAGS = 0x7E020000
"""``CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET``
(Docker's mask, 2114060288)."""
AF_VSOCK = 40

ALLOWED: tuple[str, ...] = (
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir",
    "chmod", "chown", "clock_getres", "clock_gettime", "clock_nanosleep", "close", "close_range",
    "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd", "eventfd2", "execve",
    "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchownat", "fcntl", "fdatasync",
    "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstatfs",
    "fsync", "ftruncate", "futex", "futex_waitv", "futimesat", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "geteuid", "getgid", "getgroups", "getitimer", "getpeername", "getpgid",
    "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresuid", "getrlimit",
    "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid",
    "gettimeofday", "getuid", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "ioprio_get", "ioprio_set", "io_setup", "io_submit", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lgetxattr", "link", "linkat",
    "listen", "listxattr", "llistxattr", "lremovexattr", "lseek", "lsetxattr", "lstat", "madvise",
    "membarrier", "memfd_create", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2",
    "mlockall", "mmap", "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedsend", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "open", "openat", "openat2",
    "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "poll", "ppoll", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
    "process_mrelease", "pselect6", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
    "readlinkat", "readv", "recvfrom", "recvmmsg", "recvmsg", "remap_file_pages", "removexattr",
    "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction",
    "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
    "seccomp", "select", "semctl", "semget", "semop", "semtimedop", "sendfile", "sendmmsg", "sendmsg",
    "sendto", "setfsgid", "setfsuid", "setgid", "setgroups", "setitimer", "setpgid", "setpriority",
    "setregid", "setresgid", "setresuid", "setreuid", "setrlimit", "set_robust_list", "setsid",
    "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setxattr", "shmat", "shmctl",
    "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "socketpair", "splice",
    "stat", "statfs", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo",
    "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_settime", "timerfd_create", "timerfd_gettime", "timerfd_settime", "times", "tkill",
    "truncate", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat", "utimes", "vfork",
    "vmsplice", "wait4", "waitid", "write", "writev",
)  # fmt: skip
"""System calls allowed without conditions (64-bit names; libseccomp ignores names an architecture lacks)."""

ARCH_ALLOWED: dict[str, tuple[str, ...]] = {
    "SCMP_ARCH_X86_64": ("arch_prctl", "modify_ldt"),
    "SCMP_ARCH_AARCH64": (),
}

DENIED_NOTABLY: tuple[str, ...] = (
    "mount", "umount2", "unshare", "setns", "keyctl", "add_key", "request_key", "bpf", "ptrace",
    "process_vm_readv", "process_vm_writev", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "userfaultfd", "perf_event_open", "kexec_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "pivot_root", "chroot", "open_by_handle_at", "settimeofday",
    "clock_settime", "acct", "quotactl", "syslog", "fsopen", "fsmount", "move_mount", "open_tree",
)  # fmt: skip
"""Not in the allow-list on purpose (the default action refuses them); listed for tests and docs."""

PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
"""``personality`` values Docker allows: PER_LINUX, UNAME26, ADDR_NO_RANDOMIZE… and the query ``0xffffffff``."""


def native_architecture(machine: str | None = None) -> str:
    """The libseccomp name of this host's architecture."""
    name = (machine or platform.machine()).lower()
    if name in ("x86_64", "amd64"):
        return "SCMP_ARCH_X86_64"
    if name in ("aarch64", "arm64"):
        return "SCMP_ARCH_AARCH64"
    raise ValueError(f"no seccomp profile for the {name} architecture")


def profile(architecture: str | None = None) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` object for dynos on this host (or on ``architecture``)."""
    arch = architecture or native_architecture()
    syscalls: list[dict[str, Any]] = [
        {
            "names": sorted(set(ALLOWED) | set(ARCH_ALLOWED.get(arch, ()))),
            "action": "SCMP_ACT_ALLOW",
        },
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [
                {
                    "index": 0,
                    "value": CLONE_NAMESPACE_FLAGS,
                    "valueTwo": 0,
                    "op": "SCMP_CMP_MASKED_EQ",
                }
            ],
        },
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}],
        },
    ]
    syscalls.extend(
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}],
        }
        for value in PERSONALITIES
    )
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": [arch],
        "syscalls": syscalls,
    }
