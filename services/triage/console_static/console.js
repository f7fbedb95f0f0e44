// The triage console: the live queue, one incident, and the actions, keyboard-first.
import { lang, switchLanguage, t, translate } from "./i18n.js";

const API = "/console/api";
const VIEWS = ["open", "needs_review", "unacknowledged", "sla_at_risk", "suspected_duplicates"];
const FILTERS = ["wijk", "buurt", "category", "partner", "priority", "status"];
const KEYS = ["j", "k", "Enter", "a", "c", "r", "p", "m", "x", "/", "?", "Escape"];
const REFRESH_MS = 3000;
const $ = (selector) => document.querySelector(selector);

const state = { me: null, ref: null, view: "open", items: [], counts: {}, selected: 0, incident: null, map: null };
let source = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

async function call(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(`${API}${path}`, init);
  if (response.status === 401) {
    location.assign("/console/signin");
    throw new Error("signed out");
  }
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(data?.detail || data?.title || response.statusText);
  return data;
}

// --- words and times ----------------------------------------------------------------------------

function categoryLabel(code) {
  const found = state.ref?.categories.find((c) => c.code === code);
  return found ? found[lang] : code;
}

function place(item) {
  const buurt = state.ref?.buurten.find((b) => b.code === item.buurt_code);
  return buurt ? `${buurt.name} (${buurt.wijk_name})` : item.wijk_code || "—";
}

function clock(iso) {
  return new Date(iso).toLocaleString(lang === "nl" ? "nl-NL" : "en-GB", {
    timeZone: "Europe/Amsterdam", day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit",
  });
}

function countdown(iso) {
  const seconds = Math.round((new Date(iso) - Date.now()) / 1000);
  const span = Math.abs(seconds);
  const text = span >= 3600 ? `${Math.floor(span / 3600)}u${String(Math.floor((span % 3600) / 60)).padStart(2, "0")}`
    : `${Math.floor(span / 60)}:${String(span % 60).padStart(2, "0")}`;
  return seconds < 0 ? { text: `${t("late")} (${text} ${t("ago")})`, cls: "late" }
    : { text: `${t("in")} ${text}`, cls: seconds < 300 ? "soon" : "" };
}

// The countdown ticks for the eye only: a screen reader reads the time, not a new number
// every second.
function deadlineCell(iso, done) {
  const cell = el("td", { "data-deadline": done ? null : iso });
  cell.append(el("time", { datetime: iso, text: clock(iso) }));
  if (!done) cell.append(" ", el("span", { class: "countdown", "aria-hidden": "true" }));
  return cell;
}

// When notify pages the next in an escalation chain (its timers, from its events): for an
// unacknowledged P1/P2 only; an acknowledgement stops the timers, and the countdown with them.
function escalationCell(item, urgent) {
  if (!urgent || !item.next_escalation_at) return el("td", { class: "escalation", text: "—" });
  const cell = deadlineCell(item.next_escalation_at, false);
  cell.classList.add("escalation");
  return cell;
}

function tick() {
  for (const cell of document.querySelectorAll("[data-deadline]")) {
    const { text, cls } = countdown(cell.dataset.deadline);
    const span = cell.querySelector(".countdown");
    span.textContent = text;
    span.className = `countdown ${cls}`;
  }
}

// --- the queue ----------------------------------------------------------------------------------

function filters() {
  const form = new FormData($("#filters"));
  const query = new URLSearchParams({ view: state.view });
  for (const name of FILTERS) if (form.get(name)) query.set(name, form.get(name));
  return query;
}

function listen() {
  source?.close();
  $("#live").textContent = t("connecting");
  source = new EventSource(`${API}/stream?${filters()}`);
  source.addEventListener("queue", (event) => {
    const data = JSON.parse(event.data);
    const current = state.items[state.selected]?.incident_id;
    state.items = data.items;
    state.counts = data.counts;
    renderSignals(data.signals || []);
    const kept = state.items.findIndex((item) => item.incident_id === current);
    state.selected = kept >= 0 ? kept : Math.min(state.selected, Math.max(0, state.items.length - 1));
    renderQueue();
  });
  source.addEventListener("open", () => {
    $("#live").textContent = t("live");
    $("#live").className = "live";
  });
  source.addEventListener("signed-out", () => location.assign("/console/signin"));
  source.addEventListener("error", async () => {
    $("#live").textContent = t("down");
    $("#live").className = "down";
    if (source.readyState === EventSource.CLOSED) {
      await call("/me"); // a refused session goes to the sign-in page
      setTimeout(listen, 2000);
    }
  });
}

function renderViews() {
  $("#views").replaceChildren(...VIEWS.map((view) => el("li", {},
    el("button", {
      type: "button", "aria-pressed": String(view === state.view), "data-view": view,
      onclick: () => { state.view = view; state.selected = 0; renderViews(); listen(); },
    }, t(`view.${view}`), el("span", { class: "count", text: String(state.counts[view] ?? "–") })))));
}

function renderQueue() {
  renderViews();
  const rows = state.items.map((item, index) => {
    const urgent = ["P1", "P2"].includes(item.effective_priority) && !item.acknowledged_at;
    const row = el("tr", {
      "data-id": item.incident_id, "aria-selected": String(index === state.selected), tabindex: "-1",
      onclick: () => { state.selected = index; open(item.incident_id); },
    },
    el("td", {}, el("span", { class: `prio ${item.effective_priority}`, text: item.effective_priority })),
    el("td", {}, el("a", { href: `/console/incidents/${item.incident_id}`, text: categoryLabel(item.category),
      onclick: (e) => { e.preventDefault(); open(item.incident_id); } }),
      item.needs_review ? el("span", { class: "tag", text: t("review") }) : null),
    el("td", { text: place(item) }),
    el("td", { text: item.partner }),
    el("td", { text: item.status + (item.owner ? ` · ${item.owner}` : "") }),
    el("td", { text: String(item.report_count) }),
    deadlineCell(item.acknowledge_by, !urgent),
    escalationCell(item, urgent),
    deadlineCell(item.handle_by, false));
    return row;
  });
  $("#queue tbody").replaceChildren(...rows);
  $("#queue-caption").textContent = `${t(`view.${state.view}`)}: ${state.items.length}`;
  $("#empty").hidden = state.items.length > 0;
  tick();
}

// Zorgsignalen: care-relevant reports that keep coming back to one spot (told to the Zorg- en
// Veiligheidshuis), beside the queue; each opens the incident that made the count.
function renderSignals(signals) {
  $("#signal-list").replaceChildren(...signals.map((signal) => el("li", {},
    el("a", { href: `/console/incidents/${signal.incident_id}`, text: place(signal),
      onclick: (e) => { e.preventDefault(); open(signal.incident_id); } }),
    ` · ${signal.categories.map(categoryLabel).join(", ")} · ${signal.incidents.length} `
      + `${t("signals.reports")} · ${clock(signal.raised_at)}`)));
  $("#signals-none").hidden = signals.length > 0;
}

function move(step) {
  if (!state.items.length) return;
  state.selected = Math.max(0, Math.min(state.items.length - 1, state.selected + step));
  for (const row of document.querySelectorAll("#queue tbody tr")) {
    row.setAttribute("aria-selected", String(Number(row.rowIndex - 1) === state.selected));
  }
  const row = document.querySelectorAll("#queue tbody tr")[state.selected];
  row.focus();
  row.scrollIntoView({ block: "nearest" });
}

// --- one incident -------------------------------------------------------------------------------

function describe(detail) {
  return Object.entries(detail).filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join("; ") : v}`).join(" · ");
}

async function reveal(id) {
  const body = await ask("contact", [field("ask.why", el("input", { name: "reason", required: true, minlength: "3" }))]);
  if (body === null) return;
  try {
    const reporter = await call(`/v1/incidents/${id}/contact`, body);
    const shown = el("dl", { class: "facts", id: "contact-details" }, ...["name", "phone", "email"].filter((k) => reporter[k])
      .flatMap((k) => [el("dt", { text: t(`contact.${k}`) }), el("dd", { text: reporter[k] })]));
    await open(id, false);
    $("#contact").prepend(shown);
  } catch (error) {
    $("#live").textContent = `${t("failed")}: ${error.message}`;
  }
}

function facts(pairs) {
  return el("dl", { class: "facts" }, ...pairs.flatMap(([name, value]) => [el("dt", { text: t(name) }), el("dd", {}, value)]));
}

function card(title, ...content) {
  return el("section", { class: "card" }, el("h3", { text: t(title) }), ...content);
}

// workflow action (what the API says is allowed) -> the console's buttons, with their keys.
const BUTTONS = {
  acknowledge: [["acknowledge", "a"]], reclassify: [["reclassify", "r"]], change_priority: [["priority", "p"]],
  merge: [["merge", "m"]], unmerge: [["unmerge"]], resolve: [["resolve", "x"]], reopen: [["reopen"]],
  assign: [["claim", "c"], ["assign"]], start: [["start"]], hold: [["hold"]], cancel: [["cancel"]],
};

function offered(incident) {
  return incident.actions.flatMap((action) => BUTTONS[action] ?? []);
}

function actionButtons(incident) {
  const buttons = offered(incident);
  if (!buttons.length) return null;
  return el("div", { class: "actions", role: "group", "aria-label": t("incident.actions") },
    ...buttons.map(([action, key]) => el("button", {
      type: "button", "aria-keyshortcuts": key, "data-action": action,
      onclick: () => act(action, incident.incident_id), text: t(`action.${action}`),
    })));
}

// The offline map of Haarlem with the incident on it (drawn by triage: a pin on its point,
// else its buurt highlighted), fetched once per incident and kept across refreshes.
async function showMap(holder, incident) {
  if (state.map?.id !== incident.incident_id) {
    const response = await fetch(`${API}/incidents/${incident.incident_id}/map`);
    const svg = response.ok
      ? new DOMParser().parseFromString(await response.text(), "image/svg+xml").documentElement : null;
    state.map = { id: incident.incident_id, node: svg && document.importNode(svg, true) };
  }
  const { node } = state.map;
  const exact = Boolean(node?.querySelector(".pin"));
  node?.setAttribute("aria-label", `${t(exact ? "map.point" : "map.buurt")}: ${place(incident)}`);
  holder.replaceChildren(...[node, el("p", { class: "hint", text: t(node ? (exact ? "map.point" : "map.buurt") : "map.none") })].filter(Boolean));
}

// The routing decision: every rule checked for the current decision (as `veilig routes test`
// prints it), which matched and why, whom each added with which profile.
function routingCard(incident) {
  if (!incident.routing) return card("incident.routing", el("p", { text: t("routing.unknown") }));
  const matched = incident.routing.filter((step) => step.matched);
  const outcome = (step) => t(step.matched ? (step.continued ? "routing.continue" : "routing.match") : "routing.miss");
  return card("incident.routing",
    el("p", { id: "routing-summary", text: matched.length ? `${t("routing.decided")}: ${matched.map((step) => step.rule).join(", ")}` : t("routing.none") }),
    el("table", { id: "routing" },
      el("caption", { class: "sr-only", text: t("incident.routing") }),
      el("thead", {}, el("tr", {}, ...["rule", "outcome", "why", "added"].map((h) => el("th", { scope: "col", text: t(`routing.${h}`) })))),
      el("tbody", {}, ...incident.routing.map((step) => el("tr", { "data-rule": step.rule, class: step.matched ? "matched" : null },
        el("td", { text: `${step.index}. ${step.rule}` }),
        el("td", { text: outcome(step) }),
        el("td", {}, step.why, step.notes.length ? el("ul", {}, ...step.notes.map((note) => el("li", { text: note }))) : null),
        el("td", { text: step.added.map((r) => `${r.code} (${r.profile})`).join(", ") || "—" }))))));
}

function renderIncident(incident, focus = true) {
  const view = $("#incident-view");
  const history = el("table", {},
    el("caption", { class: "sr-only", text: t("incident.history") }),
    el("thead", {}, el("tr", {}, ...["when", "kind", "actor", "detail"].map((h) => el("th", { scope: "col", text: t(`incident.${h}`) })))),
    el("tbody", {}, ...incident.history.map((h) => el("tr", {},
      el("td", {}, el("time", { datetime: h.at, text: clock(h.at) })),
      el("td", { text: h.kind }),
      el("td", { text: h.actor ?? t("incident.platform") }),
      el("td", { text: describe(h.detail) })))));
  const notifications = el("table", {},
    el("caption", { class: "sr-only", text: t("incident.notifications") }),
    el("thead", {}, el("tr", {}, ...["recipient", "type", "state", "attempts", "ack", "escalated"].map((h) => el("th", { scope: "col", text: t(`note.${h}`) })))),
    el("tbody", {}, ...incident.notifications.map((n) => el("tr", { "data-recipient": n.recipient },
      el("td", { text: n.recipient }),
      el("td", { text: [n.msg_type, n.channel].filter(Boolean).join(" · ") }),
      el("td", { class: `state ${n.state}`, text: t(`state.${n.state}`) + (n.last_error ? ` (${n.last_error})` : "") }),
      el("td", { text: String(n.attempts) }),
      n.acknowledged_at ? el("td", { text: `${clock(n.acknowledged_at)}${n.acknowledged_by ? ` — ${n.acknowledged_by}` : ""}` })
        : n.acknowledge_by && !incident.acknowledged_at && state.ref.statuses.includes(incident.status)
          ? deadlineCell(n.acknowledge_by, false) : el("td", { text: "—" }),
      el("td", { text: n.escalated_to.join(", ") || "—" })))));
  const merged = incident.merged_reports.map((m) => el("li", {},
    el("time", { datetime: m.occurred_at, text: clock(m.occurred_at) }), ` ${m.partner}: ${m.description}`));
  const contact = el("div", { id: "contact" },
    incident.has_contact && state.me?.may_act
      ? el("button", { type: "button", "data-action": "contact", onclick: () => reveal(incident.incident_id), text: t("action.contact") })
      : el("p", { text: t(incident.has_contact ? "contact.hidden" : "contact.none") }),
    incident.contact_reveals.length ? el("ul", {}, ...incident.contact_reveals.map((r) => el("li", { text: `${clock(r.at)} ${r.actor}: ${r.reason}` }))) : null);
  const location = incident.location;
  const map = el("div", { id: "incident-map" });
  showMap(map, incident);
  view.replaceChildren(...[
    el("p", {}, el("a", { href: "/console/", text: `← ${t("incident.back")}`, onclick: (e) => { e.preventDefault(); showQueue(); } })),
    el("h2", { id: "incident-title", tabindex: "-1" },
      el("span", { class: `prio ${incident.effective_priority}`, text: incident.effective_priority }), " ",
      categoryLabel(incident.category), " — ", place(incident)),
    actionButtons(incident),
    el("div", { class: "incident" },
      el("div", {},
        card("incident.report",
          el("p", { text: incident.description }),
          facts([
            ["incident.partner", incident.partner],
            ["incident.received", clock(incident.received_at)],
            ["incident.location", [location.address_text, location.buurt_code, location.lat && `${location.lat.toFixed(5)}, ${location.lon.toFixed(5)}`].filter(Boolean).join(" · ")],
            ["incident.status", incident.status + (incident.status === "on_hold" && incident.resume_at ? ` — ${t("incident.resume")} ${clock(incident.resume_at)}` : "")],
            ["incident.owner", incident.owner ?? "—"],
          ]),
          el("h4", { text: t("incident.contact") }), contact),
        card("incident.map", map),
        merged.length ? card("incident.merged", el("ul", {}, ...merged)) : null,
        card("incident.notifications", incident.notifications.length ? notifications : el("p", { text: t("incident.none") })),
        card("incident.history", history)),
      el("div", {},
        card("incident.decision",
          facts([
            ["incident.category", categoryLabel(incident.category)],
            ["incident.priority", `${incident.effective_priority}${incident.priority ? "" : " (—)"}`],
            ["incident.confidence", `${Math.round(incident.confidence * 100)}%`],
            ["incident.deadlines", `${t("col.ack")} ${clock(incident.acknowledge_by)} · ${t("col.handle")} ${clock(incident.handle_by)}`],
          ]),
          el("h4", { text: t("incident.reasons") }),
          el("ul", {}, ...incident.reasons.map((reason) => el("li", { text: reason }))),
          el("h4", { text: t("incident.top3") }),
          el("ol", {}, ...incident.top_categories.map((c) => el("li", { text: `${categoryLabel(c.category ?? c.code)} ${Math.round((c.score ?? c.probability ?? 0) * 100)}%` })))),
        card("incident.recipients",
          el("ul", {}, ...incident.recipients.map((r) => el("li", { text: `${r.code}${r.profile ? ` (${r.profile})` : ""}` })))),
        routingCard(incident)))].filter(Boolean));
  view.hidden = false;
  $("#queue-view").hidden = true;
  if (focus) $("#incident-title").focus();
}

// An open incident follows what notify and colleagues do (messages, history) every few
// seconds; a dialog in use is left alone.
async function refreshIncident() {
  if (!state.incident || document.querySelector("dialog[open]")) return;
  const fresh = await call(`/v1/incidents/${state.incident.incident_id}`);
  if (JSON.stringify(fresh) === JSON.stringify(state.incident) || !state.incident) return;
  const kept = $("#contact-details");
  state.incident = fresh;
  renderIncident(fresh, false);
  if (kept) $("#contact").prepend(kept);
}

async function open(id, push = true) {
  state.incident = await call(`/v1/incidents/${id}`);
  if (push) history.pushState({ id }, "", `/console/incidents/${id}`);
  renderIncident(state.incident);
}

function showQueue(push = true) {
  state.incident = null;
  if (push) history.pushState({}, "", "/console/");
  $("#incident-view").hidden = true;
  $("#queue-view").hidden = false;
  renderQueue();
  document.querySelectorAll("#queue tbody tr")[state.selected]?.focus();
}

// --- actions ------------------------------------------------------------------------------------

function field(label, control) {
  return el("label", {}, el("span", { text: t(label) }), control);
}

function choice(name, options, current) {
  return el("select", { name, required: true }, ...options.map(([value, text]) => el("option", { value, selected: value === current, text })));
}

const FORMS = {
  acknowledge: () => null,
  reclassify: (it) => [field("ask.category", choice("category", state.ref.categories.map((c) => [c.code, c[lang]]), it.category)),
    field("ask.reason", el("input", { name: "reason" }))],
  priority: (it) => [field("ask.priority", choice("priority", state.ref.priorities.map((p) => [p, p]), it.effective_priority)),
    field("ask.reason", el("input", { name: "reason" }))],
  merge: (it) => [field("ask.into", choice("into", state.items.filter((o) => o.incident_id !== it.incident_id)
    .map((o) => [o.incident_id, `${o.effective_priority} ${categoryLabel(o.category)} — ${place(o)} ${clock(o.occurred_at)}`]))),
  field("ask.reason", el("input", { name: "reason" }))],
  resolve: () => [field("ask.outcome", choice("outcome", state.ref.outcomes.map((o) => [o, t(`outcome.${o}`)]))),
    field("ask.note", el("textarea", { name: "note", rows: "3" }))],
  reopen: () => [field("ask.reason", el("input", { name: "reason" }))],
  unmerge: () => [field("ask.reason", el("input", { name: "reason" }))],
  claim: () => null,
  assign: async (it) => [field("ask.owner", choice("owner", (await call("/colleagues"))
    .filter((c) => c.username !== it.owner).map((c) => [c.username, `${c.username} (${c.role})`]))),
  field("ask.reason", el("input", { name: "reason" }))],
  start: () => [field("ask.reason", el("input", { name: "reason" }))],
  hold: () => [field("ask.waitfor", el("input", { name: "reason", required: true, minlength: "3" })),
    field("ask.resume", el("input", { name: "resume_at", type: "datetime-local", required: true }))],
  cancel: () => [field("ask.why", el("input", { name: "reason", required: true, minlength: "3" }))],
};

// What a form holds, as the API wants it (a local time from datetime-local as an instant).
function payload(data) {
  if (data.resume_at) data.resume_at = new Date(data.resume_at).toISOString();
  return data;
}

function ask(action, fields) {
  return new Promise((resolve) => {
    const dialog = $("#ask");
    $("#ask-title").textContent = t(`action.${action}`).replace(/ \(.\)$/, "");
    $("#ask-fields").replaceChildren(...fields);
    $("#ask-error").textContent = "";
    const done = (value) => { dialog.close(); resolve(value); };
    $("#ask-form").onsubmit = (event) => {
      event.preventDefault();
      const data = Object.fromEntries(new FormData($("#ask-form")));
      for (const [name, value] of Object.entries(data)) if (value === "") delete data[name];
      done(data);
    };
    $("#ask-cancel").onclick = () => done(null);
    dialog.oncancel = () => resolve(null);
    dialog.showModal();
    dialog.querySelector("select, input, textarea")?.focus();
  });
}


async function act(action, id) {
  if (!state.me?.may_act || !id) return;
  if (state.incident && !offered(state.incident).some(([name]) => name === action)) return;
  const subject = state.incident?.incident_id === id ? state.incident : state.items.find((it) => it.incident_id === id);
  const fields = await FORMS[action](subject);
  const body = fields ? await ask(action, fields) : {};
  if (body === null) return;
  payload(body);
  try {
    await call(`/v1/incidents/${id}/${action}`, body);
    $("#live").textContent = `${t("done")}: ${t(`action.${action}`).replace(/ \(.\)$/, "")}`;
    if (state.incident) await open(id, false);
  } catch (error) {
    $("#live").textContent = `${t("failed")}: ${error.message}`;
  }
}

// --- keys ---------------------------------------------------------------------------------------

function keyMap() {
  $("#keymap").replaceChildren(...KEYS.flatMap((key) => [el("dt", {}, el("kbd", { text: key })), el("dd", { text: t(`key.${key}`) })]));
  $("#keys").showModal();
}

function current() {
  return state.incident?.incident_id ?? state.items[state.selected]?.incident_id;
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (document.querySelector("dialog[open]")) return;
  if (event.target.closest("input, select, textarea")) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  const onQueue = !state.incident;
  const handlers = {
    j: () => onQueue && move(1),
    k: () => onQueue && move(-1),
    Enter: () => onQueue && current() && open(current()),
    Escape: () => !onQueue && showQueue(),
    "/": () => $("#filters select").focus(),
    "?": keyMap,
    a: () => act("acknowledge", current()),
    r: () => act("reclassify", current()),
    p: () => act("priority", current()),
    m: () => act("merge", current()),
    x: () => act("resolve", current()),
    c: () => act("claim", current()),
  };
  const handler = handlers[event.key];
  if (handler && !(event.key === "Enter" && event.target.closest("button, a"))) {
    event.preventDefault();
    handler();
  }
}

// --- start --------------------------------------------------------------------------------------

function fillFilters() {
  const all = [["", t("filter.all")]];
  const wijken = [...new Map(state.ref.buurten.map((b) => [b.wijk, b.wijk_name]))];
  const options = {
    wijk: wijken.map(([code, name]) => [code, `${name} (${code})`]),
    buurt: state.ref.buurten.map((b) => [b.code, b.name]),
    category: state.ref.categories.map((c) => [c.code, c[lang]]),
    priority: state.ref.priorities.map((p) => [p, p]),
    status: state.ref.statuses.map((s) => [s, s]),
  };
  for (const [name, values] of Object.entries(options)) {
    const select = $(`#filters [name=${name}]`);
    const chosen = select.value;
    select.replaceChildren(...[...all, ...values].map(([value, text]) => el("option", { value, selected: value === chosen, text })));
  }
}

async function start() {
  translate();
  // Signing out works from the first moment, before the page has what it needs to show.
  $("#signout").addEventListener("click", async () => {
    source?.close();
    await call("/signout", {});
    location.assign("/console/signin");
  });
  [state.me, state.ref] = await Promise.all([call("/me"), call("/reference")]);
  $("#who").textContent = `${state.me.username} (${state.me.role})`;
  fillFilters();
  $("#filters").addEventListener("change", () => { state.selected = 0; listen(); });
  $("#filters").addEventListener("reset", () => setTimeout(() => listen(), 0));
  $("#lang").addEventListener("click", () => switchLanguage(() => {
    $("#live").textContent = t(source?.readyState === EventSource.OPEN ? "live" : "connecting");
    fillFilters();
    state.incident ? renderIncident(state.incident) : renderQueue();
  }));
  $("#help").addEventListener("click", keyMap);
  document.addEventListener("keydown", onKey);
  window.addEventListener("popstate", () => {
    const match = location.pathname.match(/^\/console\/incidents\/([0-9a-f-]{36})$/);
    match ? open(match[1], false) : showQueue(false);
  });
  renderQueue();
  listen();
  setInterval(tick, 1000);
  setInterval(refreshIncident, REFRESH_MS);
  const match = location.pathname.match(/^\/console\/incidents\/([0-9a-f-]{36})$/);
  if (match) await open(match[1], false);
}

start();
