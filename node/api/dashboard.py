"""The live dashboard of the public listener: one page, the snapshot it shows, and its event stream.

    GET /                       the page: HTML with its script, styles and first snapshot inline (no other request
                                is needed to paint it; nothing is loaded from the network)
    GET /v1/dashboard           the snapshot (JSON): price, price history, validators, models, open proposals, blocks
    GET /v1/dashboard/events    Server-Sent Events: the snapshot at once, then again after each committed block

What the snapshot holds and how it is pushed (once per commit, shared by every stream, bounded queues)
is `snapshot`. Streams are capped in total and per client ([api] max_event_streams,
max_event_streams_per_client: 503 too_many_streams over a cap), and each holds one of the client's
connections ([api] max_connections_per_client). Opening a stream is one request for the rate limit;
the open stream is not rate limited. A comment line every `HEARTBEAT_S` keeps idle proxies from
closing a stream while the chain is halted and notices a client that left. The page allows only its
own inline script and style and connections to this node (Content-Security-Policy).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time

from aiohttp import web

from .limits import GatedRequestHandler
from .openapi import STR, Route
from .snapshot import SNAPSHOT_SCHEMA
from .state import get_state

HEARTBEAT_S = 15.0  # an SSE comment line this often on an idle stream
RETRY_MS = 2000  # how long an EventSource waits before reconnecting (the `retry:` field)
EVENT_STREAM = "text/event-stream"


# =============================================================================================
# handlers
# =============================================================================================
async def get_snapshot(request: web.Request) -> web.Response:
    return web.Response(body=get_state(request).dashboard.get_body(), content_type="application/json")


async def get_events(request: web.Request) -> web.StreamResponse:
    hub = get_state(request).dashboard
    stream = hub.add(request.remote or "", request.transport)
    if isinstance(request.protocol, GatedRequestHandler):
        request.protocol.on_lost.append(stream.close)  # a client that leaves frees its slot at once
    response = web.StreamResponse(
        headers={"Content-Type": EVENT_STREAM, "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    try:
        hub.refresh()
        await response.prepare(request)
        await response.write(b"retry: %d\n\n%s" % (RETRY_MS, hub.frame))
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT_S):
                    frame = await stream.queue.get()
            except TimeoutError:
                frame = b": keep-alive\n\n"
            if frame is None or stream.dropped:
                break
            started = time.perf_counter()
            await response.write(frame)
            hub.busy_s += time.perf_counter() - started
        await response.write_eof()
    except ConnectionError:
        pass  # the client left, or was dropped as too slow: nothing more to send
    finally:
        hub.remove(stream)
    return response


async def get_page(request: web.Request) -> web.Response:
    body = get_state(request).dashboard.get_body()
    data = body.replace(b"<", b"\\u003c")  # no "</script>" inside the data block (model ids are anyone's text)
    return web.Response(
        body=PAGE_HEAD + data + PAGE_TAIL,
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


# =============================================================================================
# the page
# =============================================================================================
STYLE = """
:root{--fg:#1c2430;--mute:#687385;--line:#e3e7ee;--card:#fff;--bg:#f4f6f9;--accent:#2563eb;--bad:#b42318;--ok:#067647}
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;
color:var(--fg);background:var(--bg)}header{display:flex;gap:16px;align-items:baseline;padding:12px 20px;
background:#111827;color:#f9fafb}header h1{font-size:18px;margin:0}header span{color:#cbd5e1}
#live{margin-left:auto;font-weight:600}#live.on{color:#4ade80}#live.off{color:#fca5a5}
main{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:16px;padding:16px 20px}
@media (max-width:900px){main{grid-template-columns:minmax(0,1fr)}}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px;min-width:0}
section h2{font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:var(--mute);margin:0 0 8px}
#price{font-size:34px;font-weight:700;font-variant-numeric:tabular-nums}.unit{color:var(--mute)}
.kv{display:flex;gap:18px;flex-wrap:wrap;color:var(--mute);margin-top:6px}.kv b{color:var(--fg)}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid var(--line);white-space:nowrap}
th{color:var(--mute);font-weight:600}td.n,th.n{text-align:right}.mono{font-family:ui-monospace,monospace}
.wrap{overflow-x:auto}td.text,th.text{white-space:normal;overflow-wrap:anywhere;font-size:12px}.empty{color:var(--mute);font-style:italic}.bad{color:var(--bad)}.ok{color:var(--ok)}
svg{width:100%;height:auto;display:block}.wide{grid-column:1/-1}
"""

SCRIPT = """
"use strict";
const $ = (id) => document.getElementById(id);
const fmt = (s) => (s === null || s === undefined ? "\\u2014" : String(s).replace(/\\B(?=(\\d{3})+(?!\\d))/g, ","));
const short = (a) => (a && a.length > 16 ? a.slice(0, 10) + "\\u2026" + a.slice(-4) : a || "");
function cell(tr, value, cls) {
  const td = document.createElement("td");
  td.textContent = value;
  if (cls) td.className = cls;
  tr.append(td);
}
function fill(id, items, columns, emptyText) {
  const body = $(id);
  const rows = items.map((item) => {
    const tr = document.createElement("tr");
    for (const [get, cls] of columns) cell(tr, get(item), cls);
    return tr;
  });
  if (!rows.length) {
    const tr = document.createElement("tr");
    cell(tr, emptyText, "empty");
    tr.firstChild.colSpan = columns.length;
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}
const NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, textValue) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (textValue !== undefined) el.textContent = textValue;
  return el;
}
function chart(history) {
  const box = $("chart");
  const W = 640, H = 220, L = 90, R = 12, T = 12, B = 28;
  const parts = [];
  const pts = history.filter((r) => r.price !== null).map((r) => [r.epoch, Number(r.price)]);
  if (!pts.length) {
    parts.push(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#687385" }, "no epoch has ended yet"));
  } else {
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    const pad = (y1 - y0) * 0.1 || Math.max(1, y1 * 0.05);
    y0 -= pad; y1 += pad;
    const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
    for (let i = 0; i <= 4; i++) {
      const v = y0 + ((y1 - y0) * i) / 4, y = sy(v);
      parts.push(svg("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: "#e3e7ee" }));
      parts.push(svg("text", { x: L - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#687385" },
        fmt(Math.round(v))));
    }
    parts.push(svg("text", { x: L, y: H - 8, "font-size": 11, fill: "#687385" }, "epoch " + x0));
    parts.push(svg("text", { x: W - R, y: H - 8, "text-anchor": "end", "font-size": 11, fill: "#687385" },
      "epoch " + x1));
    parts.push(svg("text", { x: 4, y: T + 4, "font-size": 11, fill: "#687385" }, "ngonka"));
    const d = pts.map((p, i) => (i ? "L" : "M") + sx(p[0]).toFixed(1) + " " + sy(p[1]).toFixed(1)).join(" ");
    parts.push(svg("path", { d, fill: "none", stroke: "#2563eb", "stroke-width": 2 }));
    const last = pts[pts.length - 1];
    parts.push(svg("circle", { cx: sx(last[0]), cy: sy(last[1]), r: 4, fill: "#2563eb" }));
  }
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "price per epoch" });
  root.append(...parts);
  box.replaceChildren(root);
}
function render(s) {
  $("chain").textContent = s.chain_id;
  $("moniker").textContent = s.moniker;
  $("height").textContent = fmt(s.height);
  $("epoch").textContent = fmt(s.epoch);
  $("price").textContent = fmt(s.price.unit_of_compute_price);
  $("price-epoch").textContent = fmt(s.price.epoch);
  $("confidence").textContent = s.price.confidence === null ? "not reported" : String(s.price.confidence);
  $("status").textContent = s.price.status === null ? "not reported" : s.price.status;
  const last = s.history.length ? s.history[s.history.length - 1] : null;
  $("voters").textContent = last ? `${last.voters} of ${last.voters + last.non_voters}` : "\u2014";
  const voted = last && last.min_vote !== null;
  $("range").textContent = voted ? `${fmt(last.min_vote)} \u2013 ${fmt(last.max_vote)}` : "\u2014";
  chart(s.history);
  fill("validators", s.validators, [
    [(v) => short(v.address), "mono"], [(v) => fmt(v.power), "n"], [(v) => fmt(v.stake), "n"],
    [(v) => fmt(v.last_vote), "n"], [(v) => fmt(v.last_vote_epoch), "n"],
    [(v) => (v.vote_distance_bps === null ? "\\u2014" : (v.vote_distance_bps / 100).toFixed(2) + " %"), "n"],
    [(v) => (v.jailed ? "jailed" : "active"), ""],
  ], "no validators");
  fill("models", s.models, [
    [(m) => m.id, "mono"], [(m) => fmt(m.units_of_compute_per_token), "n"], [(m) => fmt(m.price_per_token), "n"],
  ], "no active models");
  fill("proposals", s.proposals, [
    [(p) => "#" + p.id, ""], [(p) => p.kind, ""], [(p) => p.summary, "mono text"],
    [(p) => p.status.replace("_", " "), ""],
    [(p) => fmt(p.total_deposit), "n"],
    [(p) => (p.tally ? `${fmt(p.tally.yes)} / ${fmt(p.tally.no)} / ${fmt(p.tally.abstain)} / ` +
      `${fmt(p.tally.no_with_veto)}` : "\\u2014"), "n"],
  ], "no open proposals");
  fill("blocks", s.blocks, [
    [(b) => fmt(b.height), "n"], [(b) => new Date(b.time_ms).toISOString().replace("T", " ").slice(0, 23), "mono"],
    [(b) => short(b.proposer), "mono"], [(b) => fmt(b.txs), "n"], [(b) => fmt(b.round), "n"],
    [(b) => short(b.block_id), "mono"],
  ], "no block applied since this node started");
}
render(JSON.parse($("snapshot").textContent));
const live = $("live");
const events = new EventSource("/v1/dashboard/events");
events.addEventListener("snapshot", (e) => render(JSON.parse(e.data)));
events.onopen = () => { live.textContent = "\\u25cf live"; live.className = "on"; };
events.onerror = () => { live.textContent = "\\u25cb reconnecting"; live.className = "off"; };
"""

BODY = """<header><h1>uoc</h1><span>chain <b id="chain"></b></span><span>node <b id="moniker"></b></span>
<span>height <b id="height"></b></span><span>epoch <b id="epoch"></b></span>
<span id="live" class="off">&#9675; connecting</span>
</header><main>
<section><h2>Unit-of-compute price</h2><div><span id="price"></span> <span class="unit">ngonka / unit</span></div>
<div class="kv"><span>in force in epoch <b id="price-epoch"></b></span><span>confidence <b id="confidence"></b></span>
<span>status <b id="status"></b></span></div>
<div class="kv"><span>last epoch's votes <b id="voters"></b></span><span>their range <b id="range"></b></span></div>
</section>
<section><h2>Price per epoch</h2><div id="chart"></div></section>
<section class="wide"><h2>Validators</h2><div class="wrap"><table><thead><tr><th>address</th><th class="n">power</th>
<th class="n">stake</th><th class="n">last vote</th><th class="n">vote epoch</th><th class="n">from median</th>
<th>state</th></tr></thead><tbody id="validators"></tbody></table></div></section>
<section><h2>Models</h2><div class="wrap"><table><thead><tr><th>model</th><th class="n">units / token</th>
<th class="n">ngonka / token</th></tr></thead><tbody id="models"></tbody></table></div></section>
<section><h2>Open proposals</h2><div class="wrap"><table><thead><tr><th>id</th><th>kind</th>
<th>content</th><th>status</th>
<th class="n">deposit</th><th class="n text">tally by power: yes / no / abstain / veto</th></tr></thead>
<tbody id="proposals"></tbody>
</table></div></section>
<section class="wide"><h2>Latest blocks</h2><div class="wrap"><table><thead><tr><th class="n">height</th>
<th>time (UTC)</th>
<th>proposer</th><th class="n">txs</th><th class="n">round</th><th>block id</th></tr></thead><tbody id="blocks"></tbody>
</table></div></section>
</main>
"""


def compute_csp_hash(source: str) -> str:
    """The CSP source expression allowing one inline script or style."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


CSP = (  # only this page's own inline script and style run; it may connect to this node only
    f"default-src 'none'; script-src {compute_csp_hash(SCRIPT)}; style-src {compute_csp_hash(STYLE)}; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEAD = (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>uoc dashboard</title>\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<link rel="icon" href="/docs/favicon-32x32.png">\n'
    f"<style>{STYLE}</style></head><body>\n{BODY}"
    '<script type="application/json" id="snapshot">'
).encode()
PAGE_TAIL = f"</script>\n<script>{SCRIPT}</script>\n</body></html>\n".encode()


# =============================================================================================
# routes
# =============================================================================================
PAGE = Route(
    "public",
    "GET",
    "/",
    get_page,
    "The live dashboard (HTML): price, price per epoch, validators, models, open proposals, latest blocks; it "
    "updates itself from GET /v1/dashboard/events",
    {200: STR},
    media="text/html",
)
SNAPSHOT = Route(
    "public",
    "GET",
    "/v1/dashboard",
    get_snapshot,
    "What the dashboard shows at the committed block (bounded lists; prices, votes and stakes as decimal strings)",
    {200: SNAPSHOT_SCHEMA},
)
EVENTS = Route(
    "public",
    "GET",
    "/v1/dashboard/events",
    get_events,
    "Server-Sent Events: `event: snapshot` (data: GET /v1/dashboard's JSON, id: the height) at once and after each "
    "committed block; a comment line every 15 s. A client too far behind is dropped; 503 too_many_streams over "
    "[api] max_event_streams or max_event_streams_per_client",
    {200: STR},
    media=EVENT_STREAM,
)
DASHBOARD_ROUTES = (PAGE, SNAPSHOT, EVENTS)

__all__ = [
    "CSP",
    "DASHBOARD_ROUTES",
    "EVENTS",
    "PAGE",
    "SNAPSHOT",
]
