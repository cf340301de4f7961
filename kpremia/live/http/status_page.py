"""The status page served at ``/``: one self-contained HTML file (no CDN, no build step).

It polls ``/status`` every ``REFRESH_MS`` and draws equity vs buy-and-hold (y axis
in KRW) and the premium (in %) with the last decisions, the refused orders and the
moments the session halted marked (inline SVG, time axis in UTC with full dates),
the position, the risk state with its cause, the time it was entered and what to do
about it (a banner while not ACTIVE), the last risk events, the last decisions the policy made,
the model version, the learning status and the control API's request counts.  With a token, open
``http://host:port/#token=<token>``: the token stays in the URL fragment (never
sent to the server in the request line, never in its logs) and goes out as an
``Authorization`` header; without it (a 401) the page says how to open it that way.
The learner's drift is the distance of the learned weights from the checkpoint's,
shown against ``live.learn.max_distance`` (an update beyond it is pulled back onto it).  Every figure carries its raw value in ``data-value``
so tests (and scripts) can read the page as a person sees it.
"""

REFRESH_MS = 2000

STATUS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kpremia live</title>
<link rel="icon" href="data:,">
<style>
 body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
 header{display:flex;gap:18px;align-items:center;padding:12px 20px;background:#1d2330;color:#fff}
 header h1{font-size:17px;margin:0 12px 0 0} header .muted{color:#aab}
 .badge{padding:2px 10px;border-radius:10px;font-weight:600}
 .ACTIVE{background:#1f9d55}.REDUCING{background:#d69e2e}.HALTED{background:#e3342f}.UNKNOWN{background:#777}
 main{padding:16px 20px;display:grid;gap:14px}
 .cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px}
 .card{background:#fff;border-radius:8px;padding:10px 12px;box-shadow:0 1px 2px #0001}
 .card .k{color:#667;font-size:12px}.card .v{font-size:19px;font-weight:600;font-variant-numeric:tabular-nums}
 .panel{background:#fff;border-radius:8px;padding:10px 12px;box-shadow:0 1px 2px #0001}
 .panel h2{font-size:14px;margin:0 0 6px}
 svg{width:100%;height:240px;display:block}
 table{border-collapse:collapse;width:100%;font-size:13px}td,th{padding:3px 6px;border-bottom:1px solid #eee;text-align:left}
 .legend span{margin-right:14px}.eq{color:#2563eb}.bh{color:#9ca3af}.buy{color:#16a34a}.sell{color:#dc2626}
 .two{display:grid;grid-template-columns:1fr 1fr;gap:14px}
 #error{color:#e3342f}
 .banner{padding:10px 20px;color:#fff;font-weight:600}.banner.HALTED{background:#b91c1c}
 .banner.REDUCING{background:#b7791f}.banner .muted{font-weight:400;color:#fde8e8}
 td.reason{max-width:520px;overflow-wrap:anywhere}
 .banner .todo{display:block;font-weight:400;margin-top:3px}
 #token-help{background:#fff7e6;border-bottom:1px solid #f0d9a8;padding:10px 20px}
 .halt{color:#b91c1c}.refused{color:#7c3aed}
</style></head>
<body>
<header><h1>kpremia live</h1>
 <span>model <b id="model-version" data-value="">-</b></span>
 <span>risk <span id="risk-state" class="badge UNKNOWN" data-value="">-</span></span>
 <span class="muted">API <span id="api-requests" data-value="">-</span></span>
 <span class="muted">last bar <span id="last-bar" data-value="">-</span></span>
 <span class="muted">policy <span id="policy">-</span></span>
 <span class="muted" id="updated"></span><span id="error"></span>
</header>
<div id="token-help" hidden>This session's control API wants its token. Open the page as
 <code>http://&lt;host&gt;:&lt;port&gt;/#token=&lt;the token&gt;</code> (the value of <code>KPREMIA_API_TOKEN</code>, or of
 the variable <code>live.api.token_env</code> names): the part after <code>#</code> stays in your browser, is never
 sent in a request line or written to a log, and goes out only as an <code>Authorization</code> header.</div>
<div id="risk-banner" class="banner" hidden><span id="risk-title"></span> since
 <span id="risk-since" data-value="">-</span> <span class="muted">(bar <span id="risk-since-bar">-</span>)</span>:
 <span id="risk-reason" data-value="">-</span>
 <span class="todo">What to do: <span id="risk-todo" data-value="">-</span></span></div>
<main>
 <div class="cards">
  <div class="card"><div class="k">equity KRW</div><div class="v" id="equity" data-value="">-</div></div>
  <div class="card"><div class="k">buy &amp; hold KRW</div><div class="v" id="buy-hold" data-value="">-</div></div>
  <div class="card"><div class="k">return / buy &amp; hold</div><div class="v"><span id="return" data-value="">-</span>
   / <span id="buy-hold-return" data-value="">-</span></div></div>
  <div class="card"><div class="k">position USDT</div><div class="v" id="position" data-value="">-</div></div>
  <div class="card"><div class="k">cash KRW</div><div class="v" id="cash" data-value="">-</div></div>
  <div class="card"><div class="k">premium</div><div class="v" id="premium" data-value="">-</div></div>
  <div class="card"><div class="k">bars / orders</div><div class="v"><span id="bars" data-value="">-</span>
   / <span id="orders" data-value="">-</span></div></div>
  <div class="card"><div class="k">learning</div><div class="v" id="learning" data-value="" style="font-size:14px">-</div></div>
 </div>
 <div class="panel"><h2>Equity vs buy-and-hold</h2>
  <div class="legend"><span class="eq">&#9473; equity</span><span class="bh">&#9473; buy &amp; hold</span>
   <span class="halt">&#9475; halted</span></div>
  <svg id="chart-equity" viewBox="0 0 1000 240" preserveAspectRatio="none"></svg></div>
 <div class="panel"><h2>Premium with the last decisions</h2>
  <div class="legend"><span>&#9473; premium</span><span class="buy">&#9650; buy</span><span class="sell">&#9660; sell</span>
   <span class="refused">&#10005; refused order</span><span class="halt">&#9475; halted</span></div>
  <svg id="chart-premium" viewBox="0 0 1000 240" preserveAspectRatio="none"></svg></div>
 <div class="two">
  <div class="panel"><h2>Last decisions</h2><table id="recent"><thead><tr><th>bar (UTC)</th><th>action</th>
   <th>target</th><th>order</th><th>reason</th></tr></thead><tbody></tbody></table></div>
  <div class="panel"><h2>Model events</h2><table id="events"><thead><tr><th>time</th><th>event</th>
   <th>version</th></tr></thead><tbody></tbody></table></div>
 </div>
 <div class="panel"><h2>Risk events</h2><table id="risk-events"><thead><tr><th>time (UTC)</th><th>bar</th>
  <th>event</th><th>state</th><th>reason</th></tr></thead><tbody></tbody></table></div>
</main>
<script>
const REFRESH_MS = __REFRESH_MS__;
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const krw = v => v == null ? "-" : Math.round(v).toLocaleString("en-US");
const pct = v => v == null ? "-" : (v * 100).toFixed(2) + " %";
function put(id, value, text) { const e = document.getElementById(id);
  e.dataset.value = value == null ? "" : String(value); e.textContent = text; }
function line(points, xs, ys, color, width) {
  return `<polyline fill="none" stroke="${color}" stroke-width="${width}" vector-effect="non-scaling-stroke"
    points="${points.map(([x, y]) => xs(x).toFixed(1) + "," + ys(y).toFixed(1)).join(" ")}"/>`; }
const X0 = 70, X1 = 990, Y0 = 10, Y1 = 200;
function scales(n, values) {
  let lo = Math.min(...values), hi = Math.max(...values); if (!(hi > lo)) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  return [i => X0 + (n > 1 ? i / (n - 1) : 0.5) * (X1 - X0), v => Y1 - (v - lo) / (hi - lo) * (Y1 - Y0), lo, hi]; }
function yaxis(lo, hi, fmt, unit) { return `<text x="2" y="${Y0 + 8}" font-size="11" fill="#667">${fmt(hi)}</text>
  <text x="2" y="${Y1}" font-size="11" fill="#667">${fmt(lo)}</text>
  <text class="y-unit" x="2" y="${(Y0 + Y1) / 2}" font-size="11" font-weight="600" fill="#667">${unit}</text>
  <line x1="${X0}" y1="${Y0}" x2="${X0}" y2="${Y1}" stroke="#ccd" vector-effect="non-scaling-stroke"/>`; }
function stamp(iso, withDay) {  // "2024-02-05T09:45:00+00:00" -> "2024-02-05 09:45" (UTC, as journaled)
  const t = iso.replace(" ", "T"); return (withDay ? t.slice(0, 10) + " " : "") + t.slice(11, 16); }
const REFUSED = new Set(["halted", "reducing", "max_position", "max_order", "gate"]);
function riskMarks(s, t, xs, ys, withRefused) {  // a red line where the session halted; an x per refused order
  const index = new Map(t.map((x, i) => [x, i])), out = [];
  for (const e of s.risk_events || []) {
    if (!e.bar_time || !index.has(e.bar_time)) continue;
    const x = xs(index.get(e.bar_time));
    if (e.after === "HALTED" && e.before !== "HALTED" || e.after === "HALTED" && !REFUSED.has(e.kind)) {
      out.push(`<line class="halt-mark" x1="${x}" y1="${Y0}" x2="${x}" y2="${Y1}" stroke="#b91c1c" stroke-width="2"
        vector-effect="non-scaling-stroke"><title>${esc(e.kind)}: halted at bar ${esc(e.bar_time)}</title></line>`);
    } else if (withRefused && REFUSED.has(e.kind)) {
      out.push(`<text class="refused-mark" x="${x}" y="${Y0 + 14}" font-size="13" fill="#7c3aed" text-anchor="middle"
        >&#10005;<title>${esc(e.kind)}${e.count > 1 ? " ×" + e.count : ""}: ${esc(e.reason)}</title></text>`);
    } }
  return out.join(""); }
function xaxis(times, xs) {  // a time axis: up to 6 ticks at bar times, UTC, the day shown where it changes
  const n = times.length, k = Math.min(6, n), out = [`<line x1="${X0}" y1="${Y1}" x2="${X1}" y2="${Y1}"
    stroke="#ccd" vector-effect="non-scaling-stroke"/>`];
  let day = null;
  for (let j = 0; j < k; j++) {
    const i = k > 1 ? Math.round(j * (n - 1) / (k - 1)) : 0, x = xs(i), d = times[i].slice(0, 10);
    out.push(`<line class="tick" x1="${x}" y1="${Y1}" x2="${x}" y2="${Y1 + 5}" stroke="#99a"
      vector-effect="non-scaling-stroke"/><text class="tick-label" x="${x}" y="${Y1 + 20}" font-size="11" fill="#667"
      text-anchor="${j === 0 ? "start" : j === k - 1 ? "end" : "middle"}">${stamp(times[i], d !== day)}</text>`);
    day = d; }
  out.push(`<text x="${X1}" y="${Y1 + 36}" font-size="11" fill="#99a" text-anchor="end">bar time (UTC)</text>`);
  return out.join(""); }
function draw(s) {
  const t = s.series.time, n = t.length, eq = document.getElementById("chart-equity"),
        pr = document.getElementById("chart-premium");
  if (!n) { eq.innerHTML = pr.innerHTML = '<text x="20" y="110" fill="#667">no bars yet</text>'; return; }
  let [xs, ys, lo, hi] = scales(n, s.series.equity.concat(s.series.buy_hold));
  eq.innerHTML = yaxis(lo, hi, krw, "KRW") + xaxis(t, xs)
    + line(s.series.buy_hold.map((v, i) => [i, v]), xs, ys, "#9ca3af", 1.5)
    + line(s.series.equity.map((v, i) => [i, v]), xs, ys, "#2563eb", 2) + riskMarks(s, t, xs, ys, false);
  [xs, ys, lo, hi] = scales(n, s.series.premium);
  const index = new Map(t.map((x, i) => [x, i]));
  const marks = s.trades.filter(d => index.has(d.time)).map(d => {
    const x = xs(index.get(d.time)), y = ys(d.premium), buy = d.side === "buy";
    return `<path class="decision ${d.side}" d="M${x - 5},${buy ? y + 9 : y - 9} L${x + 5},${buy ? y + 9 : y - 9}
      L${x},${buy ? y + 1 : y - 1} Z" fill="${buy ? "#16a34a" : "#dc2626"}"><title>${d.time} ${d.side}</title></path>`;
  }).join("");
  pr.innerHTML = yaxis(lo, hi, pct, "%") + xaxis(t, xs)
    + line(s.series.premium.map((v, i) => [i, v]), xs, ys, "#1d2330", 1.5) + marks + riskMarks(s, t, xs, ys, true); }
const esc = v => String(v ?? "").replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
function renderRisk(s) {
  const r = s.risk || {}, c = r.cause, banner = document.getElementById("risk-banner");
  banner.hidden = !(r.state && r.state !== "ACTIVE");
  banner.className = "banner " + (r.state || "");
  document.getElementById("risk-title").textContent = (r.state || "") + (c ? " (" + c.kind + ")" : "");
  put("risk-since", c && c.since, c ? c.since.replace("T", " ").slice(0, 19) + " UTC" : "-");
  document.getElementById("risk-since-bar").textContent = c && c.since_bar_time ? stamp(c.since_bar_time, true) : "-";
  put("risk-reason", c && c.reason, c ? c.reason : "-");
  put("risk-todo", c && c.todo, c && c.todo ? c.todo : "-");
  document.querySelector("#risk-events tbody").innerHTML = (s.risk_events || []).map(e => `<tr class="risk-event">
    <td>${esc(e.time.replace("T", " ").slice(0, 19))}</td><td>${e.bar_time ? (e.count > 1 && e.first_bar_time ? stamp(e.first_bar_time, true) + " – " : "")
    + stamp(e.bar_time, true) : "-"}</td>
    <td>${esc(e.kind)}${e.count > 1 ? " ×" + e.count : ""}</td><td>${esc(e.before === e.after ? e.after : e.before + " → " + e.after)}</td>
    <td class="reason">${esc(e.reason)}</td></tr>`).join(""); }
function render(s) {
  put("model-version", s.model_version, s.model_version || "-");
  const risk = document.getElementById("risk-state"); put("risk-state", s.risk_state, s.risk_state || "no bars");
  risk.className = "badge " + (s.risk_state || "UNKNOWN");
  put("last-bar", s.last_bar_time, s.last_bar_time || "-");
  document.getElementById("policy").textContent = s.policy || "-";
  put("equity", s.equity_krw, krw(s.equity_krw)); put("buy-hold", s.buy_hold_krw, krw(s.buy_hold_krw));
  put("return", s.return, pct(s.return)); put("buy-hold-return", s.buy_hold_return, pct(s.buy_hold_return));
  put("position", s.position_usdt, s.position_usdt == null ? "-" : s.position_usdt.toFixed(4));
  put("cash", s.cash_krw, krw(s.cash_krw)); put("premium", s.premium, pct(s.premium));
  put("bars", s.bars, String(s.bars)); put("orders", s.orders, s.orders == null ? "-" : String(s.orders));
  const L = s.learning || {}, J = s.learning_journal || {updates: 0};
  const drift = L.enabled && L.updates ? L.anchor_distance : J.anchor_distance;
  put("learning", J.updates, (L.enabled ? L.mode : J.updates ? "journal" : "off") + ` · ${J.updates} updates` +
      (drift != null ? ` · drift from the checkpoint ${drift.toFixed(4)}` +
        (L.enabled ? ` of ${L.max_distance} allowed` : "") : "") +
      (L.challenger_version ? ` · challenger ${L.challenger_version}` : ""));
  document.getElementById("learning").title = "drift: L2 distance of the learned weights from the checkpoint's " +
    "(the anchor); an update that goes past live.learn.max_distance is pulled back onto it";
  document.querySelector("#recent tbody").innerHTML = (s.recent || []).map(r => `<tr class="decision-row">
    <td>${stamp(r.time, true)}</td><td>${esc(r.action ?? "-")}</td>
    <td>${r.target_weight == null ? "-" : r.target_weight.toFixed(3)}</td>
    <td>${esc(r.order ? r.order + " " + (r.order_status || "") : "")}</td><td>${esc(r.reason)}</td></tr>`).join("");
  const q = s.requests || {};
  const refused = (q.unauthenticated || 0) + (q.too_large || 0) + (q.rejected || 0);
  put("api-requests", refused, q.accepted == null ? "-" : `${q.accepted} ok · ${refused} refused`);
  renderRisk(s);
  document.querySelector("#events tbody").innerHTML = (s.model_events || []).map(e => `<tr><td>${esc(e.time)}</td>
    <td>${e.source} ${e.kind}</td><td>${e.version ?? ""}</td></tr>`).join("");
  draw(s);
  document.getElementById("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
  document.body.dataset.loaded = "1"; }
async function refresh() {
  try {
    const r = await fetch("status", {headers: token ? {Authorization: "Bearer " + token} : {}});
    document.getElementById("token-help").hidden = r.status !== 401;
    if (!r.ok) throw new Error((await r.json()).detail || r.status);
    render(await r.json()); document.getElementById("error").textContent = "";
  } catch (e) { document.getElementById("error").textContent = " " + e.message; }
  setTimeout(refresh, REFRESH_MS); }
refresh();
</script></body></html>
""".replace("__REFRESH_MS__", str(REFRESH_MS))
