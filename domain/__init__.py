"""What every part of the service shares: worker states, rows and snapshots of jobs, their
summaries, accept outcomes, colours and the wording of numbers. No Redis, no HTTP, no Celery."""
