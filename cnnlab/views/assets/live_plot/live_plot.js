// cnnlab's live run: progress, three uPlot charts and the point count (cnnlab.views.live_feed).
// The Streamlit component protocol (v1) by hand: "componentReady", "setFrameHeight" and
// "setComponentValue" out, "render" in. args: {url, feed, smoothing, status, stop_requested,
// poll_ms}. With a url it fetches the feed itself every poll_ms (no page rerun per tick); else
// it draws args.feed, pushed by a once-a-second fragment. Each chart is made once, then only
// given new arrays, and not even that when the feed's version did not change.
"use strict";

const charts = {};   // container key → {box, empty, plot, shape, zoomed}
let args = null;     // the latest render arguments
let theme = null;
let version = null;  // the feed version drawn (the newest metric row), for `since`
let drawnSmoothing = null;
let polling = false;
let timer = null;
let sentValue = "";
let sentHeight = 0;
window.cnnlabLivePlot = { plot: null, plots: {}, mode: null, polls: 0, feed: null };  // tests

function send(type, data) {
  window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type: type }, data), "*");
}

function rgba(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

function fixedRange(range) {
  // a fixed span; else from 0 (steps) to the data's end, as the finished run's Plotly charts
  return range ? () => range : (u, min, max) => [Math.min(0, min), max > 0 ? max : 1];
}

function options(spec, width) {
  const ink = (theme && theme.textColor) || "#31333F";
  const axis = (label, incrs) => ({
    label: label, stroke: ink, grid: { stroke: rgba("#808080", 0.18) },
    ticks: { stroke: rgba("#808080", 0.3) }, incrs: incrs,
    font: "12px sans-serif", labelFont: "13px sans-serif",
  });
  const whole = spec.x_label === "epoch" ? [1, 2, 5, 10, 20, 50, 100, 200, 500] : undefined;
  const value = (u, v) => (v == null ? "—" : `${+v.toPrecision(4)}${spec.unit}`);
  return {
    title: spec.title,
    width: width,
    height: spec.height - 60,  // the plot; the title and the legend come on top
    scales: { x: { time: false, range: fixedRange(spec.x_range) },
              y: { range: spec.y_range ? () => spec.y_range : undefined } },
    axes: [axis(spec.x_label, whole), axis(spec.y_label)],
    series: [
      { label: spec.x_label, value: (u, v) => (v == null ? "—" : `${+v.toPrecision(4)}`) },
      ...spec.series.map((s) => ({
        label: s.label, stroke: rgba(s.color, s.alpha), width: s.width, value: value,
        points: { show: s.points, size: s.points ? 7 : 0, fill: rgba(s.color, s.alpha) },
      })),
    ],
    cursor: { drag: { x: true, y: false } },
  };
}

function chartFor(key) {
  let chart = charts[key];
  if (!chart) {
    const cell = document.createElement("div");
    cell.className = "cell";
    cell.dataset.key = key;
    const box = document.createElement("div");
    const empty = document.createElement("div");
    empty.className = "empty";
    empty.hidden = true;
    cell.append(box, empty);
    document.getElementById("charts").append(cell);
    chart = charts[key] = { box: box, empty: empty, plot: null, shape: "", zoomed: false };
  }
  return chart;
}

function drawChart(key, spec) {
  const chart = chartFor(key);
  const shape = JSON.stringify([spec.series, spec.x_range, spec.y_range, spec.title,
                                theme && theme.textColor]);
  if (chart.plot === null || shape !== chart.shape) {
    if (chart.plot !== null) chart.plot.destroy();
    chart.zoomed = false;  // a dragged zoom survives new data until a double-click resets it
    const width = Math.max(200, chart.box.clientWidth || document.body.clientWidth);
    const opts = options(spec, width);
    opts.hooks = { setSelect: [(u) => { if (u.select.width > 0) chart.zoomed = true; }] };
    chart.plot = new uPlot(opts, spec.data, chart.box);
    chart.plot.over.addEventListener("dblclick", () => { chart.zoomed = false; });
    chart.shape = shape;
  } else {
    chart.plot.setData(spec.data, !chart.zoomed);
  }
  const none = spec.data[0].length === 0;
  chart.empty.hidden = !none;
  chart.empty.textContent = none ? spec.empty : "";
  window.cnnlabLivePlot.plots[key] = chart.plot;
}

function fitFrame() {
  const height = document.body.scrollHeight;
  if (height > 0 && height !== sentHeight) {
    sentHeight = height;
    send("streamlit:setFrameHeight", { height: height });
  }
}

function report(status, stopRequested) {
  // a status the page was not drawn with: tell it (its fragment reruns; an ended run's page
  // reruns whole, with the results)
  if (!args || (status === args.status && stopRequested === args.stop_requested)) return;
  const value = { status: status, stop_requested: stopRequested };
  const text = JSON.stringify(value);
  if (text !== sentValue) {
    sentValue = text;
    send("streamlit:setComponentValue", { value: value, dataType: "json" });
  }
}

function problem(text) {
  const box = document.getElementById("problem");
  box.hidden = !text;
  box.textContent = text || "";
}

function draw(feed) {
  const percent = Math.round(100 * feed.fraction);
  document.getElementById("progress-fill").style.width = `${percent}%`;
  document.getElementById("progress").setAttribute("aria-valuenow", String(percent));
  document.getElementById("progress-text").textContent = feed.progress_text;
  document.getElementById("points").textContent = `${feed.points} points recorded`;
  if (feed.plots) {
    for (const [key, spec] of Object.entries(feed.plots)) drawChart(key, spec);
    version = feed.version;
  }
  window.cnnlabLivePlot.plot = window.cnnlabLivePlot.plots["loss-chart"] || null;
  window.cnnlabLivePlot.feed = feed;
  problem("");
  report(feed.status, feed.stop_requested);
  fitFrame();
}

async function poll() {
  timer = null;
  if (!args || !args.url) return;
  if (document.visibilityState === "hidden") return;  // picked up again when shown
  polling = true;
  let active = true;
  let delay = args.poll_ms || 500;
  const smoothing = String(args.smoothing);
  try {
    const since = version !== null && drawnSmoothing === smoothing ? `&since=${version}` : "";
    const reply = await fetch(`${args.url}?smoothing=${smoothing}${since}`, { cache: "no-store" });
    const feed = await reply.json();
    window.cnnlabLivePlot.polls += 1;
    if (reply.ok) {
      drawnSmoothing = smoothing;
      draw(feed);
      active = feed.active;
    } else {
      problem(feed.error || `The live feed answered ${reply.status}.`);
      if (feed.status === "missing") { report("missing", false); active = false; }
      delay *= 4;
      fitFrame();
    }
  } catch (err) {
    problem("Lost touch with the server; trying again…");
    delay *= 4;
    fitFrame();
  } finally {
    polling = false;
  }
  if (args.url && String(args.smoothing) !== smoothing) delay = 0;  // changed mid-fetch
  if (active) schedule(delay);
}

function schedule(ms) {
  if (timer === null && !polling) timer = setTimeout(poll, ms);
}

window.addEventListener("message", (event) => {
  if (!event.data || event.data.type !== "streamlit:render") return;
  const before = args;
  args = event.data.args;
  const ink = theme && theme.textColor;
  theme = event.data.theme || theme;
  if (theme && theme.textColor !== ink) version = null;  // new colours: the next poll redraws
  document.body.style.color = (theme && theme.textColor) || "";
  if (theme && theme.primaryColor) {
    document.getElementById("progress-fill").style.background = theme.primaryColor;
  }
  if (before && (before.status !== args.status || before.stop_requested !== args.stop_requested)) {
    sentValue = "";  // drawn with the news: a later change is news again
  }
  window.cnnlabLivePlot.mode = args.url ? "poll" : "push";
  if (args.feed) {
    draw(args.feed);
  } else if (args.url && (!before || String(before.smoothing) !== String(args.smoothing))) {
    if (timer !== null) { clearTimeout(timer); timer = null; }
    schedule(0);  // a new smoothing: now (or, mid-fetch, right after it)
  } else if (args.url) {
    schedule(args.poll_ms || 500);
  }
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && args && args.url) schedule(0);
});
new ResizeObserver(() => {
  for (const chart of Object.values(charts)) {
    const width = chart.box.clientWidth;
    if (chart.plot !== null && width > 0 && Math.abs(Math.max(200, width) - chart.plot.width) > 1) {
      chart.plot.setSize({ width: Math.max(200, width), height: chart.plot.height });
    }
  }
  fitFrame();
}).observe(document.body);
send("streamlit:componentReady", { apiVersion: 1 });
