// 수익 (profit): per-day P&L from GET /api/portfolio/daily as a chart (bars: the day's P&L,
// realised plus the change in unrealised; line: equity) and a month calendar, with realised
// and unrealised P&L, commission and tax paid over the range.

import { get, qs } from "../api.js";
import { dateInput, isIsoDate } from "../components/date-input.js";
import { h, replace, table } from "../dom.js";
import { errorBox, errorText, field, showBox } from "../forms.js";
import { day, dir, isoDate, num, signedWon, won } from "../format.js";
import { t } from "../i18n.js";
import { dailyChart } from "../charts.js";

/** "+1,200" / "-300" / "0": a signed figure without the unit (the calendar says it once). */
function signedNum(n) {
  return (n > 0 ? "+" : "") + num(n);
}

/** Days with their P&L: realised + the change in unrealised since the previous listed day. */
export function withPnl(days) {
  let prev = 0;
  return days.map((d) => {
    const pnl = d.realized + (d.unrealized - prev);
    prev = d.unrealized;
    return { ...d, pnl };
  });
}

function stat(label, value, key, cls = "") {
  return h("div", { class: "card stat", dataset: { stat: key } },
    h("span", { class: "label" }, label),
    h("span", { class: `value ${cls}`, dataset: { value: key } }, value));
}

export function mount(el) {
  const today = isoDate();
  const fromInput = dateInput(isoDate(new Date(Date.now() - 90 * 86400_000)));
  const toInput = dateInput(today);
  const box = errorBox();
  const statsEl = h("div", { class: "stats-row" });
  const chartEl = h("div", { class: "chart-box", dataset: { chart: "daily" } });
  const calendarEl = h("div", { class: "calendar-wrap" });
  const tableEl = h("div");
  let chart = null;
  let month = today.slice(0, 7);
  let days = [];

  const form = h("form", { class: "filters", novalidate: true },
    field(t("history.from"), fromInput, { name: "from" }),
    field(t("history.to"), toInput, { name: "to" }),
    h("div", { class: "row filter-actions" }, h("button", { type: "submit", class: "primary" }, t("history.search"))));

  el.append(
    h("h1", null, t("profit.title")),
    h("section", { class: "card" }, form, box, statsEl),
    h("section", { class: "card", "aria-labelledby": "pnl-chart-h" }, h("h2", { id: "pnl-chart-h" }, t("profit.chart")), chartEl),
    h("section", { class: "card", "aria-labelledby": "pnl-cal-h" }, h("h2", { id: "pnl-cal-h" }, t("profit.calendar")), calendarEl),
    h("section", { class: "card", "aria-labelledby": "pnl-days-h" }, h("h2", { id: "pnl-days-h" }, t("profit.days")), tableEl),
  );

  function renderStats(data) {
    const last = days[days.length - 1];
    replace(statsEl,
      stat(t("profit.realized"), signedWon(data.totals.realized), "realized", dir(data.totals.realized)),
      stat(t("profit.unrealized"), signedWon(last ? last.unrealized : 0), "unrealized", dir(last ? last.unrealized : 0)),
      stat(t("profit.commission"), won(data.totals.commission), "commission"),
      stat(t("profit.tax"), won(data.totals.tax), "tax"));
  }

  function renderCalendar() {
    const [y, m] = month.split("-").map(Number);
    const first = new Date(Date.UTC(y, m - 1, 1));
    const daysIn = new Date(Date.UTC(y, m, 0)).getUTCDate();
    const byDate = new Map(days.map((d) => [d.date, d]));
    const weekdays = t("profit.weekdays").split(",");
    const cells = [];
    for (let i = 0; i < first.getUTCDay(); i += 1) cells.push(h("div", { class: "cal-cell empty", "aria-hidden": "true" }));
    for (let d = 1; d <= daysIn; d += 1) {
      const iso = `${month}-${String(d).padStart(2, "0")}`;
      const rec = byDate.get(iso);
      cells.push(h("div", { class: `cal-cell${rec ? " has" : ""}`, dataset: { date: iso } },
        h("span", { class: "cal-day" }, String(d)),
        rec ? h("span", { class: `cal-pnl ${dir(rec.pnl)}`, title: signedWon(rec.pnl) }, signedNum(rec.pnl)) : null));
    }
    const shift = (delta) => {
      const next = new Date(Date.UTC(y, m - 1 + delta, 1));
      month = `${next.getUTCFullYear()}-${String(next.getUTCMonth() + 1).padStart(2, "0")}`;
      renderCalendar();
    };
    replace(calendarEl,
      h("div", { class: "row cal-nav" },
        h("button", { type: "button", class: "small", "aria-label": t("profit.prev_month"), onclick: () => shift(-1) }, "‹"),
        h("strong", { dataset: { month } }, t("profit.month", { y, m })),
        h("button", { type: "button", class: "small", "aria-label": t("profit.next_month"), onclick: () => shift(1) }, "›")),
      h("p", { class: "muted small" }, t("profit.unit_won")),
      h("div", { class: "calendar", role: "grid", "aria-label": t("profit.calendar") },
        weekdays.map((w) => h("div", { class: "cal-head" }, w)),
        cells));
  }

  function renderTable() {
    replace(tableEl, table(
      [t("profit.date"), { text: t("profit.daily_pnl"), num: true }, { text: t("profit.realized"), num: true },
        { text: t("profit.unrealized"), num: true }, { text: t("profit.commission"), num: true }, { text: t("profit.tax"), num: true },
        { text: t("profit.equity"), num: true }],
      [...days].reverse().map((d) => [
        { content: day(d.date) },
        { content: signedWon(d.pnl), num: true, class: dir(d.pnl) },
        { content: signedWon(d.realized), num: true, class: dir(d.realized) },
        { content: d.marked ? signedWon(d.unrealized) : "—", num: true },
        { content: won(d.commission), num: true },
        { content: won(d.tax), num: true },
        { content: won(d.equity), num: true },
      ]),
      { caption: t("profit.days"), empty: t("profit.none") }));
  }

  async function load() {
    showBox(box, null);
    if (!isIsoDate(fromInput.value) || !isIsoDate(toInput.value)) {
      showBox(box, t("history.err_date"));
      return;
    }
    if (fromInput.value > toInput.value) {
      showBox(box, t("history.err_range"));
      return;
    }
    try {
      const data = await get(`/api/portfolio/daily${qs({ from: fromInput.value, to: toInput.value })}`);
      days = withPnl(data.days);
      month = (toInput.value || today).slice(0, 7);
      renderStats(data);
      renderCalendar();
      renderTable();
      chart?.destroy();
      chart = null;
      if (days.length) chart = await dailyChart(chartEl, days);
      else replace(chartEl, h("p", { class: "empty" }, t("profit.none")));
      el.dataset.loaded = String(days.length);
    } catch (e) {
      showBox(box, errorText(e));
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load();
  });
  load();
  return { unmount: () => chart?.destroy(), refresh: load };
}
