// The model monitoring page: live statistics from /monitor/api/stream (Server-Sent Events;
// polling /monitor/api/snapshot where EventSource is missing) drawn as SVG line charts.
// Self-contained: no library, nothing fetched from elsewhere. The JSON schema is in
// docs/api.md ("Inference: monitoring page").
"use strict";
(function () {
  const SVGNS = "http://www.w3.org/2000/svg";
  const ROLE_COLORS = {
    champion: "#0969da", challenger: "#cf222e", shadow: "#1a7f37", "": "#6e7781",
  };
  // Series colours without the red that marks a drifted point.
  const PALETTE = ["#0969da", "#1a7f37", "#8250df", "#bc4c00", "#1b7c83", "#bf3989",
    "#4d2d00", "#6e7781", "#0550ae", "#116329"];
  const DRIFTED = "#cf222e";
  const W = 600, H = 220, M = { l: 56, r: 12, t: 10, b: 34 };

  // The page's copy of the recorder: models by name, each with series by version+role
  // (columns as in the snapshot) and drift series by version+feature+test (points by time).
  const state = { bucketS: 1, windowS: 600, now: 0, models: new Map() };
  let viewS = 300;

  function merge(snap, reset) {
    if (reset) state.models = new Map();
    state.bucketS = snap.bucket_s;
    state.windowS = snap.window_s;
    state.now = snap.now;
    for (const m of snap.models) {
      let sm = state.models.get(m.name);
      if (!sm) {
        sm = { name: m.name, series: new Map(), drift: new Map() };
        state.models.set(m.name, sm);
      }
      for (const s of m.series) {
        const key = s.version + "\u0000" + s.role;
        let cur = sm.series.get(key);
        if (!cur) {
          cur = { version: s.version, role: s.role, cols: { t: [] } };
          sm.series.set(key, cur);
        }
        // Buckets from `since` on come again (the one current at the last snapshot complete
        // now): drop ours from there and append.
        let keep = cur.cols.t.findIndex((t) => t >= snap.since);
        if (keep < 0) keep = cur.cols.t.length;
        for (const name of Object.keys(s.buckets)) {
          const old = cur.cols[name] || [];
          cur.cols[name] = old.slice(0, keep).concat(s.buckets[name]);
        }
        cur.window = s.window;
      }
      for (const d of m.drift) {
        const key = [d.version, d.feature, d.test].join("\u0000");
        let cur = sm.drift.get(key);
        if (!cur) {
          cur = { version: d.version, feature: d.feature, test: d.test, points: new Map() };
          sm.drift.set(key, cur);
        }
        d.t.forEach((t, i) => cur.points.set(t, [d.score[i], d.drifted[i]]));
      }
    }
    prune();
  }

  function prune() {
    const oldest = state.now - state.windowS;
    for (const [name, sm] of state.models) {
      for (const [key, s] of sm.series) {
        const first = s.cols.t.findIndex((t) => t >= oldest);
        if (first < 0) { sm.series.delete(key); continue; }
        for (const c of Object.keys(s.cols)) s.cols[c] = s.cols[c].slice(first);
      }
      for (const [key, d] of sm.drift) {
        for (const t of [...d.points.keys()]) if (t < oldest) d.points.delete(t);
        if (d.points.size === 0) sm.drift.delete(key);
      }
      if (sm.series.size === 0 && sm.drift.size === 0) state.models.delete(name);
    }
  }

  // ---- drawing -------------------------------------------------------------------------

  function el(tag, attrs, parent) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  function hms(t) {
    const d = new Date(t * 1000);
    return [d.getHours(), d.getMinutes(), d.getSeconds()]
      .map((x) => String(x).padStart(2, "0")).join(":");
  }

  function niceStep(span, target) {
    const raw = span / target;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
    return 10 * p;
  }

  function fmt(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1000) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1).replace(/\.0$/, "");
    if (a >= 0.01) return String(Number(v.toPrecision(3)));
    return v.toExponential(1);
  }

  // series: [{label, color, dash, role, points: [[t, v|null], ...], gap: seconds, markers}]
  function drawChart(svg, yLabel, series) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const x1 = state.now, x0 = x1 - viewS;
    let ymax = 0;
    for (const s of series) {
      for (const [t, v] of s.points) if (t >= x0 && v !== null && v > ymax) ymax = v;
    }
    if (!(ymax > 0)) ymax = 1;
    const ystep = niceStep(ymax, 4);
    ymax = Math.ceil((ymax * 1.05) / ystep) * ystep;
    const px = (t) => M.l + ((t - x0) / (x1 - x0)) * (W - M.l - M.r);
    const py = (v) => H - M.b - (v / ymax) * (H - M.t - M.b);
    // grid and y ticks
    for (let v = 0; v <= ymax + ystep / 2; v += ystep) {
      el("line", { class: "grid", x1: M.l, x2: W - M.r, y1: py(v), y2: py(v) }, svg);
      el("text", { class: "tick y", x: M.l - 4, y: py(v) + 4, "text-anchor": "end" }, svg)
        .textContent = fmt(v);
    }
    // x ticks: a round number of seconds, about six of them
    const xstep = [5, 10, 15, 30, 60, 120, 300, 600].find((s) => viewS / s <= 6) || 600;
    for (let t = Math.ceil(x0 / xstep) * xstep; t <= x1; t += xstep) {
      el("line", { class: "grid", x1: px(t), x2: px(t), y1: M.t, y2: H - M.b }, svg);
      el("text", { class: "tick x", x: px(t), y: H - M.b + 14, "text-anchor": "middle" }, svg)
        .textContent = hms(t);
    }
    el("line", { class: "axis", x1: M.l, x2: M.l, y1: M.t, y2: H - M.b }, svg);
    el("line", { class: "axis", x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }, svg);
    const yl = el("text", {
      class: "axis-label y", transform: `translate(12,${(H - M.b + M.t) / 2}) rotate(-90)`,
      "text-anchor": "middle",
    }, svg);
    yl.textContent = yLabel;
    el("text", { class: "axis-label x", x: (W + M.l) / 2, y: H - 4, "text-anchor": "middle" }, svg)
      .textContent = "time";
    // the series: a path broken where a value is missing or the gap exceeds `gap`
    const clip = `clip-${Math.random().toString(36).slice(2)}`;
    const cp = el("clipPath", { id: clip }, el("defs", {}, svg));
    el("rect", { x: M.l, y: 0, width: W - M.l - M.r, height: H - M.b }, cp);
    for (const s of series) {
      let d = "", prev = null, n = 0;
      for (const [t, v] of s.points) {
        if (t < x0 - state.bucketS || v === null) { prev = null; continue; }
        const cmd = prev !== null && t - prev <= s.gap ? "L" : "M";
        d += `${cmd}${px(t).toFixed(1)},${py(v).toFixed(1)}`;
        prev = t;
        n += 1;
      }
      const path = el("path", {
        class: "series", d, stroke: s.color, "clip-path": `url(#${clip})`,
        "data-series": s.label, "data-role": s.role || "", "data-points": n,
      }, svg);
      if (s.dash) path.setAttribute("stroke-dasharray", s.dash);
      if (s.markers) {
        for (const [t, v, flagged] of s.points) {
          if (t < x0 || v === null) continue;
          el("circle", {
            class: flagged ? "point drifted" : "point", cx: px(t), cy: py(v), r: flagged ? 3.5 : 2,
            fill: flagged ? DRIFTED : s.color, "data-series": s.label,
          }, svg);
        }
      }
    }
  }

  function legend(div, series) {
    div.textContent = "";
    if (series.some((s) => s.markers)) {
      series = series.concat([{ label: "● drifted", color: DRIFTED, dot: true }]);
    }
    for (const s of series) {
      const item = document.createElement("span");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.borderTopColor = s.dot ? "transparent" : s.color;
      if (s.dot) item.style.color = DRIFTED;
      if (s.dash) sw.style.borderTopStyle = "dashed";
      item.appendChild(sw);
      item.appendChild(document.createTextNode(s.label));
      div.appendChild(item);
    }
  }

  // ---- one model's section -------------------------------------------------------------

  const CHARTS = [
    ["latency", "Latency percentiles", "latency (ms)"],
    ["throughput", "Throughput", "requests/s"],
    ["batch", "Batch size", "batch size (rows)"],
    ["errors", "Error rate", "error rate (%)"],
    ["drift", "Drift score per feature", "drift score"],
  ];
  const sections = new Map();

  function section(name) {
    let sec = sections.get(name);
    if (sec) return sec;
    const root = document.createElement("section");
    root.className = "model";
    root.dataset.model = name;
    const h = document.createElement("h2");
    h.textContent = `model ${name}`;
    root.appendChild(h);
    const summary = document.createElement("table");
    summary.className = "summary";
    const compare = document.createElement("div");
    compare.className = "compare";
    const charts = document.createElement("div");
    charts.className = "charts";
    root.append(summary, compare, charts);
    sec = { root, summary, compare, charts: {} };
    for (const [id, title] of CHARTS) {
      const box = document.createElement("div");
      box.className = `chart ${id}`;
      const h3 = document.createElement("h3");
      h3.textContent = title;
      const svg = el("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-chart": id });
      const lg = document.createElement("div");
      lg.className = "legend";
      box.append(h3, svg, lg);
      charts.appendChild(box);
      sec.charts[id] = { svg, legend: lg };
    }
    sections.set(name, sec);
    return sec;
  }

  function label(s) { return `v${s.version}${s.role ? " " + s.role : ""}`; }

  function ms(v) { return v === null || v === undefined ? "–" : fmt(v * 1000) + " ms"; }
  function pct(v) { return v === null || v === undefined ? "–" : fmt(v * 100) + " %"; }
  function num(v) { return v === null || v === undefined ? "–" : fmt(v); }

  function fillTable(table, head, rows) {
    table.textContent = "";
    const tr = table.insertRow();
    for (const h of head) {
      const th = document.createElement("th");
      th.textContent = h;
      tr.appendChild(th);
    }
    for (const row of rows) {
      const r = table.insertRow();
      for (const [field, text] of row) {
        const td = r.insertCell();
        td.dataset.field = field;
        td.textContent = text;
      }
    }
  }

  function renderModel(sm) {
    const sec = section(sm.name);
    const series = [...sm.series.values()];
    const roleOrder = (s) => ["champion", "challenger", "shadow", ""].indexOf(s.role);
    series.sort((a, b) => roleOrder(a) - roleOrder(b) || a.version.localeCompare(b.version));
    fillTable(sec.summary,
      ["series", "requests", "req/s", "errors", "error rate", "p50", "p90", "p99", "batch mean"],
      series.map((s) => {
        const w = s.window;
        return [["series", label(s)], ["count", String(w.count)],
          ["requests_per_s", num(w.requests_per_s)], ["errors", String(w.errors)],
          ["error_rate", pct(w.error_rate)], ["p50", ms(w.latency.p50)],
          ["p90", ms(w.latency.p90)], ["p99", ms(w.latency.p99)],
          ["batch_mean", num(w.batch_mean)]];
      }));
    sec.summary.querySelectorAll("tr").forEach((tr, i) => {
      if (i > 0) tr.dataset.series = label(series[i - 1]);
    });
    renderCompare(sec.compare, series);

    const colorOf = (s, i) => (s.role ? ROLE_COLORS[s.role] : PALETTE[i % PALETTE.length]);
    const gap = state.bucketS * 1.5;
    // Charts end at the last complete bucket: the current one has only part of its second
    // (its rates would dip, its error rate jump). The tables include it.
    const done = (t) => t + state.bucketS <= state.now;
    const col = (s, name, scale) => s.cols.t.flatMap((t, i) => {
      const v = s.cols[name][i];
      return done(t) ? [[t, v === null ? null : v * scale]] : [];
    });
    const lat = [], thr = [], bat = [], err = [];
    series.forEach((s, i) => {
      const color = colorOf(s, i), role = s.role;
      lat.push({ label: `${label(s)} p50`, color, role, gap, points: col(s, "p50", 1000) });
      lat.push({ label: `${label(s)} p99`, color, role, gap, dash: "5 3",
        points: col(s, "p99", 1000) });
      // Throughput is zero where a bucket is missing: draw every bucket in between.
      const counts = new Map(s.cols.t.map((t, k) => [t, s.cols.count[k]]));
      const pts = [];
      const ts = s.cols.t.filter(done);
      if (ts.length) {
        const first = ts[0], last = ts[ts.length - 1];
        for (let k = 0; first + k * state.bucketS <= last + 1e-9; k++) {
          const t = first + k * state.bucketS;
          pts.push([t, (counts.get(t) || 0) / state.bucketS]);
        }
      }
      thr.push({ label: label(s), color, role, gap, points: pts });
      bat.push({ label: `${label(s)} mean`, color, role, gap, points: col(s, "batch_mean", 1) });
      bat.push({ label: `${label(s)} max`, color, role, gap, dash: "5 3",
        points: col(s, "batch_max", 1) });
      err.push({ label: label(s), color, role, gap, points: s.cols.t.flatMap((t, k) =>
        (done(t) ? [[t, (100 * s.cols.errors[k]) / s.cols.count[k]]] : [])) });
    });
    const drift = [...sm.drift.values()]
      .sort((a, b) => a.version.localeCompare(b.version) || a.feature.localeCompare(b.feature)
        || a.test.localeCompare(b.test))
      .map((d, i) => ({
        label: `v${d.version} ${d.feature} ${d.test}`, color: PALETTE[i % PALETTE.length],
        role: "", gap: Infinity, markers: true,
        points: [...d.points.entries()].sort((a, b) => a[0] - b[0])
          .map(([t, [score, drifted]]) => [t, score, drifted]),
      }));
    const data = { latency: lat, throughput: thr, batch: bat, errors: err, drift };
    for (const [id, , yLabel] of CHARTS) {
      drawChart(sec.charts[id].svg, yLabel, data[id]);
      legend(sec.charts[id].legend, data[id]);
    }
  }

  function renderCompare(div, series) {
    div.textContent = "";
    const h = document.createElement("h3");
    h.textContent = "Champion vs challenger";
    div.appendChild(h);
    const champ = series.find((s) => s.role === "champion");
    const chall = series.find((s) => s.role === "challenger");
    if (!champ || !chall) {
      const p = document.createElement("p");
      p.className = "note";
      p.textContent = champ ? "No challenger is serving." : "No champion is serving.";
      div.appendChild(p);
      return;
    }
    const a = champ.window, b = chall.window;
    const ratio = (x, y) => (x === null || y === null || x === 0 ? "–" : fmt(y / x) + "×");
    const rows = [
      ["requests/s", a.requests_per_s, b.requests_per_s, num],
      ["error rate", a.error_rate, b.error_rate, pct],
      ["latency p50", a.latency.p50, b.latency.p50, ms],
      ["latency p90", a.latency.p90, b.latency.p90, ms],
      ["latency p99", a.latency.p99, b.latency.p99, ms],
      ["batch mean", a.batch_mean, b.batch_mean, num],
    ].map(([name, x, y, f]) =>
      [["metric", name], ["champion", f(x)], ["challenger", f(y)], ["ratio", ratio(x, y)]]);
    const table = document.createElement("table");
    table.className = "comparison";
    fillTable(table, ["", label(champ), label(chall), "challenger / champion"], rows);
    div.appendChild(table);
  }

  function render() {
    const main = document.getElementById("models");
    const empty = document.getElementById("empty");
    empty.hidden = state.models.size > 0;
    const names = [...state.models.keys()].sort();
    for (const [name, sec] of sections) {
      if (!state.models.has(name)) { sec.root.remove(); sections.delete(name); }
    }
    for (const name of names) {
      renderModel(state.models.get(name));
      main.appendChild(sections.get(name).root);  // in name order
    }
    const status = document.getElementById("status");
    status.dataset.updated = String(state.now);
    status.textContent = `${status.dataset.state === "live" ? "live" : status.dataset.state}` +
      ` · updated ${hms(state.now)}`;
  }

  function setStatus(s) {
    const status = document.getElementById("status");
    status.dataset.state = s;
    status.textContent = s;
  }

  // ---- the live channel ----------------------------------------------------------------

  function connect() {
    if (typeof EventSource === "undefined") { poll(null); return; }
    const es = new EventSource("/monitor/api/stream");
    es.addEventListener("snapshot", (e) => {
      setStatus("live");
      merge(JSON.parse(e.data), true);
      render();
    });
    es.addEventListener("update", (e) => { merge(JSON.parse(e.data), false); render(); });
    // EventSource reconnects by itself (the server says after how long); the first event of
    // the new stream is a whole snapshot again.
    es.onerror = () => setStatus("reconnecting");
  }

  async function poll(since) {
    let next = since;
    try {
      const q = since === null ? "" : `?since=${since}`;
      const r = await fetch(`/monitor/api/snapshot${q}`, { cache: "no-store" });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const snap = await r.json();
      setStatus("live");
      merge(snap, since === null);
      render();
      next = snap.next_since;
    } catch (e) {
      setStatus("reconnecting");
      next = null;
    }
    setTimeout(() => poll(next), 1000);
  }

  document.getElementById("view").addEventListener("change", (e) => {
    viewS = Number(e.target.value);
    render();
  });
  connect();
})();
