// cnnlab's live training chart: draws what cnnlab.views.live_plot sends on each tick.
// The Streamlit component protocol (v1) by hand: "componentReady" and "setFrameHeight" out,
// "render" in (args.spec; theme). The chart is made once and then only given new arrays.
"use strict";

const chartBox = document.getElementById("chart");
const emptyNote = document.getElementById("empty");
let plot = null;
let shape = "";      // the series and ranges the chart was made with: remade when they change
let zoomed = false;  // a dragged zoom survives new data until a double-click resets it
let sentHeight = 0;
window.cnnlabLivePlot = { plot: null };  // read by the browser tests and watch_cost.py

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

function options(spec, theme) {
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
    width: Math.max(200, chartBox.clientWidth || document.body.clientWidth),
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
    hooks: { setSelect: [(u) => { if (u.select.width > 0) zoomed = true; }] },
  };
}

function fitFrame(spec) {
  // the chart's own height once laid out; before that (a new frame is 0 px high) the spec's
  const height = Math.max(chartBox.offsetHeight, spec ? spec.height : 0);
  if (height !== sentHeight) {
    sentHeight = height;
    send("streamlit:setFrameHeight", { height: height });
  }
}

function render(spec, theme) {
  document.body.style.color = (theme && theme.textColor) || "";
  const key = JSON.stringify([spec.series, spec.x_range, spec.y_range, spec.title,
                              theme && theme.textColor]);
  if (plot === null || key !== shape) {
    if (plot !== null) plot.destroy();
    zoomed = false;
    plot = new uPlot(options(spec, theme), spec.data, chartBox);
    plot.over.addEventListener("dblclick", () => { zoomed = false; });
    shape = key;
  } else {
    plot.setData(spec.data, !zoomed);
  }
  const none = spec.data[0].length === 0;
  emptyNote.hidden = !none;
  emptyNote.textContent = none ? spec.empty : "";
  window.cnnlabLivePlot.plot = plot;
  fitFrame(spec);
}

window.addEventListener("message", (event) => {
  if (event.data && event.data.type === "streamlit:render") {
    render(event.data.args.spec, event.data.theme);
  }
});
new ResizeObserver(() => {
  const width = chartBox.clientWidth || document.body.clientWidth;
  if (plot !== null && width > 0 && Math.abs(width - plot.width) > 1) {
    plot.setSize({ width: Math.max(200, width), height: plot.height });
  }
  fitFrame();
}).observe(document.body);
send("streamlit:componentReady", { apiVersion: 1 });
