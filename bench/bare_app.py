"""The ceiling reference: a Falcon + waitress app that only parses the update parameters and
answers 202, served like the real web process (same server, same thread count)."""

from __future__ import annotations

import sys

import falcon
import waitress


class BareUpdate:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = (
            req.get_param("jobid", required=True),
            req.get_param("workid", required=True),
            req.get_param_as_float("current", required=True),
            req.get_param_as_float("total", required=True),
        )
        resp.status = falcon.HTTP_202
        resp.media = {"accepted": bool(params)}


def main() -> None:
    app = falcon.App()
    app.add_route("/progress/update", BareUpdate())
    waitress.serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=int(sys.argv[2]))


if __name__ == "__main__":
    main()
