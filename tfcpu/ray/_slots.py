"""Node-local slot claims: two actors on one machine never take the same cores.

Every actor computes the same `InstancePlan` from its machine's topology, then
claims one instance ("slot") of it by taking an exclusive ``flock`` on
``<lock_dir>/<plan key>/slot-<index>.lock``. ``flock`` locks belong to the open file, so:

* a slot held by a live process cannot be taken by any other process (nor by a second open
  in the same process);
* the kernel drops the lock when the holder exits, however it exits (crash, ``ray.kill``,
  OOM kill), so a restarted actor finds its slot free again without any clean-up code.

The plan key is a hash of the plan's CPU sets, so pipelines that use the same plan on one
machine share the slots (and never overlap), while a different plan (another
``cores_per_instance``) has its own slots. The directory is on the local file system
(``tempfile.gettempdir()`` by default), i.e. per machine: two Ray nodes started on one
machine without separate ``/tmp`` share CPUs and therefore, correctly, share slots.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tfcpu.errors import PlanError

if TYPE_CHECKING:
    from tfcpu.plan import Instance, InstancePlan

__all__ = ["LOCK_DIR_ENV", "SlotClaim", "claim_slot", "default_lock_dir", "plan_key"]

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "TFCPU_RAY_LOCK_DIR"


def default_lock_dir() -> Path:
    """``$TFCPU_RAY_LOCK_DIR`` or ``<tmp>/tfcpu-ray-slots``."""
    env = os.environ.get(LOCK_DIR_ENV)
    return Path(env) if env else Path(tempfile.gettempdir()) / "tfcpu-ray-slots"


def plan_key(plan: InstancePlan) -> str:
    """A short stable name for the plan's CPU sets, e.g. ``k1-2x-3f9a0c1d2e``."""
    text = ";".join(",".join(str(c) for c in inst.cpus) for inst in plan.instances)
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:10]
    return f"k{plan.cores_per_instance}-{len(plan.instances)}x-{digest}"


@dataclass
class SlotClaim:
    """A held slot: the instance and the open, locked file. `release()` (or exit) frees it."""

    instance: Instance
    path: Path
    fd: int | None = field(default=None, repr=False)

    @property
    def held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def claim_slot(
    plan: InstancePlan,
    *,
    lock_dir: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
    poll: float = 0.2,
) -> SlotClaim:
    """Claim the first free instance of ``plan`` on this machine, waiting up to ``timeout`` seconds.

    Raises:
        PlanError: the plan has no instances, or every slot stayed taken for ``timeout``
            seconds (more actors on this machine than the plan has instances).
    """
    if not plan.instances:
        raise PlanError("the instance plan is empty", hint="use a smaller cores_per_instance")
    base = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    directory = base / plan_key(plan)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlanError(
            "cannot create the slot lock directory",
            where=str(directory),
            why=str(exc),
            hint=f"set {LOCK_DIR_ENV} to a writable local directory",
        ) from exc
    deadline = time.monotonic() + max(0.0, timeout)
    waited = False
    while True:
        for inst in plan.instances:
            path = directory / f"slot-{inst.index}.lock"
            fd = _try_lock(path)
            if fd is not None:
                if waited:
                    log.info("slot %d (CPUs %s) claimed after waiting", inst.index, inst.cpulist)
                return SlotClaim(inst, path, fd)
        if time.monotonic() >= deadline:
            raise PlanError(
                f"all {len(plan.instances)} instance slots on this machine are taken",
                where=str(directory),
                why=f"no slot became free within {timeout:g} s; more actors run here than the plan has instances",
                hint="size the actor pool with tfcpu.ray.survey() / predict(), or reserve num_cpus per actor "
                "so Ray places at most one actor per slot",
            )
        if not waited:
            log.info("all %d slots taken in %s; waiting up to %g s", len(plan.instances), directory, timeout)
            waited = True
        time.sleep(poll)
