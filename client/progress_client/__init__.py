"""Worker-side client for the progress-bar web service (MWA Progress Bar API compatible).

    job = Job.create("http://progress.example:8080", desc="calibrate obs 1234")
    print(job.show_url)                     # pass job.jobid to the workers
    ...
    with Job(url, jobid).worker("node7", total=len(files)) as w:   # in each worker
        for f in w.track(files):
            process(f)

Reporting never raises and never blocks on the network; see Worker. `Job.from_env()` and
`job.worker()` follow launcher conventions (mpirun, srun, SLURM arrays, multiprocessing), and
`from progress_client import tqdm` is tqdm that also reports (extra `progress-client[tqdm]`).
"""

from typing import Any

from ._http import JobFailed, JobNotFound, ProgressError, RequestRejected, ServiceUnavailable
from ._launcher import default_workid
from ._sender import flush, queued
from .job import Job, Worker, new_jobid

__all__ = [
    "Job",
    "Worker",
    "new_jobid",
    "default_workid",
    "flush",
    "queued",
    "ProgressError",
    "ServiceUnavailable",
    "RequestRejected",
    "JobNotFound",
    "JobFailed",
]  # tqdm and trange are left out: `import *` must work without the optional tqdm
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    # tqdm is an optional extra: import it only when its names are used.
    if name in ("tqdm", "trange"):
        from . import _tqdm

        return getattr(_tqdm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
