// Chart per symbol: candles from /api/market/bars, live updates from /ws/market-data, and the
// user's own fills (/api/fills?symbol=) marked on it as they happen.

import { get, qs } from "../api.js";
import { h, replace, table } from "../dom.js";
import { errorText } from "../forms.js";
import { dir, num, pct, price, time, won } from "../format.js";
import { t } from "../i18n.js";
import { events, market } from "../live.js";
import { instrument } from "../names.js";
import { candleChart } from "../charts.js";
import { symbolPicker } from "../components/symbol-picker.js";
import { sideLabel } from "../components/orders-table.js";

const INTERVALS = [
  ["1m", 60],
  ["5m", 300],
  ["15m", 900],
  ["60m", 3600],
  ["1d", 86400],
];
const DEFAULT_SYMBOL = "005930";

export function mount(el, params) {
  const symbol = (params.get("symbol") || DEFAULT_SYMBOL).toUpperCase();
  const intervalName = INTERVALS.some(([n]) => n === params.get("interval")) ? params.get("interval") : "1m";
  const interval = INTERVALS.find(([n]) => n === intervalName)[1];
  const inst = instrument(symbol) || { symbol, name: symbol, market: "" };
  let chart = null;
  let unwatch = () => {};
  let offFill = () => {};
  let destroyed = false;
  let fills = [];

  const picker = symbolPicker({
    label: t("chart.symbol"),
    initial: inst,
    onSelect: (i) => {
      location.hash = `#/chart?symbol=${i.symbol}&interval=${intervalName}`;
    },
  });
  const intervalSelect = h("select", { id: "chart-interval", name: "interval" },
    INTERVALS.map(([n]) => h("option", { value: n, selected: n === intervalName }, t(`interval.${n}`))));
  intervalSelect.addEventListener("change", () => {
    location.hash = `#/chart?symbol=${symbol}&interval=${intervalSelect.value}`;
  });
  const quoteEl = h("div", { class: "stat" });
  const status = h("p", { class: "muted small", role: "status" }, t("common.loading"));
  const chartEl = h("div", { class: "chart", role: "img", "aria-label": t("chart.aria", { name: inst.name, symbol }) });
  const fillsEl = h("div");

  el.append(
    h("h1", null, t("chart.title"), " · ", inst.name, " ", h("span", { class: "mono muted" }, symbol)),
    h("div", { class: "grid" },
      h("section", { class: "card span-12" },
        h("div", { class: "fields-inline" },
          picker,
          h("div", { class: "field" }, h("label", { for: "chart-interval" }, t("chart.interval")), intervalSelect),
          h("div", { class: "field" }, h("span", { class: "label" }, t("chart.last")), quoteEl)),
        h("div", { class: "row" },
          h("a", { class: "button", href: `#/trade?symbol=${symbol}` }, t("chart.trade_this"))),
        status,
        chartEl),
      h("section", { class: "card span-12", "aria-labelledby": "cf-h" }, h("h2", { id: "cf-h" }, t("chart.my_fills")), fillsEl)),
  );

  function renderQuote(q) {
    replace(quoteEl,
      h("span", { class: `value ${dir(q.change)}` }, price(q.price)),
      h("span", { class: `sub ${dir(q.change)}` }, `${num(q.change)} (${pct(q.change_pct)})`));
  }

  function renderFills() {
    replace(fillsEl, table(
      [t("fills.time"), t("fills.side"), { text: t("fills.qty"), num: true }, { text: t("fills.price"), num: true }, { text: t("fills.costs"), num: true }],
      fills.map((f) => [
        { content: time(f.ts) },
        { content: sideLabel(f.side) },
        { content: num(f.qty), num: true },
        { content: price(f.price), num: true },
        { content: won(f.commission + f.tax), num: true },
      ]),
      { empty: t("chart.no_fills") },
    ));
  }

  async function load() {
    try {
      const [bars, myFills] = await Promise.all([
        get(`/api/market/bars${qs({ symbol, interval: intervalName, limit: 500 })}`),
        get(`/api/fills${qs({ symbol, limit: 500 })}`),
      ]);
      if (destroyed) return;
      fills = myFills.fills;
      renderFills();
      if (!chart) chart = await candleChart(chartEl, { interval });
      if (destroyed) {
        chart.destroy();
        return;
      }
      chart.setBars(bars.bars);
      chart.setFills(fills);
      status.textContent = bars.bars.length ? t("chart.live_note") : t("chart.no_bars");
      unwatch();
      unwatch = market.watch([symbol], (q) => {
        renderQuote(q);
        chart?.onQuote(q);
      });
    } catch (e) {
      status.textContent = errorText(e);
      status.className = "form-error";
    }
  }

  offFill = events.on("fill", (msg) => {
    const f = msg.fill;
    if (f.symbol !== symbol) return;
    fills = [f, ...fills];
    renderFills();
    chart?.addFill(f);
  });

  load();

  return {
    unmount() {
      destroyed = true;
      unwatch();
      offFill();
      chart?.destroy();
    },
    refresh() {
      load();
    },
  };
}
