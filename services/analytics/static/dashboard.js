// Veilig Haarlem ops dashboard: live numbers over server-sent events, map and charts as SVG.
// Hand-written on purpose: no framework, no CDN, works offline.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const PALETTE = ["#fde0c5", "#facba6", "#f8b58b", "#f59e72", "#f2855d", "#ef6a4c", "#c8443a"];
let lastIncidentMessages = null;

function esc(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function rows(table, header, body) {
  table.innerHTML =
    (header ? "<tr>" + header.map((h) => `<th>${esc(h)}</th>`).join("") + "</tr>" : "") +
    body.map((r) => "<tr>" + r.map((c, i) => `<td class="${i ? "n" : ""}">${esc(c)}</td>`).join("") + "</tr>").join("");
}

function rate(value) {
  return value === null || value === undefined ? "–" : value.toFixed(1);
}

function renderKafka(o) {
  rows(
    $("throughput"),
    ["topic", "/s", "totaal"],
    o.throughput.map((t) => [t.topic, rate(t.per_second), t.messages.toLocaleString("nl-NL")])
  );
  const incident = o.throughput.find((t) => t.topic === "incident-events");
  const spark = $("throughput-spark");
  const history = o.throughput_history.map((h) => Object.values(h).reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...history);
  spark.innerHTML = history.length
    ? `<polyline fill="none" stroke="#b3001b" stroke-width="1.5" points="${history
        .map((v, i) => `${(i / Math.max(1, history.length - 1)) * 300},${40 - (v / max) * 38}`)
        .join(" ")}"/>`
    : "";
  const byGroup = new Map();
  for (const p of o.lag) {
    const key = `${p.group} · ${p.topic}`;
    if (!byGroup.has(key)) byGroup.set(key, []);
    byGroup.get(key).push(p);
  }
  const lag = $("lag");
  lag.innerHTML =
    "<tr><th>service (groep) · topic</th><th class=n>totaal</th><th>per partitie</th></tr>" +
    [...byGroup.entries()]
      .map(([key, parts]) => {
        const total = parts.reduce((a, p) => a + p.lag, 0);
        const cells = parts
          .map((p) => `<span class="${p.lag > 1000 ? "far" : p.lag > 0 ? "behind" : ""}" title="partitie ${p.partition}">${p.lag}</span>`)
          .join("");
        return `<tr><td>${esc(key)}</td><td class="n ${total ? "bad" : ""}">${total}</td><td><div class="lag-cells">${cells}</div></td></tr>`;
      })
      .join("");
  if (o.kafka_error) lag.innerHTML += `<tr><td colspan=3 class=bad>${esc(o.kafka_error)}</td></tr>`;
  return incident ? incident.messages : null;
}

function renderNumbers(o) {
  $("backlog-total").textContent = o.backlog.by_priority.total;
  rows($("backlog"), null, Object.entries(o.backlog.by_priority.parts).filter(([k]) => k !== "?").map(([k, v]) => [k, v]));
  rows($("sla"), ["", "dreigt", "verlopen"], [
    ["bevestigen", o.sla.at_risk.acknowledge.total, o.sla.breached.acknowledge.total],
    ["afhandelen", o.sla.at_risk.handle.total, o.sla.breached.handle.total],
  ]);
  $("deliveries-period").textContent = o.deliveries_period;
  const d = o.deliveries.parts;
  const ok = typeof d.delivered === "number" && typeof d.failed_final === "number" && d.delivered + d.failed_final > 0
    ? ((100 * d.delivered) / (d.delivered + d.failed_final)).toFixed(1) + "%" : "–";
  rows($("deliveries"), null, [
    ["bezorgd", d.delivered], ["mislukte poging", d.failed], ["opgegeven", d.failed_final],
    ["geëscaleerd", d.escalated], ["succes", ok],
  ]);
  renderCharts(o.series);
}

function renderCharts(series) {
  const box = $("charts");
  box.innerHTML = "";
  for (const s of series) {
    const title = document.createElement("p");
    title.textContent = s.title;
    box.appendChild(title);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "chart");
    svg.setAttribute("viewBox", "0 0 300 120");
    const numbers = s.points.map((p) => (typeof p.count === "number" ? p.count : 0));
    const max = Math.max(1, ...numbers);
    const w = 300 / s.points.length;
    svg.innerHTML = s.points
      .map((p, i) => {
        const n = typeof p.count === "number" ? p.count : 0;
        const h = (n / max) * 90;
        const label = i % Math.ceil(s.points.length / 12) === 0 ? `<text x="${i * w + 1}" y="118">${esc(p.label)}</text>` : "";
        return `<rect x="${i * w + 1}" y="${100 - h}" width="${Math.max(1, w - 2)}" height="${h}"><title>${esc(p.label)}: ${esc(p.count)}</title></rect>` +
          (typeof p.count === "number" ? "" : `<text class="value" x="${i * w + 1}" y="98">${esc(p.count)}</text>`) + label;
      })
      .join("");
    box.appendChild(svg);
  }
}

async function loadMap() {
  const period = $("map-period").value;
  const level = $("map-level").value;
  const category = $("map-category").value;
  const query = new URLSearchParams({ period, level, category });
  const response = await fetch(`/v1/incidents/areas?${query}`, { credentials: "same-origin" });
  if (!response.ok) return;
  const data = await response.json();
  const map = $("map");
  map.setAttribute("class", `level-${level}`);
  const counts = new Map(data.areas.map((a) => [a.code, a.count]));
  const numbers = data.areas.map((a) => a.count).filter((c) => typeof c === "number");
  const max = Math.max(1, ...numbers);
  const colour = (count) => (count === 0 ? "#eef1f3" : PALETTE[Math.min(PALETTE.length - 1, Math.floor((count / max) * (PALETTE.length - 1)))]);
  for (const path of map.querySelectorAll("path.buurt")) {
    const code = level === "wijk" ? path.dataset.wijk : path.dataset.code;
    const count = counts.has(code) ? counts.get(code) : 0;
    path.classList.toggle("hidden", typeof count !== "number");
    path.style.fill = typeof count === "number" ? colour(count) : "";
    path.dataset.count = count;
    path.querySelector("title").textContent = `${path.dataset.name}: ${count}`;
  }
  for (const path of map.querySelectorAll("path.wijk")) {
    const count = counts.has(path.dataset.code) ? counts.get(path.dataset.code) : 0;
    path.dataset.count = count;
    path.querySelector("title").textContent = `${path.dataset.name}: ${count}`;
  }
  $("map-total").textContent = data.total;
  $("map-legend").innerHTML =
    `<span><i style="background:#eef1f3"></i>0</span>` +
    // Each colour in use, labelled with the least count it stands for.
    PALETTE.map((c, i) => [c, Math.max(1, Math.ceil((i * max) / (PALETTE.length - 1)))])
      .filter(([c, n]) => colour(n) === c)
      .map(([c, n]) => `<span><i style="background:${c}"></i>${n}</span>`).join("") +
    `<span><i class="hatch" style="background:repeating-linear-gradient(45deg,#ccc 0 2px,#fff 2px 4px)"></i>&lt;5 / x</span>`;
}

function setupMap() {
  const map = $("map");
  const defs = document.createElementNS(SVG, "defs");
  defs.innerHTML = '<pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="4" height="4" fill="#fff"/><rect width="2" height="4" fill="#c9ced3"/></pattern>';
  map.prepend(defs);
  map.addEventListener("mouseover", (e) => {
    const path = e.target.closest("path");
    if (path) $("map-hover").textContent = `${path.dataset.name}: ${path.dataset.count ?? "–"}`;
  });
  for (const id of ["map-period", "map-level", "map-category"]) $(id).addEventListener("change", loadMap);
}

function connect() {
  const source = new EventSource("/v1/overview/stream");
  source.addEventListener("overview", (message) => {
    const o = JSON.parse(message.data);
    const messages = renderKafka(o);
    renderNumbers(o);
    $("updated-at").textContent = new Date(o.at).toLocaleTimeString("nl-NL");
    $("connection").textContent = "live";
    if (messages !== lastIncidentMessages) {
      lastIncidentMessages = messages;
      loadMap();
    }
  });
  source.onerror = () => {
    $("connection").textContent = "verbinding verbroken, opnieuw verbinden…";
  };
}

setupMap();
loadMap();
connect();
