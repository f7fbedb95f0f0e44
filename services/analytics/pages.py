"""The pages: the live ops dashboard and the printable wijk report, served by analytics.

Everything comes from this service: the HTML, a small hand-written script and stylesheet
(``static/``) and the offline map of Haarlem (services/common/haarlem_map.py, which the
triage console shares). No CDN, no tile server: it works offline.

Browsers sign in once with ``/login?token=<staff token>``, which puts the token in an
HttpOnly, SameSite=Strict cookie and redirects to the dashboard without the token in the URL;
the page's requests and its EventSource (which cannot send headers) use the cookie.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from schemas import geo
from schemas.taxonomy import taxonomy
from services.analytics import api, stats
from services.common.haarlem_map import map_svg
from services.common.problems import Problem
from services.common.staff import STAFF_COOKIE, authenticate_staff

STATIC = Path(__file__).parent / "static"
COOKIE_SECONDS = 12 * 60 * 60

router = APIRouter(include_in_schema=False)


@router.get("/login")
async def login(
    request: Request, rt: api.Rt, token: str, next: str = "/dashboard"
) -> RedirectResponse:
    if await authenticate_staff(rt.pool, token) is None:
        raise Problem(401, "unauthenticated", "Missing or invalid staff token")
    # Only a path of this service: no open redirect.
    target = next if next.startswith("/") and not next.startswith("//") else "/dashboard"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        STAFF_COOKIE,
        token,
        max_age=COOKIE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/static/analytics/{name}")
async def static(name: str) -> FileResponse:
    path = STATIC / name
    if path.parent != STATIC or not path.is_file():
        raise Problem(404, "not-found", "Not found")
    return FileResponse(path, headers={"Cache-Control": "no-cache"})


# --- the dashboard ----------------------------------------------------------------------------


def _page(title: str, body: str, *, script: bool = False) -> HTMLResponse:
    tail = '<script src="/static/analytics/dashboard.js"></script>' if script else ""
    return HTMLResponse(
        f"""<!doctype html>
<html lang="nl"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="/static/analytics/dashboard.css">
</head><body>{body}{tail}</body></html>""",
        headers={"Cache-Control": "no-store"},
    )


def _options(values: list[tuple[str, str]], selected: str | None = None) -> str:
    return "".join(
        f'<option value="{html.escape(v)}"{" selected" if v == selected else ""}>'
        f"{html.escape(label)}</option>"
        for v, label in values
    )


@router.get("/dashboard")
async def dashboard(staff: api.StaffMember) -> HTMLResponse:
    exact = api.exact_for(staff)
    month = stats.current_month()
    year = str(month.calendar_year)
    quarter = f"{year}-Q{(int(month.label[5:]) - 1) // 3 + 1}"
    calendar = [
        (month.label, "deze maand"),
        (month.previous().label, "vorige maand"),
        (quarter, "dit kwartaal"),
        (year, "dit jaar"),
    ]
    windows = [("24h", "laatste 24 uur"), ("7d", "laatste 7 dagen"), ("30d", "30 dagen")]
    periods = [*windows, *calendar] if exact else calendar
    categories = [("*", "alle categorieën")] + [(c.code, c.label_nl) for c in taxonomy().categories]
    levels = _options([("wijk", "wijken"), ("buurt", "buurten")])
    notice = (
        "exacte aantallen (rol ops)"
        if exact
        else f"rol {staff.role}: aantallen onder 5 als &lt;5, x = verborgen ter bescherming"
    )
    body = f"""
<header>
  <h1>Veilig Haarlem — ops dashboard</h1>
  <p class="meta"><span id="role" data-exact="{str(exact).lower()}">{notice}</span>
   · bijgewerkt <span id="updated-at">&ndash;</span> · <span id="connection">verbinden…</span></p>
</header>
<main>
<section class="cards">
  <div class="card"><h2>Doorvoer (berichten/s)</h2><table id="throughput"></table>
    <svg id="throughput-spark" viewBox="0 0 300 40" preserveAspectRatio="none"></svg></div>
  <div class="card"><h2>Open meldingen</h2><p class="big" id="backlog-total">&ndash;</p>
    <table id="backlog"></table></div>
  <div class="card"><h2>SLA</h2><table id="sla"></table></div>
  <div class="card"><h2>Bezorging <small id="deliveries-period"></small></h2>
    <table id="deliveries"></table></div>
</section>
<section class="row">
  <div class="card wide"><h2>Incidenten op de kaart</h2>
    <form id="map-controls">
      <label>periode <select id="map-period">{_options(periods)}</select></label>
      <label>niveau <select id="map-level">{levels}</select></label>
      <label>categorie <select id="map-category">{_options(categories)}</select></label>
    </form>
    <div class="map-wrap">{map_svg()}<div id="map-legend"></div></div>
    <p class="meta">totaal <span id="map-total">&ndash;</span> ·
      <span id="map-hover">wijs een gebied aan</span></p>
  </div>
  <div class="card"><h2>Verloop</h2><div id="charts"></div>
    <h2>Wijkrapport</h2>
    <form action="/reports/wijk" method="get" id="report-form">
      <select name="wijk">{_options(list(geo.wijk_names().items()))}</select>
      <select name="period">{_options(calendar)}</select>
      <button type="submit">toon</button>
    </form>
  </div>
</section>
<section class="card"><h2>Consumer lag per service en partitie</h2>
  <table id="lag"></table></section>
</main>"""
    return _page("Veilig Haarlem — dashboard", body, script=True)


# --- the printable wijk report ----------------------------------------------------------------


def _cell(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "&ndash;"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} uur"


@router.get("/reports/wijk")
async def report_form(
    wijk: str, staff: api.StaffMember, period: api.PeriodText = None
) -> RedirectResponse:
    """The dashboard's report form lands here; the report has a stable URL per wijk."""
    query = f"?period={period}" if period else ""
    return RedirectResponse(f"/reports/wijk/{wijk}{query}", status_code=303)


@router.get("/reports/wijk/{wijk}")
async def report_page(
    wijk: str,
    rt: api.Rt,
    staff: api.StaffMember,
    period: Annotated[str | None, Query()] = None,
) -> HTMLResponse:
    report = await api.wijk_report(rt, staff, wijk, period)
    rows = "".join(
        f"<tr><td>{_cell(c.label)}</td><td class=n>{_cell(c.count)}</td>"
        f"<td class=n>{_cell(c.previous)}</td>"
        f"<td class=n>{'' if c.trend_percent is None else f'{c.trend_percent:+.1f}%'}</td></tr>"
        for c in report.categories
    )
    buurten = (
        "".join(
            f"<tr><td>{_cell(b.name)}</td><td>{_cell(b.code)}</td>"
            f"<td class=n>{_cell(b.count)}</td></tr>"
            for b in report.top_buurten
        )
        or '<tr><td colspan="3">geen meldingen</td></tr>'
    )
    times = "".join(
        f"<tr><td>{_cell(name.replace('_', ' '))}</td><td class=n>{_cell(d.n)}</td>"
        f"<td class=n>{_duration(d.p50)}</td><td class=n>{_duration(d.p90)}</td>"
        f"<td class=n>{_duration(d.p99)}</td></tr>"
        for name, d in report.response_times.seconds.items()
    )
    csv_link = f"/v1/reports/wijk/{report.wijk}.csv?period={report.period}"
    plan = _plan_html(report)
    note = (
        "Exacte aantallen (rol ops): niet buiten de organisatie verspreiden."
        if report.exact
        else "Aantallen onder 5 staan als &lt;5; x is verborgen om een klein aantal elders te "
        "beschermen. Zo is geen klein aantal terug te rekenen uit totalen."
    )
    body = f"""
<article class="report">
<header><h1>Wijkrapport {_cell(report.name)} <small>{_cell(report.wijk)}</small></h1>
<p class="meta">Periode {_cell(report.period)}, vergeleken met {_cell(report.previous_period)}
 · {note}</p>
<p class="noprint"><button onclick="window.print()">Afdrukken</button>
 <a href="{html.escape(csv_link)}">CSV</a> · <a href="/dashboard">dashboard</a></p></header>
<h2>Meldingen per categorie</h2>
<table><thead><tr><th>categorie</th><th>{_cell(report.period)}</th>
<th>{_cell(report.previous_period)}</th><th>trend</th></tr></thead>
<tbody>{rows}</tbody>
<tfoot><tr><th>totaal</th><th class=n>{_cell(report.total)}</th>
<th class=n>{_cell(report.previous_total)}</th><th></th></tr></tfoot></table>
<h2>Buurten met de meeste meldingen</h2>
<table><thead><tr><th>buurt</th><th>code</th><th>meldingen</th></tr></thead>
<tbody>{buurten}</tbody></table>
<h2>Reactietijden (vanaf ontvangst)</h2>
<table><thead><tr><th>tot</th><th>n</th><th>p50</th><th>p90</th><th>p99</th></tr></thead>
<tbody>{times}</tbody></table>
{plan}
</article>"""
    return _page(f"Wijkrapport {report.name} {report.period}", body)


def _plan_html(report: api.WijkReport) -> str:
    """The wijkveiligheidsplan's priorities: are they being handled?"""
    plan = report.plan
    if plan is None:
        return "<h2>Wijkveiligheidsplan</h2><p>Deze wijk heeft geen wijkveiligheidsplan.</p>"
    rows = "".join(
        f"<tr><td>{_cell(p.label)}</td><td class=n>{_cell(p.count)}</td>"
        f"<td class=n>{_cell(p.previous)}</td><td class=n>{_duration(p.acknowledge.p50)}</td>"
        f"<td class=n>{_duration(p.handle.p50)}</td><td class=n>{_cell(p.open)}</td></tr>"
        for p in plan.priorities
    )
    period = f"{plan.starts_on} tot en met {plan.ends_on or 'nader order'}"
    return f"""<h2>Wijkveiligheidsplan</h2>
<p class="meta">Vastgesteld door {_cell(plan.adopted_by)} op {_cell(str(plan.adopted_on))};
 loopt {_cell(period)}{"" if plan.runs_today else " (loopt nu niet)"}.</p>
<table><thead><tr><th>prioriteit</th><th>{_cell(report.period)}</th>
<th>{_cell(report.previous_period)}</th><th>mediaan tot bevestiging</th>
<th>mediaan tot afhandeling</th><th>nu open</th></tr></thead>
<tbody>{rows}</tbody></table>"""
