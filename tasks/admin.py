"""Operator commands, run against the service's Redis (REDIS_URL, as the service reads it):

  python -m tasks.admin delete --address 1.2.3.4      list the jobs created from that address
  python -m tasks.admin delete --prefix test:         list the jobs whose id starts so
  ... --yes                                           delete them, whatever their secrets

Jobs are found in bounded steps (ZSCAN) and deleted one script each, as expiry deletes them, so
Redis is never held for long whatever the number of jobs; a pause between steps leaves room for
the service's own calls.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator

from tasks.runtime import connect
from tasks.settings import Settings
from tasks.store import Store, jobid_of

STEP = 200  # jobs looked at per ZSCAN step
PAUSE = 0.01  # seconds between steps


def matching_jobs(store: Store, address: str | None, prefix: str | None) -> Iterator[str]:
    """The tags of the jobs created from `address` and whose id starts with `prefix` (None: any)."""
    cursor = 0
    while True:
        cursor, jobs = store.jobs_page(cursor, STEP)
        for tag, owner in jobs:
            if address is not None and owner != address:
                continue
            if prefix is not None and not jobid_of(tag).startswith(prefix):
                continue
            yield tag
        if cursor == 0:
            return
        time.sleep(PAUSE)


def delete(store: Store, address: str | None, prefix: str | None, really: bool, out) -> int:
    """List (or with `really`, delete) the matching jobs; returns how many matched."""
    # Listed in full before any is deleted: a ZSCAN may return a member twice, and deleting
    # while scanning would make that likelier.
    tags = sorted(set(matching_jobs(store, address, prefix)))
    for tag in tags:
        print(jobid_of(tag), file=out)
    if not really:
        print(f"{len(tags)} jobs match; run again with --yes to delete them", file=out)
        return len(tags)
    deleted = 0
    for n, tag in enumerate(tags, start=1):
        deleted += store.remove_job(tag)
        if n % STEP == 0:
            time.sleep(PAUSE)
    print(f"{deleted} jobs deleted", file=out)
    return len(tags)


def main(argv: list[str] | None = None, out=sys.stdout) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.admin", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    remove = commands.add_parser("delete", help="delete jobs by creating address or id prefix")
    remove.add_argument("--address", help="the client address the jobs were created from")
    remove.add_argument("--prefix", help="the start of the jobs' ids")
    remove.add_argument("--yes", action="store_true", help="delete (without it: list only)")
    args = parser.parse_args(argv)
    if args.address is None and args.prefix is None:
        parser.error("give --address or --prefix (or both)")
    if args.prefix == "":
        parser.error("--prefix must not be empty (it would match every job)")
    store = Store(connect(Settings.from_env()))
    delete(store, args.address, args.prefix, args.yes, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
