"""The status page served at ``/``: one self-contained HTML file (no CDN, no build step).

It polls ``/status`` every ``REFRESH_MS`` and draws equity vs buy-and-hold and
the premium with the last decisions marked (inline SVG), the position, the risk
state, the model version and the learning status.  With a token, open
``http://host:port/#token=<token>``: the token stays in the URL fragment (never
sent to the server in the request line, never in its logs) and goes out as an
``Authorization`` header.  Every figure carries its raw value in ``data-value``
so tests (and scripts) can read the page as a person sees it.
"""

REFRESH_MS = 2000

STATUS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kpremia live</title>
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
 svg{width:100%;height:220px;display:block}
 table{border-collapse:collapse;width:100%;font-size:13px}td,th{padding:3px 6px;border-bottom:1px solid #eee;text-align:left}
 .legend span{margin-right:14px}.eq{color:#2563eb}.bh{color:#9ca3af}.buy{color:#16a34a}.sell{color:#dc2626}
 .two{display:grid;grid-template-columns:1fr 1fr;gap:14px}
 #error{color:#e3342f}
</style></head>
<body>
<header><h1>kpremia live</h1>
 <span>model <b id="model-version" data-value="">-</b></span>
 <span>risk <span id="risk-state" class="badge UNKNOWN" data-value="">-</span></span>
 <span class="muted">last bar <span id="last-bar" data-value="">-</span></span>
 <span class="muted">policy <span id="policy">-</span></span>
 <span class="muted" id="updated"></span><span id="error"></span>
</header>
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
  <div class="legend"><span class="eq">&#9473; equity</span><span class="bh">&#9473; buy &amp; hold</span></div>
  <svg id="chart-equity" viewBox="0 0 1000 220" preserveAspectRatio="none"></svg></div>
 <div class="panel"><h2>Premium with the last decisions</h2>
  <div class="legend"><span>&#9473; premium</span><span class="buy">&#9650; buy</span><span class="sell">&#9660; sell</span></div>
  <svg id="chart-premium" viewBox="0 0 1000 220" preserveAspectRatio="none"></svg></div>
 <div class="two">
  <div class="panel"><h2>Last decisions</h2><table id="recent"><thead><tr><th>bar</th><th>action</th>
   <th>target</th><th>order</th><th>reason</th></tr></thead><tbody></tbody></table></div>
  <div class="panel"><h2>Model events</h2><table id="events"><thead><tr><th>time</th><th>event</th>
   <th>version</th></tr></thead><tbody></tbody></table></div>
 </div>
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
function scales(n, values) {
  let lo = Math.min(...values), hi = Math.max(...values); if (!(hi > lo)) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  return [i => 40 + (n > 1 ? i / (n - 1) : 0.5) * 950, v => 210 - (v - lo) / (hi - lo) * 200, lo, hi]; }
function axis(lo, hi, fmt) { return `<text x="2" y="16" font-size="11" fill="#667">${fmt(hi)}</text>
  <text x="2" y="214" font-size="11" fill="#667">${fmt(lo)}</text>`; }
function draw(s) {
  const t = s.series.time, n = t.length, eq = document.getElementById("chart-equity"),
        pr = document.getElementById("chart-premium");
  if (!n) { eq.innerHTML = pr.innerHTML = '<text x="20" y="110" fill="#667">no bars yet</text>'; return; }
  let [xs, ys, lo, hi] = scales(n, s.series.equity.concat(s.series.buy_hold));
  eq.innerHTML = axis(lo, hi, krw) + line(s.series.buy_hold.map((v, i) => [i, v]), xs, ys, "#9ca3af", 1.5)
    + line(s.series.equity.map((v, i) => [i, v]), xs, ys, "#2563eb", 2);
  [xs, ys, lo, hi] = scales(n, s.series.premium);
  const index = new Map(t.map((x, i) => [x, i]));
  const marks = s.trades.filter(d => index.has(d.time)).map(d => {
    const x = xs(index.get(d.time)), y = ys(d.premium), buy = d.side === "buy";
    return `<path class="decision ${d.side}" d="M${x - 5},${buy ? y + 9 : y - 9} L${x + 5},${buy ? y + 9 : y - 9}
      L${x},${buy ? y + 1 : y - 1} Z" fill="${buy ? "#16a34a" : "#dc2626"}"><title>${d.time} ${d.side}</title></path>`;
  }).join("");
  pr.innerHTML = axis(lo, hi, pct) + line(s.series.premium.map((v, i) => [i, v]), xs, ys, "#1d2330", 1.5) + marks; }
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
      (drift != null ? ` · drift ${drift.toFixed(4)}` + (L.enabled ? ` / ${L.max_distance}` : "") : "") +
      (L.challenger_version ? ` · challenger ${L.challenger_version}` : ""));
  document.querySelector("#recent tbody").innerHTML = (s.recent || []).map(r => `<tr><td>${r.time}</td>
    <td>${r.action ?? "-"}</td><td>${r.target_weight == null ? "-" : r.target_weight.toFixed(3)}</td>
    <td>${r.order ?? ""}</td><td>${r.reason}</td></tr>`).join("");
  document.querySelector("#events tbody").innerHTML = (s.model_events || []).map(e => `<tr><td>${e.time}</td>
    <td>${e.source} ${e.kind}</td><td>${e.version ?? ""}</td></tr>`).join("");
  draw(s);
  document.getElementById("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
  document.body.dataset.loaded = "1"; }
async function refresh() {
  try {
    const r = await fetch("status", {headers: token ? {Authorization: "Bearer " + token} : {}});
    if (!r.ok) throw new Error((await r.json()).detail || r.status);
    render(await r.json()); document.getElementById("error").textContent = "";
  } catch (e) { document.getElementById("error").textContent = " " + e.message; }
  setTimeout(refresh, REFRESH_MS); }
refresh();
</script></body></html>
""".replace("__REFRESH_MS__", str(REFRESH_MS))
