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

// Explore: metric-name and label completion, the metrics browser and the
// recent queries (kept in this browser's localStorage). Without the script
// the page is a plain form and all of this stays hidden.
(function () {
  "use strict";
  var HISTORY_KEY = "infermon.explore.history", HISTORY_MAX = 20, SUGGEST_MAX = 50;
  // PromQL's functions and aggregations, offered after the metric names.
  var FUNCTIONS = ("abs absent absent_over_time avg avg_over_time bottomk ceil changes clamp clamp_max clamp_min count count_over_time " +
    "count_values day_of_month day_of_week delta deriv exp floor group histogram_count histogram_quantile histogram_sum holt_winters " +
    "idelta increase irate label_join label_replace last_over_time ln log2 log10 max max_over_time min min_over_time predict_linear " +
    "quantile quantile_over_time rate resets round scalar sgn sort sort_desc sqrt stddev stddev_over_time stdvar sum sum_over_time " +
    "time timestamp topk vector").split(" ");
  // A histogram's or summary's series carry their family's metadata.
  function metaFor(md, name) {
    var m = md[name] || md[name.replace(/_(bucket|sum|count)$/, "")];
    return m && m[0];
  }

  function getData(url) {
    return fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) { return j && j.status === "success" ? j.data : null; })
      .catch(function () { return null; });
  }
  var cache = {};
  function cached(url) { if (!cache[url]) cache[url] = getData(url); return cache[url]; }
  function metricNames() { return cached("/api/v1/label/__name__/values").then(function (d) { return d || []; }); }
  function metadata() { return cached("/api/v1/metadata").then(function (d) { return d || {}; }); }
  function labelNames(metric) {
    var url = "/api/v1/labels" + (metric ? "?match[]=" + encodeURIComponent(metric) : "");
    return cached(url).then(function (d) { return (d || []).filter(function (n) { return n !== "__name__"; }); });
  }
  function labelValues(label, metric) {
    var url = "/api/v1/label/" + encodeURIComponent(label) + "/values" + (metric ? "?match[]=" + encodeURIComponent(metric) : "");
    return cached(url).then(function (d) { return d || []; });
  }

  function history() {
    try { var h = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]"); return Array.isArray(h) ? h.filter(function (x) { return typeof x === "string"; }) : []; }
    catch (e) { return []; }
  }
  function remember(q) {
    var h = history().filter(function (x) { return x !== q; });
    h.unshift(q);
    try { localStorage.setItem(HISTORY_KEY, JSON.stringify(h.slice(0, HISTORY_MAX))); } catch (e) { /* storage full or off */ }
  }

  // What the text before the caret asks for: metric names, label names or a label's values.
  function context(text, caret) {
    var before = text.slice(0, caret);
    var open = before.lastIndexOf("{"), close = before.lastIndexOf("}");
    if (open > close) {
      var m = /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$/.exec(before.slice(0, open));
      var metric = m ? m[1] : "";
      var seg = before.slice(Math.max(open, before.lastIndexOf(",")) + 1);
      var v = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)$/.exec(seg);
      if (v) return { kind: "value", label: v[1], metric: metric, prefix: v[3], from: caret - v[3].length };
      var n = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)?$/.exec(seg);
      if (n) { var p = n[1] || ""; return { kind: "label", metric: metric, prefix: p, from: caret - p.length }; }
      return null;
    }
    if (before.lastIndexOf("[") > before.lastIndexOf("]")) return null;
    var g = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)$/.exec(before);
    if (g) { var w = /([a-zA-Z_][a-zA-Z0-9_]*)?$/.exec(g[2])[0]; return { kind: "label", metric: "", prefix: w, from: caret - w.length }; }
    var word = /[a-zA-Z_:][a-zA-Z0-9_:]*$/.exec(before);
    if (!word) return null;
    return { kind: "metric", prefix: word[0], from: caret - word[0].length };
  }

  // Names starting with the prefix first, then those containing it.
  function rank(names, prefix) {
    var p = prefix.toLowerCase(), starts = [], contains = [];
    names.forEach(function (n) {
      var l = n.toLowerCase();
      if (l.indexOf(p) === 0) { if (n !== prefix) starts.push(n); } else if (p && l.indexOf(p) > 0) contains.push(n);
    });
    return starts.concat(contains).slice(0, SUGGEST_MAX);
  }

  function completion(form, input, list) {
    var items = [], active = -1, ctx = null, seq = 0;
    function close() { list.hidden = true; list.textContent = ""; items = []; active = -1; input.removeAttribute("aria-activedescendant"); }
    function highlight(i) {
      items.forEach(function (li, j) { li.setAttribute("aria-selected", j === i ? "true" : "false"); });
      active = i;
      if (i >= 0) { input.setAttribute("aria-activedescendant", items[i].id); items[i].scrollIntoView({ block: "nearest" }); }
      else input.removeAttribute("aria-activedescendant");
    }
    function accept(i) {
      var li = items[i];
      if (!li || !ctx) return;
      var text = input.value, caret = input.selectionStart, insert = li.getAttribute("data-value");
      var tail = text.slice(caret);
      if (ctx.kind === "value") insert += tail.charAt(0) === '"' ? "" : '"';
      if (li.hasAttribute("data-function") && tail.charAt(0) !== "(") insert += "(";
      if (ctx.kind === "label" && /\{/.test(text.slice(0, ctx.from)) && text.slice(0, ctx.from).lastIndexOf("{") > text.slice(0, ctx.from).lastIndexOf("}")) insert += '="';
      input.value = text.slice(0, ctx.from) + insert + tail;
      var at = ctx.from + insert.length + (ctx.kind === "value" && tail.charAt(0) === '"' ? 1 : 0);
      input.setSelectionRange(at, at);
      input.focus();
      close();
      if (/="$/.test(insert)) suggest();
    }
    function show(names, help) {
      close();
      if (!names.length) return;
      names.forEach(function (n, i) {
        var li = document.createElement("li");
        li.id = "explore-suggestion-" + i; li.setAttribute("role", "option"); li.setAttribute("data-value", n); li.setAttribute("aria-selected", "false");
        var name = document.createElement("span"); name.className = "name"; name.textContent = n; li.appendChild(name);
        var fn = help && FUNCTIONS.indexOf(n) >= 0 && !help[n];
        if (fn) li.setAttribute("data-function", "true");
        var meta = help && (fn ? { type: "function" } : metaFor(help, n));
        if (meta) {
          var t = document.createElement("span"); t.className = "type"; t.textContent = meta.type || ""; li.appendChild(t);
          if (meta.help) li.title = meta.help;
        }
        li.addEventListener("mousedown", function (e) { e.preventDefault(); });
        li.addEventListener("click", function () { accept(i); });
        list.appendChild(li); items.push(li);
      });
      list.hidden = false;
    }
    function suggest() {
      var mine = ++seq;
      ctx = context(input.value, input.selectionStart);
      if (!ctx || (ctx.kind === "metric" && !ctx.prefix)) { close(); return; }
      var c = ctx, found;
      if (c.kind === "metric") found = Promise.all([metricNames(), metadata()]).then(function (r) {
        var names = rank(r[0], c.prefix);
        return [names.concat(rank(FUNCTIONS, c.prefix).slice(0, Math.max(0, SUGGEST_MAX - names.length))), r[1]];
      });
      else if (c.kind === "label") found = labelNames(c.metric).then(function (n) { return [rank(n, c.prefix), null]; });
      else found = labelValues(c.label, c.metric).then(function (v) { return [rank(v, c.prefix), null]; });
      found.then(function (r) { if (mine === seq) show(r[0], r[1]); });
    }
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", list.id);
    input.addEventListener("input", suggest);
    input.addEventListener("blur", function () { setTimeout(close, 150); });
    input.addEventListener("keydown", function (e) {
      if (e.isComposing) return; // an input method (pinyin) is still composing
      if (!list.hidden && items.length) {
        if (e.key === "ArrowDown") { e.preventDefault(); highlight((active + 1) % items.length); return; }
        if (e.key === "ArrowUp") { e.preventDefault(); highlight(active <= 0 ? items.length - 1 : active - 1); return; }
        if (e.key === "Escape") { e.preventDefault(); close(); return; }
        if (e.key === "Tab" || (e.key === "Enter" && active >= 0)) { e.preventDefault(); accept(active >= 0 ? active : 0); return; }
      }
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); submit(form); }
    });
  }

  // Submits with the view (graph or table) the page shows now.
  function submit(form) {
    var btn = form.querySelector("button[name=view].current") || form.querySelector("button[name=view]");
    if (form.requestSubmit) form.requestSubmit(btn); else btn.click();
  }

  // Puts `text` at the caret (replacing a selection) and focuses the box.
  function insertAtCaret(input, text) {
    var s = input.selectionStart, e = input.selectionEnd, v = input.value;
    input.value = v.slice(0, s) + text + v.slice(e);
    input.setSelectionRange(s + text.length, s + text.length);
    input.focus();
  }

  function metricsBrowser(box, input) {
    var list = box.querySelector("#metrics-list"), filter = box.querySelector("#metrics-filter"), loaded = false;
    function apply() {
      var f = filter.value.toLowerCase();
      list.querySelectorAll("li").forEach(function (li) { li.hidden = f !== "" && li.getAttribute("data-search").indexOf(f) < 0; });
    }
    box.addEventListener("toggle", function () {
      if (!box.open || loaded) return;
      loaded = true;
      Promise.all([metricNames(), metadata()]).then(function (r) {
        r[0].forEach(function (n) {
          var meta = metaFor(r[1], n) || {};
          var li = document.createElement("li");
          li.setAttribute("data-search", (n + " " + (meta.help || "")).toLowerCase());
          var b = document.createElement("button"); b.type = "button"; b.className = "metric"; b.textContent = n;
          b.addEventListener("click", function () { insertAtCaret(input, n); });
          li.appendChild(b);
          if (meta.type) { var t = document.createElement("span"); t.className = "type"; t.textContent = meta.type; li.appendChild(t); }
          if (meta.help) { var h = document.createElement("span"); h.className = "help"; h.textContent = meta.help; li.appendChild(h); }
          list.appendChild(li);
        });
        box.setAttribute("data-loaded", String(r[0].length));
        apply();
      });
    });
    filter.addEventListener("input", apply);
  }

  function recentQueries(section, form, input) {
    var list = section.querySelector("#recent-list");
    function draw() {
      var h = history();
      list.textContent = "";
      h.forEach(function (q) {
        var li = document.createElement("li"), b = document.createElement("button");
        b.type = "button"; b.className = "recent-query"; b.textContent = q;
        b.addEventListener("click", function () { input.value = q; submit(form); });
        li.appendChild(b); list.appendChild(li);
      });
      section.hidden = h.length === 0;
    }
    section.querySelector("#recent-clear").addEventListener("click", function () {
      try { localStorage.removeItem(HISTORY_KEY); } catch (e) { /* off */ }
      draw();
    });
    draw();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("explore-form");
    if (!form) return;
    var input = document.getElementById("explore-q");
    document.querySelectorAll(".js-only").forEach(function (el) { if (el.id !== "recent-queries") el.hidden = false; });
    var q = input.value.trim();
    if (q && !document.getElementById("query-error")) remember(q);
    completion(form, input, document.getElementById("explore-suggestions"));
    metricsBrowser(document.getElementById("metrics-browser"), input);
    recentQueries(document.getElementById("recent-queries"), form, input);
    form.querySelectorAll("input[name=stack]").forEach(function (r) { r.addEventListener("change", function () { submit(form); }); });
  });
})();
