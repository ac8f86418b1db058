"""Launcher conventions: which worker this process is, read from what mpirun, srun, a SLURM
array or a multiprocessing pool put in its environment."""

from __future__ import annotations

import multiprocessing
import os
import socket
from typing import Mapping

ENV_WORKID = "PROGRESS_WORKID"
# Ranks set by mpirun/mpiexec, first match wins: Open MPI, MPICH/Intel MPI/hydra.
MPI_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK")
# Step ids at or above this are SLURM's special steps (batch script, extern, interactive), not
# an srun step; SLURM leaves SLURM_STEP_ID out of the batch script's environment anyway.
_SLURM_SPECIAL_STEPS = 0xFFFFFFF0


def default_workid(environ: Mapping[str, str] | None = None) -> str:
    """This process's worker id: $PROGRESS_WORKID, else its rank, else host:pid.

    An MPI rank is used as it is ("3"), and so is SLURM_PROCID inside an srun step. A SLURM
    array task is its task id ("7"), or task id and rank ("7.2") when mpirun or srun runs
    several ranks inside it. SLURM_PROCID=0 is also in the plain batch script's environment, so
    outside an srun step it names nothing: a shell loop there gets host:pid per process. A
    process of a multiprocessing pool inherits its parent's rank, so it adds its pid ("3:4711")
    to stay distinct."""
    env = os.environ if environ is None else environ
    explicit = env.get(ENV_WORKID, "").strip()
    if explicit:
        return explicit
    rank = _rank(env)
    if rank is None:
        return f"{socket.gethostname().split('.')[0] or 'host'}:{os.getpid()}"
    if multiprocessing.parent_process() is not None:
        return f"{rank}:{os.getpid()}"
    return rank


def _rank(env: Mapping[str, str]) -> str | None:
    mpi_rank = _first(env, MPI_RANK_VARIABLES)
    srun_rank = env.get("SLURM_PROCID", "").strip() if _in_srun_step(env) else ""
    array_task = env.get("SLURM_ARRAY_TASK_ID", "").strip()
    if array_task:
        if mpi_rank:
            return f"{array_task}.{mpi_rank}"
        if srun_rank and _int(env.get("SLURM_NTASKS")) > 1:
            return f"{array_task}.{srun_rank}"
        return array_task
    return mpi_rank or srun_rank or None


def _in_srun_step(env: Mapping[str, str]) -> bool:
    """True inside a step that srun started, where SLURM_PROCID is the task's rank."""
    step = env.get("SLURM_STEP_ID", env.get("SLURM_STEPID", "")).strip()
    try:
        return 0 <= int(step) < _SLURM_SPECIAL_STEPS
    except ValueError:
        return False


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return ""


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
