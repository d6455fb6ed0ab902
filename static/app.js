// infermon's only script: progressive enhancement of server-rendered pages.
// Without it every page still works (static charts, forms submit normally).
(function () {
  "use strict";

  function localTime(ms, withDate) {
    var d = new Date(Number(ms));
    var hh = String(d.getHours()).padStart(2, "0"), mm = String(d.getMinutes()).padStart(2, "0");
    if (!withDate) return hh + ":" + mm;
    return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0") + " " + hh + ":" + mm + ":" + String(d.getSeconds()).padStart(2, "0");
  }

  // Axis labels are rendered in UTC; show them in the browser's zone.
  function localizeTimes(root) {
    root.querySelectorAll("text[data-ts]").forEach(function (t) { t.textContent = localTime(t.getAttribute("data-ts"), false); });
    root.querySelectorAll(".window[data-start]").forEach(function (w) {
      w.textContent = localTime(w.getAttribute("data-start"), true) + " – " + localTime(w.getAttribute("data-end"), true);
    });
  }

  function formatValue(v, unit) {
    if (v === null || v === undefined) return "–";
    var a = Math.abs(v);
    function t(x) { return Number(x.toPrecision(3)).toString(); }
    switch (unit) {
      case "s": return a < 1e-3 ? t(v * 1e6) + " µs" : a < 1 ? t(v * 1e3) + " ms" : t(v) + " s";
      case "bytes": var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0; while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; } return t(v) + " " + u[i];
      case "percentunit": return t(v * 100) + "%";
      case "percent": return t(v) + "%";
      case "reqps": return t(v) + " req/s";
      default: return t(v);
    }
  }

  var tip;
  function tooltip() {
    if (!tip) { tip = document.createElement("div"); tip.id = "tooltip"; document.body.appendChild(tip); }
    return tip;
  }

  // Hover crosshair + tooltip, drag-to-zoom (writes from/to into the URL).
  function enhanceChart(svg) {
    var start = Number(svg.getAttribute("data-start")), end = Number(svg.getAttribute("data-end"));
    var unit = svg.getAttribute("data-unit") || "";
    if (!start || !end || svg.classList.contains("bars")) return;
    var vb = svg.viewBox.baseVal, left = 64, right = 8;
    var paths = Array.prototype.slice.call(svg.querySelectorAll("path.series"));
    // Values sit on the query grid: the i-th is at start + i × step; empty = no sample.
    var step = Number(svg.getAttribute("data-step")) || 1;
    var data = paths.map(function (p) {
      var pts = [];
      (p.getAttribute("data-values") || "").split(",").forEach(function (v, i) { if (v !== "") pts.push([start + i * step, parseFloat(v)]); });
      return { name: p.getAttribute("data-name"), color: p.getAttribute("stroke"), pts: pts };
    });
    var ns = "http://www.w3.org/2000/svg";
    var cross = document.createElementNS(ns, "line");
    cross.setAttribute("class", "crosshair"); cross.setAttribute("y1", 0); cross.setAttribute("y2", vb.height); cross.style.display = "none";
    svg.appendChild(cross);
    var zoom = document.createElementNS(ns, "rect");
    zoom.setAttribute("class", "zoom"); zoom.setAttribute("y", 0); zoom.setAttribute("height", vb.height); zoom.style.display = "none";
    svg.appendChild(zoom);
    function toX(evt) { var r = svg.getBoundingClientRect(); return (evt.clientX - r.left) / r.width * vb.width; }
    function toT(x) { return start + (x - left) / (vb.width - left - right) * (end - start); }
    var dragFrom = null;
    svg.addEventListener("mousemove", function (evt) {
      var x = toX(evt), t = toT(x);
      cross.setAttribute("x1", x); cross.setAttribute("x2", x); cross.style.display = "";
      if (dragFrom !== null) { zoom.setAttribute("x", Math.min(dragFrom, x)); zoom.setAttribute("width", Math.abs(x - dragFrom)); zoom.style.display = ""; }
      var lines = [localTime(t, true)];
      data.forEach(function (s) {
        var best = null;
        s.pts.forEach(function (p) { if (best === null || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p; });
        if (best) lines.push(s.name + ": " + formatValue(best[1], unit));
      });
      var tt = tooltip(); tt.textContent = ""; lines.slice(0, 12).forEach(function (l) { var d = document.createElement("div"); d.textContent = l; tt.appendChild(d); });
      tt.style.left = (evt.clientX + 12) + "px"; tt.style.top = (evt.clientY + 12) + "px"; tt.style.display = "block";
    });
    svg.addEventListener("mouseleave", function () { cross.style.display = "none"; tooltip().style.display = "none"; dragFrom = null; zoom.style.display = "none"; });
    svg.addEventListener("mousedown", function (evt) { dragFrom = toX(evt); evt.preventDefault(); });
    svg.addEventListener("mouseup", function (evt) {
      if (dragFrom === null) return;
      var a = toT(Math.min(dragFrom, toX(evt))), b = toT(Math.max(dragFrom, toX(evt)));
      dragFrom = null; zoom.style.display = "none";
      if (b - a < 1000) return;
      var url = new URL(window.location.href);
      url.searchParams.set("from", Math.round(a)); url.searchParams.set("to", Math.round(b)); url.searchParams.delete("range");
      window.location.href = url.toString();
    });
  }

  function enhance(root) {
    localizeTimes(root);
    root.querySelectorAll("svg.chart").forEach(enhanceChart);
  }

  // Auto-refresh swaps the panels without reloading the page.
  function startRefresh() {
    var every = { "5s": 5000, "15s": 15000, "1m": 60000 }[document.body.getAttribute("data-refresh")];
    if (!every) return;
    setInterval(function () {
      var url = new URL(window.location.href);
      if (url.searchParams.has("to")) return; // a zoomed, fixed window does not move
      fetch(url.toString(), { credentials: "same-origin", headers: { "X-Requested-With": "refresh" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("panels"), old = document.getElementById("panels");
          if (fresh && old) { old.replaceWith(fresh); enhance(fresh); }
          var w = doc.querySelector(".window"), ow = document.querySelector(".window");
          if (w && ow) { ow.replaceWith(w); localizeTimes(document); }
        })
        .catch(function () {});
    }, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("select.autosubmit").forEach(function (s) { s.addEventListener("change", function () { s.form.submit(); }); });
    enhance(document);
    startRefresh();
  });
})();

// Timestamps in tables (data-ts on spans) in the browser's zone.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("span.ts[data-ts]").forEach(function (s) {
    var d = new Date(Number(s.getAttribute("data-ts")));
    if (!isNaN(d.getTime())) s.textContent = d.toLocaleString();
  });
});
