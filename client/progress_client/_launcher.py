"""Launcher conventions: which worker this process is, read from what mpirun, srun, a SLURM
array or a multiprocessing pool put in its environment."""

from __future__ import annotations

import multiprocessing
import os
import socket
from typing import Mapping

ENV_WORKID = "PROGRESS_WORKID"
# Ranks of one parallel run, first match wins: Open MPI, MPICH/Intel MPI/hydra, srun.
RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID")


def default_workid(environ: Mapping[str, str] | None = None) -> str:
    """This process's worker id: $PROGRESS_WORKID, else its rank, else host:pid.

    A rank is used as it is ("3"). A SLURM array task is its task id ("7"), or task id and rank
    ("7.2") when srun runs several tasks inside it: SLURM sets SLURM_PROCID=0 in every array
    task, so the rank alone would make all tasks one worker. A process of a multiprocessing pool
    inherits its parent's rank, so it adds its pid ("3:4711") to stay distinct."""
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
    array_task = env.get("SLURM_ARRAY_TASK_ID", "").strip()
    if array_task:
        several = _int(env.get("SLURM_NTASKS")) > 1 and env.get("SLURM_PROCID", "").strip()
        return f"{array_task}.{env['SLURM_PROCID'].strip()}" if several else array_task
    for name in RANK_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
