"""Which other web sites may use the service through a visitor's browser: any page may read a
job's status, chart and the listings (Access-Control-Allow-Origin: *), none may change a job.

CORS alone cannot protect the writes: create, update, fail and delete answer GET (the MWA API),
and a browser sends a GET from an <img> or a form on any page without asking, whatever the
answer's headers; CORS only hides the answer. What a browser does add is who asked: every
current one sends Sec-Fetch-Site, and older ones an Origin header on a cross-origin POST or
fetch. A write that carries either, naming another site, is refused before anything is read
or stored. curl, requests, the client and the MWA scripts send neither, and are not affected."""

from __future__ import annotations

from urllib.parse import urlsplit

import falcon

# What a cross-origin page may ask for. No header beyond the CORS-safelisted ones is allowed,
# so a GET that needs no preflight is all a page can send.
READ_METHODS = "GET, HEAD"
# Browsers keep a preflight's answer at most this long (Chromium: 2 h) anyway.
PREFLIGHT_MAX_AGE = "7200"
# Sec-Fetch-Site values that mean the request did not come from a page of another site:
# "same-origin" (our own pages), "none" (typed into the address bar, a bookmark).
OWN_REQUEST = frozenset({"same-origin", "none"})


class CrossOrigin:
    """Falcon middleware: CORS headers on `shared` resources for reads only, and a 403 for a
    request to a `writes` resource that a browser says came from another site."""

    def __init__(self, shared: list, writes: list, public_url: str = "") -> None:
        self.shared = {id(resource) for resource in shared}
        self.writes = {id(resource) for resource in writes}
        parts = urlsplit(public_url)
        self.public_origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else None

    def process_resource(self, req: falcon.Request, resp, resource, params) -> None:
        if id(resource) in self.writes:
            sender = self.foreign_sender(req)
            if sender:
                raise falcon.HTTPForbidden(
                    title="Cross-site request refused",
                    description=f"this request changes a job and comes from a page of another "
                    f"site ({sender}): only scripts and the address bar may create, update, fail "
                    "or delete a job, never another web site's page",
                )
        if _preflight(req) and not self.may_read(req, resource):
            raise falcon.HTTPForbidden(
                title="Cross-origin request refused",
                description="other sites' pages may only read (GET or HEAD, with no extra "
                "header) the status, chart and job listings; nothing else",
            )

    def process_response(self, req: falcon.Request, resp, resource, req_succeeded) -> None:
        if not self.may_read(req, resource):
            return
        # With or without an Origin: a cache in front then keeps one answer for both, and
        # needs no Vary.
        resp.set_header("Access-Control-Allow-Origin", "*")
        if _preflight(req):
            resp.set_header("Access-Control-Allow-Methods", READ_METHODS)
            resp.set_header("Access-Control-Max-Age", PREFLIGHT_MAX_AGE)

    def may_read(self, req: falcon.Request, resource) -> bool:
        if resource is None or id(resource) not in self.shared:
            return False
        if _preflight(req):
            asked = (req.get_header("Access-Control-Request-Method") or "").upper()
            return asked in ("GET", "HEAD") and not req.get_header("Access-Control-Request-Headers")
        return req.method in ("GET", "HEAD")

    def foreign_sender(self, req: falcon.Request) -> str | None:
        """What says that another site's page sent this request, or None."""
        site = (req.get_header("Sec-Fetch-Site") or "").lower()
        if site:
            return None if site in OWN_REQUEST else f"Sec-Fetch-Site: {site}"
        origin = req.get_header("Origin")
        if origin is None:  # not a browser, or a browser that says nothing (an old one's GET)
            return None
        own = {f"{req.scheme}://{req.get_header('Host') or req.netloc}", self.public_origin}
        return None if origin in own else f"Origin: {origin}"


def _preflight(req: falcon.Request) -> bool:
    return req.method == "OPTIONS" and req.get_header("Access-Control-Request-Method") is not None
