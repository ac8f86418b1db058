"""Cache-Control for every answer that does not set its own. The rule: what changes with every
update or changes a job is never stored by a browser or proxy (no-store: status, listings,
pages, every write's answer, errors, probes); charts are kept but revalidated by their ETag
(no-cache, api/resources.py _send_png); static files by version for a year
(api/pages.py StaticFiles); the API description, which changes only with a deploy, 5 minutes."""

from __future__ import annotations

import falcon

DESCRIPTION_MAX_AGE = 300


class CacheControl:
    """Falcon middleware; `stable` are the resources whose GET may be kept DESCRIPTION_MAX_AGE."""

    def __init__(self, stable: list) -> None:
        self.stable = {id(resource) for resource in stable}

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, ok) -> None:
        if resp.get_header("Cache-Control") is not None:
            return
        if ok and id(resource) in self.stable and req.method in ("GET", "HEAD"):
            resp.cache_control = [f"max-age={DESCRIPTION_MAX_AGE}"]
        else:
            resp.cache_control = ["no-store"]
