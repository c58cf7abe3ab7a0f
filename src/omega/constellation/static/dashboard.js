// Omega constellation dashboard: polls the JSON the server samples and draws it with
// Plotly (served by the app from the plotly package). Every number drawn comes from
// /api/omega/dashboard/series and /api/omega/dashboard/state.
"use strict";

const POLL_MS = 2000;
const COLORS = {
  blue: "#1f77b4", orange: "#ff7f0e", green: "#2ca02c", red: "#d62728",
  purple: "#9467bd", brown: "#8c564b", teal: "#17becf", olive: "#bcbd22", grey: "#7f7f7f",
};
const CONFIG = { displayModeBar: false, responsive: true };
let refreshes = 0;

function base(extra) {
  return Object.assign({
    margin: { l: 46, r: 46, t: 8, b: 26 },
    font: { size: 10, family: "system-ui, DejaVu Sans, sans-serif" },
    paper_bgcolor: "#fff", plot_bgcolor: "#fff",
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 10 } },
    showlegend: true,
  }, extra);
}

function timeAxis() {
  return { type: "date", tickformat: "%H:%M:%S", nticks: 6, gridcolor: "#eef1f4" };
}

function line(samples, key, name, color, extra) {
  return Object.assign({
    x: samples.map((s) => new Date(s.t * 1000)),
    y: samples.map((s) => s[key]),
    name: name, type: "scatter", mode: "lines", line: { color: color, width: 2 },
  }, extra || {});
}

function draw(id, traces, layout) {
  Plotly.react(document.getElementById(id), traces, layout, CONFIG);
}

function empty(id, text) {
  const el = document.getElementById(id);
  Plotly.purge(el);
  el.innerHTML = '<div class="empty">' + text + "</div>";
}

function fmtInt(v) { return v == null ? "–" : Math.round(v).toLocaleString("en"); }

function setText(id, text) { document.getElementById(id).textContent = text; }

function drawSeries(series) {
  const s = series.samples;
  draw("panel-devices", [
    line(s, "devices", "registered", COLORS.blue, { fill: "tozeroy", fillcolor: "rgba(31,119,180,0.12)" }),
    line(s, "active", "active (" + series.active_window_s / 60 + " min)", COLORS.orange),
  ], base({ xaxis: timeAxis(), yaxis: { rangemode: "tozero", gridcolor: "#eef1f4" } }));
  draw("panel-syncs", [
    line(s, "syncs_per_s", "syncs/s", COLORS.blue, { fill: "tozeroy", fillcolor: "rgba(31,119,180,0.12)" }),
    line(s, "p50_ms", "p50 ms", COLORS.green, { yaxis: "y2", connectgaps: false }),
    line(s, "p95_ms", "p95 ms", COLORS.red, { yaxis: "y2", connectgaps: false }),
  ], base({
    xaxis: timeAxis(),
    yaxis: { title: { text: "syncs/s" }, rangemode: "tozero", gridcolor: "#eef1f4" },
    yaxis2: { title: { text: "ms" }, overlaying: "y", side: "right", rangemode: "tozero" },
  }));
  draw("panel-bytes", [
    line(s, "push_bytes_per_s", "push B/s", COLORS.purple, { fill: "tozeroy", fillcolor: "rgba(148,103,189,0.15)" }),
    line(s, "pull_bytes_per_s", "pull B/s", COLORS.teal, { fill: "tozeroy", fillcolor: "rgba(23,190,207,0.15)" }),
  ], base({ xaxis: timeAxis(), yaxis: { rangemode: "tozero", gridcolor: "#eef1f4" } }));
  draw("panel-privacy", [
    line(s, "epsilon_per_s", "ε/s (local-DP reports)", COLORS.brown, { fill: "tozeroy", fillcolor: "rgba(140,86,75,0.15)" }),
    { type: "bar", x: s.map((p) => new Date(p.t * 1000)), y: s.map((p) => p.reports_per_s),
      name: "reports/s", yaxis: "y2", marker: { color: "rgba(188,189,34,0.6)" } },
  ], base({
    xaxis: timeAxis(),
    yaxis: { title: { text: "ε/s" }, rangemode: "tozero", gridcolor: "#eef1f4" },
    yaxis2: { title: { text: "reports/s" }, overlaying: "y", side: "right", rangemode: "tozero" },
  }));
  draw("panel-errors", [
    line(s, "errors_per_s", "5xx/s", COLORS.red),
    line(s, "rate_limited_per_s", "429 rate-limited/s", COLORS.orange),
    line(s, "rejected_per_s", "other 4xx/s", COLORS.grey),
  ], base({ xaxis: timeAxis(), yaxis: { rangemode: "tozero", gridcolor: "#eef1f4" } }));
}

function drawHeatmap(map) {
  const rows = map.contexts.map((_, i) => i).filter((i) => map.support[i].some((n) => n > 0));
  if (!rows.length) { empty("panel-heatmap", "no release yet: nothing to map"); return; }
  const few = map.cells.length <= 24;
  draw("panel-heatmap", [{
    type: "heatmap", x: map.cells.map((c) => "c" + c), y: rows.map((i) => map.contexts[i]),
    z: rows.map((i) => map.success[i]), text: rows.map((i) => map.support[i].map((n) => n ? String(n) : "")),
    texttemplate: few ? "%{text}" : "", textfont: { size: 9 },
    hovertemplate: "cell %{x}, %{y}<br>success %{z:.2f}<br>support %{text}<extra></extra>",
    colorscale: [[0, "#d73027"], [0.5, "#fee08b"], [1, "#1a9850"]], zmin: 0, zmax: 1,
    xgap: 1, ygap: 1,
    colorbar: { title: { text: "success", side: "right" }, thickness: 10, len: 1 },
  }], base({ showlegend: false, margin: { l: 110, r: 10, t: 4, b: 26 }, xaxis: { type: "category" } }));
}

function drawConsensus(c) {
  if (c.clusters == null) { empty("panel-consensus", "no round has run on this server yet"); return; }
  const bars = [
    ["released", c.released, COLORS.green],
    ["withheld: < " + c.min_viewers + " viewers", c.too_few_viewers, COLORS.orange],
    ["withheld: agreement < " + c.min_agreement, c.disputed, COLORS.red],
    ["dropped: low quality", c.low_quality, COLORS.grey],
    ["dropped: invalid", c.invalid, COLORS.brown],
    ["votes trimmed " + (c.fusion === "trimmed_mean" ? c.trim * 100 + "%/end" : "(" + c.fusion + ")"), c.trimmed_votes, COLORS.purple],
  ].reverse();
  draw("panel-consensus", [{
    type: "bar", orientation: "h", y: bars.map((b) => b[0]), x: bars.map((b) => b[1]),
    marker: { color: bars.map((b) => b[2]) }, text: bars.map((b) => String(b[1])),
    textposition: "auto", cliponaxis: false,
  }], base({
    showlegend: false, margin: { l: 160, r: 16, t: 4, b: 30 },
    xaxis: {
      title: { text: c.clusters + " clusters, round of v" + c.round_version, font: { size: 10 } },
      rangemode: "tozero", gridcolor: "#eef1f4",
    },
  }));
}

function drawTrends(trends, rounds) {
  if (!trends.length && !rounds.length) { empty("panel-trends", "no trends: no round has run yet"); return; }
  // Left: the current release's trends by region; right: trends released per round.
  draw("panel-trends", [
    { type: "bar", x: trends.map((t) => t.region), y: trends.map((t) => t.top_score),
      name: "top score by region", marker: { color: COLORS.teal },
      text: trends.map((t) => t.trends + " cells"), textposition: "auto",
      hovertemplate: "%{x}: top score %{y:.2f}, %{text}<extra></extra>" },
    { type: "scatter", mode: "lines+markers", xaxis: "x2", yaxis: "y2",
      x: rounds.map((r, i) => "#" + (i + 1)), y: rounds.map((r) => r.trends),
      name: "trends per round", line: { color: COLORS.purple, width: 2 }, marker: { size: 7 } },
  ], base({
    xaxis: { domain: [0, 0.56], type: "category" },
    yaxis: { title: { text: "top score" }, rangemode: "tozero", gridcolor: "#eef1f4" },
    xaxis2: { domain: [0.7, 1], anchor: "y2", type: "category", title: { text: "round" } },
    yaxis2: { anchor: "x2", rangemode: "tozero", gridcolor: "#eef1f4", title: { text: "trends" } },
  }));
}

function drawRounds(rounds) {
  if (!rounds.length) { empty("panel-rounds", "no round has run on this server yet"); return; }
  const x = rounds.map((r, i) => "#" + (i + 1) + " " + new Date(r.at * 1000).toLocaleTimeString("en-GB"));
  draw("panel-rounds", [
    { type: "bar", x: x, y: rounds.map((r) => r.seconds), name: "duration s",
      marker: { color: COLORS.blue }, text: rounds.map((r) => "v" + r.version + " " + r.status),
      textposition: "inside", width: rounds.length < 4 ? 0.35 : undefined,
      hovertemplate: "%{text}: %{y:.3f} s<extra></extra>" },
    { type: "scatter", mode: "lines+markers", x: x, y: rounds.map((r) => r.patterns_per_s),
      name: "live patterns/s", yaxis: "y2", line: { color: COLORS.orange, width: 2 } },
  ], base({
    xaxis: { type: "category" },
    yaxis: { title: { text: "seconds" }, rangemode: "tozero", gridcolor: "#eef1f4" },
    yaxis2: { title: { text: "patterns/s" }, overlaying: "y", side: "right", rangemode: "tozero" },
  }));
}

function drawState(state) {
  const st = state.stats;
  setText("stat-viewers", fmtInt(st.viewers));
  setText("stat-active", fmtInt(state.active_devices));
  setText("stat-version", "v" + st.version);
  setText("stat-released", fmtInt(st.released_patterns));
  setText("stat-live", fmtInt(st.live_patterns));
  setText("stat-pending", fmtInt(st.pending_contributions));
  setText("stat-syncs", fmtInt(state.totals.syncs));
  setText("stat-epsilon", state.totals.epsilon.toFixed(1));
  drawHeatmap(state.heatmap);
  drawConsensus(state.consensus);
  drawTrends(state.trends, state.rounds);
  drawRounds(state.rounds);
}

async function getJson(path) {
  const answer = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (answer.status === 401) { window.location.assign("/dashboard"); throw new Error("logged out"); }
  if (!answer.ok) throw new Error(path + ": HTTP " + answer.status);
  return answer.json();
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const [series, state] = await Promise.all([
      getJson("/api/omega/dashboard/series"), getJson("/api/omega/dashboard/state"),
    ]);
    drawSeries(series);
    drawState(state);
    refreshes += 1;
    document.body.dataset.refreshes = String(refreshes);
    document.body.dataset.version = String(state.stats.version);
    status.className = "status";
    status.textContent = "updated " + new Date().toLocaleTimeString("en-GB") +
      " · sampled every " + series.interval_s + " s, " + series.samples.length + " kept";
  } catch (error) {
    status.className = "status stale";
    status.textContent = "not updated: " + error.message;
  }
}

refresh();
setInterval(refresh, POLL_MS);
