"""DDP under Hydra: the processes Lightning starts run the parent's *job*, not its command line.

Lightning's ``ddp`` strategy (``_SubprocessScriptLauncher``) starts ranks 1..n-1 by running the
script again: ``lightning.fabric.strategies.launchers.subprocess_script._hydra_subprocess_cmd``
repeats ``sys.argv`` and appends ``hydra.run.dir=<run dir> hydra.output_subdir=null``.  In a
multirun (``train.py -m model.hash_bits=16,32 trainer=ddp``) ``sys.argv`` holds ``-m`` and the
whole sweep, so every child launched the *sweep* again: each job ran twice over, in new sweep
directories (Lightning issue #11300, Hydra issue #2070, lightning-hydra-template #393, whose
advice is ``ddp_spawn``).

The fix sketched in Hydra #2070 -- the child runs exactly the parent's job -- done here without
touching Lightning: before ``fit`` the parent (:func:`export_job`) puts its job into the
environment, which Lightning's ``Popen`` hands to the children: the job's concrete overrides
(``HydraConfig.get().overrides.task``, e.g. ``model.hash_bits=16``, never a sweep list), its
output directory and the parent's pid.  A child recognises itself (``LOCAL_RANK`` set by
Lightning, and the recorded pid is its parent's) and, before ``@hydra.main`` parses anything,
:func:`ddp_child_argv` rewrites ``sys.argv`` to a single run of that job in the same directory
(``hydra.run.dir=<job dir>``, ``hydra.output_subdir=null`` so that ``.hydra/`` stays the
parent's).  ``ddp_spawn`` (no re-run script) and SLURM / ``srun`` launches (every task runs the
job itself, no ``LOCAL_RANK`` child of ours) are untouched.

A sweep runs its jobs one after the other in the same parent process, and Lightning leaves the
first job's DDP state behind (``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_PORT``, ... in
``os.environ``, and the initialised process group whose rank 1 has exited): the second job then
took its processes for "created externally", started no child and hung / failed on the first
broadcast.  :func:`job_scope` puts the environment back and destroys the process group it
created when the job ends.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

#: environment variable that carries the parent's job to its DDP children
JOB_ENV = "SPEECHRET_DDP_JOB"
#: what Lightning's DDP launch writes into the parent's environment
#: (``_SubprocessScriptLauncher._call_children_scripts``, ``_init_dist_connection``)
DIST_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "GLOBAL_RANK", "RANK")


@contextmanager
def job_scope(output_dir: str) -> Iterator[dict[str, Any] | None]:
    """Around one training job's ``fit``/``test``: :func:`export_job` for the DDP children; at the
    end the distributed environment variables are put back as they were and a process group
    initialised during the job is destroyed, so that the next job of a sweep in this process
    starts its own DDP group."""
    import torch.distributed as dist

    before = {k: os.environ.get(k) for k in DIST_ENV}
    had_group = dist.is_available() and dist.is_initialized()
    job = export_job(output_dir)
    try:
        yield job
    finally:
        clear_job()
        if not had_group and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _quote(value: str) -> str:
    """A Hydra override value as a quoted string (``"..."``; quotes and backslashes escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def export_job(output_dir: str, overrides: Sequence[str] | None = None) -> dict[str, Any] | None:
    """In the parent of a Hydra run: record the job (``overrides``, default the running job's
    ``HydraConfig.get().overrides.task``, and ``output_dir``) in ``$SPEECHRET_DDP_JOB`` for the
    DDP children Lightning may start.  Without Hydra (compose API, tests) nothing is recorded
    and None is returned."""
    if overrides is None:
        try:
            from hydra.core.hydra_config import HydraConfig

            if not HydraConfig.initialized():
                return None
            overrides = list(HydraConfig.get().overrides.task)
        except Exception:  # noqa: BLE001 - no Hydra app around: nothing for a child to re-run
            return None
    job = {"overrides": [str(o) for o in overrides], "output_dir": str(output_dir), "pid": os.getpid()}
    os.environ[JOB_ENV] = json.dumps(job)
    return job


def clear_job() -> None:
    """Forget the exported job (after ``fit``/``test``: the next job of a sequential sweep exports its own)."""
    os.environ.pop(JOB_ENV, None)


def ddp_child_argv(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None,
                   ppid: int | None = None) -> list[str] | None:
    """The command line a DDP child must run instead of ``argv``, or None when this process is
    not a DDP child of a job exported by :func:`export_job` (then nothing changes).

    The child's argv: the script, the job's overrides (no ``-m``/``--multirun``, no sweep lists),
    then ``hydra.run.dir=<the job's output dir>``, ``hydra.output_subdir=null`` and
    ``hydra.job.name=train_ddp_process_<LOCAL_RANK>`` (the child's log file name, as Lightning
    names it)."""
    env = os.environ if environ is None else environ
    argv = list(sys.argv if argv is None else argv)
    raw, local_rank = env.get(JOB_ENV), env.get("LOCAL_RANK")
    if not raw or local_rank in (None, "", "0"):
        return None
    try:
        job = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"${JOB_ENV} is not the JSON that speechret.utils.ddp.export_job writes: {exc}") from exc
    if int(job.get("pid", -1)) != (os.getppid() if ppid is None else ppid):
        return None  # inherited from some other process (e.g. a shell that ran a job): not our child
    return [argv[0], *job["overrides"], f"hydra.run.dir={_quote(job['output_dir'])}", "hydra.output_subdir=null",
            f"hydra.job.name=train_ddp_process_{local_rank}"]


def relaunch_as_ddp_child() -> bool:
    """Call before ``@hydra.main`` parses the command line (top-level ``train.py``): in a DDP
    child started by Lightning for an exported job, replace ``sys.argv`` by :func:`ddp_child_argv`.
    Returns whether it did."""
    new = ddp_child_argv()
    if new is None:
        return False
    sys.argv[:] = new
    return True
