"""The Celery side: ingest, render and maintenance tasks, and the Redis store they share."""
