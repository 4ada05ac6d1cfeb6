// 거래내역: every order and fill, filtered by trading-day range, symbol, strategy and state,
// a page at a time (GET /api/history/orders|fills), and exported as CSV (the same filters;
// UTF-8 with a BOM so Excel opens the Korean headers).

import { download, get, qs } from "../api.js";
import { dateInput, isIsoDate } from "../components/date-input.js";
import { h, replace, table, toast } from "../dom.js";
import { errorBox, errorText, field, showBox } from "../forms.js";
import { dateTime, isoDate, num, price, won } from "../format.js";
import { speak, t } from "../i18n.js";
import { nameOf } from "../names.js";
import { sideLabel, statusBadge } from "../components/orders-table.js";

const PAGE_SIZE = 20;
const STATES = ["", "open", "FILLED", "PARTIALLY_FILLED", "CANCELLED", "REJECTED", "DENIED", "EXPIRED"];
const SYMBOL_RE = /^(?:[0-9A-Z]{6}|Q[0-9A-Z]{6})$/;

export function mount(el, params) {
  const today = isoDate();
  const monthAgo = isoDate(new Date(Date.now() - 30 * 86400_000));
  let kind = params.get("kind") === "fills" ? "fills" : "orders";
  let page = 1;
  let strategies = [];

  const fromInput = dateInput(params.get("from") || monthAgo);
  const toInput = dateInput(params.get("to") || today);
  const symbolInput = h("input", { type: "text", autocomplete: "off", spellcheck: "false", maxlength: 7, placeholder: "005930", value: params.get("symbol") || "" });
  const strategySelect = h("select", null, h("option", { value: "" }, t("history.all")));
  const stateSelect = h("select", null, STATES.map((s) => h("option", { value: s }, s ? (s === "open" ? t("history.state_open") : t(`status.${s}`)) : t("history.all"))));
  const stateField = field(t("history.state"), stateSelect, { name: "state" });
  const box = errorBox();
  const results = h("div", { class: "history-results", "aria-live": "polite" });
  const pager = h("nav", { class: "pager", "aria-label": t("history.pages") });
  const tabOrders = h("button", { type: "button", class: "tab-btn", "aria-pressed": "true", onclick: () => switchKind("orders") }, t("history.orders"));
  const tabFills = h("button", { type: "button", class: "tab-btn", "aria-pressed": "false", onclick: () => switchKind("fills") }, t("history.fills"));
  const exportBtn = h("button", { type: "button", onclick: exportCsv }, t("history.export"));

  const form = h("form", { class: "filters", novalidate: true },
    field(t("history.from"), fromInput, { name: "from" }),
    field(t("history.to"), toInput, { name: "to" }),
    field(t("history.symbol"), symbolInput, { name: "symbol" }),
    field(t("history.strategy"), strategySelect, { name: "strategy_id" }),
    stateField,
    h("div", { class: "row filter-actions" }, h("button", { type: "submit", class: "primary" }, t("history.search")), exportBtn));

  el.append(
    h("h1", null, t("history.title")),
    h("section", { class: "card" },
      h("div", { class: "row", role: "group", "aria-label": t("history.kind") }, tabOrders, tabFills),
      form, box, results, pager),
  );

  function filters() {
    return {
      from: fromInput.value || null,
      to: toInput.value || null,
      symbol: symbolInput.value.trim().toUpperCase() || null,
      strategy_id: strategySelect.value || null,
      state: kind === "orders" ? stateSelect.value || null : null,
    };
  }

  function check() {
    const f = filters();
    if ((f.from && !isIsoDate(f.from)) || (f.to && !isIsoDate(f.to))) return t("history.err_date");
    if (f.from && f.to && f.from > f.to) return t("history.err_range");
    if (f.symbol && !SYMBOL_RE.test(f.symbol)) return t("history.err_symbol");
    return null;
  }

  function strategyName(id) {
    if (!id) return t("history.manual");
    return strategies.find((s) => s.id === id)?.name || `#${id}`;
  }

  function orderRows(items) {
    return items.map((o) => [
      { content: dateTime(o.created_at) },
      { content: [nameOf(o.symbol) || "", " ", h("span", { class: "mono muted" }, o.symbol)] },
      { content: sideLabel(o.side) },
      { content: t(`type.${o.type}`) },
      { content: num(o.qty), num: true },
      { content: o.type === "market" ? t("type.market") : price(o.price), num: true },
      { content: num(o.filled_qty), num: true },
      { content: o.filled_qty ? price(o.avg_fill_price) : "—", num: true },
      { content: [statusBadge(o.status), o.reason ? h("span", { class: "muted small" }, ` ${speak(o.reason)}`) : null], class: "wrap" },
      { content: strategyName(o.strategy_id) },
    ]);
  }

  function fillRows(items) {
    return items.map((f) => [
      { content: dateTime(f.ts) },
      { content: [nameOf(f.symbol) || "", " ", h("span", { class: "mono muted" }, f.symbol)] },
      { content: sideLabel(f.side) },
      { content: num(f.qty), num: true },
      { content: price(f.price), num: true },
      { content: won(f.qty * f.price), num: true },
      { content: won(f.commission), num: true },
      { content: won(f.tax), num: true },
      { content: strategyName(f.strategy_id) },
    ]);
  }

  async function load() {
    const problem = check();
    showBox(box, problem);
    if (problem) return;
    replace(results, h("p", { class: "muted" }, t("common.loading")));
    try {
      const data = await get(`/api/history/${kind}${qs({ ...filters(), page, page_size: PAGE_SIZE })}`);
      const headers = kind === "orders"
        ? [t("orders.time"), t("orders.symbol"), t("orders.side"), t("orders.type"), { text: t("orders.qty"), num: true },
          { text: t("orders.price"), num: true }, { text: t("orders.filled"), num: true }, { text: t("orders.avg_price"), num: true },
          t("orders.status"), t("history.strategy")]
        : [t("orders.time"), t("orders.symbol"), t("orders.side"), { text: t("orders.qty"), num: true }, { text: t("orders.price"), num: true },
          { text: t("history.amount"), num: true }, { text: t("preview.commission"), num: true }, { text: t("preview.tax"), num: true },
          t("history.strategy")];
      const rows = kind === "orders" ? orderRows(data.items) : fillRows(data.items);
      replace(results,
        h("p", { class: "muted small", dataset: { total: data.total } }, t("history.count", { n: num(data.total) })),
        table(headers, rows, { caption: t(`history.${kind}`), empty: t("history.none") }));
      renderPager(data.total);
    } catch (e) {
      replace(results);
      showBox(box, errorText(e));
    }
  }

  function renderPager(total) {
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    replace(pager,
      h("button", { type: "button", disabled: page <= 1, onclick: () => go(page - 1) }, t("history.prev")),
      h("span", { class: "muted", dataset: { page } }, t("history.page_of", { page: num(page), pages: num(pages) })),
      h("button", { type: "button", disabled: page >= pages, onclick: () => go(page + 1) }, t("history.next")));
  }

  function go(n) {
    page = n;
    load();
  }

  function switchKind(next) {
    kind = next;
    page = 1;
    tabOrders.setAttribute("aria-pressed", String(kind === "orders"));
    tabFills.setAttribute("aria-pressed", String(kind === "fills"));
    stateField.classList.toggle("hidden", kind !== "orders");
    load();
  }

  async function exportCsv() {
    const problem = check();
    showBox(box, problem);
    if (problem) return;
    exportBtn.disabled = true;
    try {
      const blob = await download(`/api/history/${kind}.csv${qs(filters())}`);
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: `hoga-${kind}-${filters().from || ""}-${filters().to || ""}.csv`, class: "hidden" });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      toast(t("history.exported"), "ok");
    } catch (e) {
      showBox(box, errorText(e));
    } finally {
      exportBtn.disabled = false;
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    page = 1;
    load();
  });

  get("/api/strategies")
    .then((data) => {
      strategies = data.strategies || [];
      for (const s of strategies) strategySelect.append(h("option", { value: s.id }, s.name));
    })
    .catch(() => {});
  switchKind(kind);
  return { unmount() {}, refresh: load };
}
