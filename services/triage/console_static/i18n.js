// Interface text in Dutch (the default) and English; the choice is kept in this browser.
const TEXT = {
  nl: {
    "lang.other": "English", "skip": "Naar de inhoud", "title": "Triageconsole",
    "connecting": "Verbinden…", "live": "live", "down": "verbinding weg, opnieuw…",
    "signout": "Afmelden", "close": "Sluiten", "ok": "Uitvoeren", "cancel": "Annuleren",
    "signin.title": "Aanmelden bij de triageconsole", "signin.token": "Persoonlijke staff-token",
    "signin.submit": "Aanmelden", "signin.failed": "Aanmelden mislukt: onbekend, gebruikt of verlopen.",
    "signin.link": "Aanmelden met de eenmalige link…",
    "signin.hint": "Of open de eenmalige aanmeldlink die veilig staff link GEBRUIKER maakt.",
    "queue.title": "Wachtrij", "queue.views": "Weergaven", "queue.empty": "Niets in deze weergave.",
    "signals.title": "Zorgsignalen (30 dagen)", "signals.none": "Geen zorgsignalen.",
    "signals.reports": "meldingen op één plek",
    "view.open": "Alles open", "view.needs_review": "Te beoordelen",
    "view.unacknowledged": "P1/P2 onbevestigd", "view.sla_at_risk": "Deadline in gevaar",
    "view.suspected_duplicates": "Mogelijke dubbele",
    "filter.wijk": "Wijk", "filter.buurt": "Buurt", "filter.category": "Categorie",
    "filter.partner": "Partner", "filter.priority": "Prioriteit", "filter.status": "Status",
    "filter.clear": "Wissen", "filter.all": "alle",
    "col.priority": "Prio", "col.category": "Categorie", "col.where": "Waar",
    "col.partner": "Partner", "col.status": "Status", "col.reports": "Meldingen",
    "col.ack": "Bevestigen vóór", "col.escalation": "Volgende escalatie", "col.handle": "Afhandelen vóór",
    "late": "verlopen", "in": "over", "review": "beoordelen", "ago": "geleden",
    "keys.button": "Toetsen (?)", "keys.title": "Toetsen",
    "key.j": "volgende", "key.k": "vorige", "key.Enter": "openen", "key.a": "bevestigen",
    "key.r": "herclassificeren", "key.p": "prioriteit", "key.m": "samenvoegen",
    "key.x": "afhandelen", "key./": "filter", "key.?": "deze lijst", "key.Escape": "terug / sluiten",
    "incident.back": "Terug naar de wachtrij", "incident.report": "Melding",
    "incident.decision": "Classificatie", "incident.reasons": "Redenen",
    "incident.top3": "Top 3 van de classificeerder", "incident.recipients": "Ontvangers",
    "incident.history": "Geschiedenis", "incident.merged": "Samengevoegde meldingen",
    "incident.when": "Tijd", "incident.kind": "Wat", "incident.actor": "Wie", "incident.detail": "Details",
    "incident.platform": "platform", "incident.location": "Locatie", "incident.received": "Ontvangen",
    "incident.confidence": "Zekerheid", "incident.status": "Status", "incident.priority": "Prioriteit",
    "incident.category": "Categorie", "incident.partner": "Partner", "incident.deadlines": "Deadlines",
    "action.acknowledge": "Bevestigen (a)", "action.reclassify": "Herclassificeren (r)",
    "action.priority": "Prioriteit (p)", "action.merge": "Samenvoegen (m)",
    "action.resolve": "Afhandelen (x)", "action.reopen": "Heropenen", "action.unmerge": "Splitsen",
    "action.claim": "Oppakken (c)", "action.assign": "Toewijzen", "action.start": "Starten",
    "action.hold": "In de wacht", "action.cancel": "Intrekken", "incident.actions": "Acties",
    "ask.owner": "Aan (collega)", "ask.waitfor": "Waarop wordt gewacht?", "ask.resume": "Hervatten uiterlijk",
    "incident.resume": "hervatten", "incident.owner": "Eigenaar", "key.c": "oppakken",
    "ask.category": "Nieuwe categorie", "ask.priority": "Nieuwe prioriteit", "ask.reason": "Reden",
    "ask.into": "Samenvoegen met (eerder incident)", "ask.outcome": "Uitkomst", "ask.note": "Notitie",
    "done": "Gedaan", "failed": "Mislukt",
    "incident.notifications": "Berichten", "incident.none": "Geen.", "incident.contact": "Contact melder",
    "note.recipient": "Ontvanger", "note.type": "Soort", "note.state": "Status", "note.attempts": "Pogingen",
    "note.ack": "Bevestigd / vóór", "note.escalated": "Geëscaleerd naar",
    "state.pending": "wacht", "state.dispatched": "verstuurd", "state.delivered": "afgeleverd",
    "state.retrying": "opnieuw", "state.failed": "mislukt", "state.acknowledged": "bevestigd",
    "action.contact": "Contactgegevens tonen…", "ask.why": "Waarom zijn ze nodig? (wordt vastgelegd)",
    "contact.hidden": "Alleen voor triage en beheer.", "contact.none": "De melder liet geen contactgegevens achter.",
    "contact.name": "Naam", "contact.phone": "Telefoon", "contact.email": "E-mail",
    "outcome.handled": "afgehandeld", "outcome.no_action_needed": "geen actie nodig",
    "outcome.referred": "doorverwezen", "outcome.unfounded": "ongegrond",
    "incident.map": "Op de kaart", "map.point": "Exacte plek van de melding",
    "map.buurt": "Buurt van de melding (geen exacte plek bekend)", "map.none": "Niet op de kaart: geen plek in Haarlem bekend.",
    "incident.routing": "Routering", "routing.decided": "Ontvangers gekozen door regel",
    "routing.none": "Geen regel koos ontvangers: de melding wacht in de triagewachtrij.",
    "routing.unknown": "Niet bewaard: besloten voordat triage de routering bijhield.",
    "routing.rule": "Regel", "routing.outcome": "Uitkomst", "routing.why": "Waarom", "routing.added": "Ontvangers (profiel)",
    "routing.match": "past", "routing.continue": "past, verder", "routing.miss": "past niet",
  },
  en: {
    "lang.other": "Nederlands", "skip": "Skip to content", "title": "Triage console",
    "connecting": "Connecting…", "live": "live", "down": "connection lost, retrying…",
    "signout": "Sign out", "close": "Close", "ok": "Do it", "cancel": "Cancel",
    "signin.title": "Sign in to the triage console", "signin.token": "Personal staff token",
    "signin.submit": "Sign in", "signin.failed": "Sign-in failed: unknown, used or expired.",
    "signin.link": "Signing in with the one-time link…",
    "signin.hint": "Or open the one-time sign-in link that veilig staff link USER makes.",
    "queue.title": "Queue", "queue.views": "Views", "queue.empty": "Nothing in this view.",
    "signals.title": "Care signals (30 days)", "signals.none": "No care signals.",
    "signals.reports": "reports at one spot",
    "view.open": "All open", "view.needs_review": "Needs review",
    "view.unacknowledged": "P1/P2 unacknowledged", "view.sla_at_risk": "Deadline at risk",
    "view.suspected_duplicates": "Suspected duplicates",
    "filter.wijk": "Wijk", "filter.buurt": "Buurt", "filter.category": "Category",
    "filter.partner": "Partner", "filter.priority": "Priority", "filter.status": "Status",
    "filter.clear": "Clear", "filter.all": "all",
    "col.priority": "Prio", "col.category": "Category", "col.where": "Where",
    "col.partner": "Partner", "col.status": "Status", "col.reports": "Reports",
    "col.ack": "Acknowledge by", "col.escalation": "Next escalation", "col.handle": "Handle by",
    "late": "missed", "in": "in", "review": "review", "ago": "ago",
    "keys.button": "Keys (?)", "keys.title": "Keys",
    "key.j": "next", "key.k": "previous", "key.Enter": "open", "key.a": "acknowledge",
    "key.r": "reclassify", "key.p": "priority", "key.m": "merge",
    "key.x": "resolve", "key./": "filter", "key.?": "this list", "key.Escape": "back / close",
    "incident.back": "Back to the queue", "incident.report": "Report",
    "incident.decision": "Classification", "incident.reasons": "Reasons",
    "incident.top3": "Classifier's top 3", "incident.recipients": "Recipients",
    "incident.history": "History", "incident.merged": "Merged reports",
    "incident.when": "Time", "incident.kind": "What", "incident.actor": "Who", "incident.detail": "Details",
    "incident.platform": "platform", "incident.location": "Location", "incident.received": "Received",
    "incident.confidence": "Confidence", "incident.status": "Status", "incident.priority": "Priority",
    "incident.category": "Category", "incident.partner": "Partner", "incident.deadlines": "Deadlines",
    "action.acknowledge": "Acknowledge (a)", "action.reclassify": "Reclassify (r)",
    "action.priority": "Priority (p)", "action.merge": "Merge (m)",
    "action.resolve": "Resolve (x)", "action.reopen": "Reopen", "action.unmerge": "Unmerge",
    "action.claim": "Claim (c)", "action.assign": "Assign", "action.start": "Start",
    "action.hold": "Hold", "action.cancel": "Call off", "incident.actions": "Actions",
    "ask.owner": "To (colleague)", "ask.waitfor": "Waiting for what?", "ask.resume": "Resume at the latest",
    "incident.resume": "resume", "incident.owner": "Owner", "key.c": "claim",
    "ask.category": "New category", "ask.priority": "New priority", "ask.reason": "Reason",
    "ask.into": "Merge into (earlier incident)", "ask.outcome": "Outcome", "ask.note": "Note",
    "done": "Done", "failed": "Failed",
    "incident.notifications": "Messages", "incident.none": "None.", "incident.contact": "Reporter contact",
    "note.recipient": "Recipient", "note.type": "Type", "note.state": "State", "note.attempts": "Attempts",
    "note.ack": "Acknowledged / by", "note.escalated": "Escalated to",
    "state.pending": "pending", "state.dispatched": "sent", "state.delivered": "delivered",
    "state.retrying": "retrying", "state.failed": "failed", "state.acknowledged": "acknowledged",
    "action.contact": "Show contact details…", "ask.why": "Why are they needed? (recorded)",
    "contact.hidden": "Only for triage and admin.", "contact.none": "The reporter left no contact details.",
    "contact.name": "Name", "contact.phone": "Phone", "contact.email": "E-mail",
    "outcome.handled": "handled", "outcome.no_action_needed": "no action needed",
    "outcome.referred": "referred", "outcome.unfounded": "unfounded",
    "incident.map": "On the map", "map.point": "Exact place of the report",
    "map.buurt": "Buurt of the report (no exact place known)", "map.none": "Not on the map: no place in Haarlem known.",
    "incident.routing": "Routing", "routing.decided": "Recipients chosen by rule",
    "routing.none": "No rule chose recipients: the report waits in the triage queue.",
    "routing.unknown": "Not kept: decided before triage kept the routing.",
    "routing.rule": "Rule", "routing.outcome": "Outcome", "routing.why": "Why", "routing.added": "Recipients (profile)",
    "routing.match": "matches", "routing.continue": "matches, continue", "routing.miss": "no match",
  },
};

export let lang = localStorage.getItem("veilig-lang") === "en" ? "en" : "nl";

export function t(key) {
  return TEXT[lang][key] ?? key;
}

// Fill every [data-t] element (and [data-t-label] aria-label) and the switch button.
export function translate(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  for (const el of root.querySelectorAll("[data-t-label]")) el.setAttribute("aria-label", t(el.dataset.tLabel));
  const other = document.getElementById("lang");
  if (other) {
    other.textContent = t("lang.other");
    other.lang = lang === "nl" ? "en" : "nl";
  }
}

export function switchLanguage(onChange) {
  lang = lang === "nl" ? "en" : "nl";
  localStorage.setItem("veilig-lang", lang);
  translate();
  onChange?.();
}
