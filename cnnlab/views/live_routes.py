"""The HTTP route of the live feed (:mod:`cnnlab.views.live_feed`), for ``st.App`` in serve.py.

Starlette runs a plain (non-async) endpoint in its thread pool, so the store reads here never
block the server's event loop (the websockets every page runs on).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cnnlab.views.live_feed import FEED_PATH, LiveFeeds, mark_mounted


def routes(feeds: LiveFeeds | None = None, base_path: str = "") -> list[BaseRoute]:
    """``GET {base_path}/api/runs/{run_id}/live``, served from one :class:`LiveFeeds`."""
    served = LiveFeeds() if feeds is None else feeds

    def live(request: Request) -> Response:
        query = request.query_params
        reply = served.reply(
            request.path_params["run_id"], query.get("smoothing"), query.get("since")
        )
        return Response(
            reply.body,
            status_code=reply.status,
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    base = base_path.strip("/")
    mark_mounted()
    return [Route((f"/{base}" if base else "") + FEED_PATH, live, methods=["GET"])]
