"""HTML pages. Every user string is escaped for its context: html.escape in markup, and JSON with
<, >, & escaped inside the script block."""

from __future__ import annotations

import html
import json


def _script_json(value) -> str:
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def show_page(jobid: str, interval: float, urls: dict[str, str]) -> str:
    config = _script_json({"jobid": jobid, "interval": interval, **urls})
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Progress: {html.escape(jobid)}</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 1rem; color: #222; }}
 #chart {{ max-width: 100%; height: auto; display: block; }}
 #notice {{ color: #a00; font-weight: bold; }}
</style></head>
<body>
<h1 id="title">{html.escape(jobid)}</h1>
<p id="notice" hidden></p>
<img id="chart" alt="progress chart" src="{html.escape(urls["render"])}">
<script>
const config = {config};
const chart = document.getElementById("chart");
const notice = document.getElementById("notice");
let etag = null;
async function refresh() {{
  try {{
    const headers = etag ? {{"If-None-Match": etag}} : {{}};
    const resp = await fetch(config.render, {{headers, cache: "no-store"}});
    if (resp.status === 304) return;
    if (resp.status === 404) {{
      notice.textContent = "This job no longer exists (it expired or was deleted).";
      notice.hidden = false;
      return;
    }}
    if (!resp.ok) return;
    etag = resp.headers.get("ETag");
    const url = URL.createObjectURL(await resp.blob());
    const next = new Image();
    next.onload = () => {{
      const old = chart.src;
      chart.src = url;
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    }};
    next.src = url;
    notice.hidden = true;
  }} catch (err) {{ /* the server is restarting: try again next time */ }}
}}
setInterval(refresh, config.interval * 1000);
</script>
</body></html>
"""
