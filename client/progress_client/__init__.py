"""Worker-side client for the progress-bar web service (MWA Progress Bar API compatible).

    job = Job.create("http://progress.example:8080", desc="calibrate obs 1234")
    print(job.show_url)                     # pass job.jobid to the workers
    ...
    with Job(url, jobid).worker("node7", total=len(files)) as w:   # in each worker
        for f in w.track(files):
            process(f)

Reporting never raises and never blocks on the network; see Worker.
"""

from ._http import JobNotFound, ProgressError, RequestRejected, ServiceUnavailable
from ._sender import flush, queued
from .job import Job, Worker, new_jobid

__all__ = [
    "Job",
    "Worker",
    "new_jobid",
    "flush",
    "queued",
    "ProgressError",
    "ServiceUnavailable",
    "RequestRejected",
    "JobNotFound",
]
__version__ = "0.1.0"
