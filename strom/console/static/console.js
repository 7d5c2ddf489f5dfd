// Live numbers over server-sent events. Every element with data-live="URL"
// subscribes; events are JSON: {"ok": true, ...fields} or {"ok": false, "error"}.
// A failed sample (or a dropped stream) shows the banner; the next good one hides it.
(function () {
  "use strict";
  var banner = document.getElementById("banner");
  var MAX_POINTS = 200;

  function setBanner(text) {
    if (text) { banner.textContent = "broker unreachable, reconnecting… (" + text + ")"; banner.hidden = false; }
    else { banner.hidden = true; }
  }

  function makeChart(el) {
    if (typeof uPlot === "undefined") { return null; }
    var data = [[], []];
    var width = Math.max(300, el.clientWidth || 600);
    var plot = new uPlot({
      width: width, height: 200,
      series: [{}, { label: el.dataset.label, stroke: "#2a6fdb", width: 2, fill: "rgba(42,111,219,0.1)" }],
      axes: [{}, { size: 70 }],
      scales: { x: { time: true } }
    }, data, el);
    return { el: el, field: el.dataset.chart, data: data, plot: plot };
  }

  function render(section, charts, event) {
    section.querySelectorAll("[data-field]").forEach(function (el) {
      var v = event[el.dataset.field];
      if (v !== undefined) { el.textContent = v; }
    });
    section.querySelectorAll("[data-map]").forEach(function (el) {
      var map = event[el.dataset.map] || {};
      var v = map[el.dataset.key];
      if (v !== undefined) { el.textContent = v; }
    });
    (event.rows || []).forEach(function (p) {
      var row = section.querySelector('[data-row="' + CSS.escape(p.topic + "/" + p.partition) + '"]');
      if (!row) { return; }
      ["committed", "end", "lag"].forEach(function (c) {
        var cell = row.querySelector('[data-col="' + c + '"]');
        if (cell) { cell.textContent = p[c] === null ? "-" : p[c]; }
      });
    });
    charts.forEach(function (c) {
      var v = event[c.field];
      if (typeof v !== "number") { return; }
      c.data[0].push(event.time); c.data[1].push(v);
      if (c.data[0].length > MAX_POINTS) { c.data[0].shift(); c.data[1].shift(); }
      c.plot.setData(c.data);
      c.el.dataset.points = c.data[0].length;
    });
  }

  document.querySelectorAll("[data-live]").forEach(function (section) {
    var charts = [];
    section.querySelectorAll("[data-chart]").forEach(function (el) {
      var c = makeChart(el); if (c) { charts.push(c); }
    });
    var source = new EventSource(section.dataset.live);
    source.onmessage = function (msg) {
      var event = JSON.parse(msg.data);
      if (!event.ok) { setBanner(event.error); return; }
      setBanner(null);
      render(section, charts, event);
      document.body.dataset.liveUpdates = String(Number(document.body.dataset.liveUpdates || 0) + 1);
    };
    // EventSource reconnects by itself after a dropped stream (console restarted).
    source.onerror = function () { setBanner("connection to the console lost"); };
  });
})();
