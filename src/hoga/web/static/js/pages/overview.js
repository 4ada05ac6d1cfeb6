// Overview: cash, equity, today's P&L, positions marked to live prices, open orders with live
// status (and cancel), recent fills. Positions are re-read from /api/portfolio after every fill;
// between fills, prices come from /ws/market-data and the P&L figures are recomputed here from
// the snapshot (unrealised = snapshot + qty x price move), in integer won.

import { h, replace, table } from "../dom.js";
import { dir, num, pct, price, signedWon, time, won } from "../format.js";
import { t } from "../i18n.js";
import { market } from "../live.js";
import { nameOf } from "../names.js";
import { isOpen, store } from "../store.js";
import { ordersTable, sideLabel } from "../components/orders-table.js";
import { watchlist } from "../components/watchlist.js";

function stat(label, value, { cls = "", sub = null, key } = {}) {
  return h("div", { class: "card span-3 stat", dataset: { stat: key } },
    h("span", { class: "label" }, label),
    h("span", { class: `value ${cls}`, dataset: { value: key } }, value),
    sub ? h("span", { class: "sub" }, sub) : null);
}

export function mount(el) {
  const statsEl = h("div", { class: "grid span-12" });
  const positionsEl = h("div");
  const fillsEl = h("div");
  const orders = ordersTable({ filter: isOpen, empty: t("overview.no_open_orders"), caption: t("overview.open_orders") });
  const watch = watchlist();
  const live = new Map(); // symbol -> latest quote
  let unwatch = () => {};
  let watched = "";

  el.append(
    h("h1", null, t("overview.title")),
    h("div", { class: "grid" },
      statsEl,
      h("section", { class: "card span-12", "aria-labelledby": "pos-h" },
        h("div", { class: "card-head" }, h("h2", { id: "pos-h" }, t("overview.positions")),
          h("span", { class: "muted small" }, t("overview.live_note"))),
        positionsEl),
      h("section", { class: "card span-7", "aria-labelledby": "ord-h" },
        h("div", { class: "card-head" }, h("h2", { id: "ord-h" }, t("overview.open_orders")),
          h("a", { href: "#/trade", class: "small" }, t("overview.new_order"))),
        orders.el),
      h("section", { class: "card span-5", "aria-labelledby": "watch-h" },
        h("h2", { id: "watch-h" }, t("watch.title")), watch.el),
      h("section", { class: "card span-12", "aria-labelledby": "fill-h" },
        h("h2", { id: "fill-h" }, t("overview.recent_fills")), fillsEl)),
  );

  /** Figures marked to the latest prices we have. */
  function figures(p) {
    let value = 0;
    let unrealized = 0;
    for (const pos of p.positions) {
      const px = live.get(pos.symbol)?.price ?? pos.market_price;
      value += pos.qty * px;
      unrealized += pos.unrealized_pnl + pos.qty * (px - pos.market_price);
    }
    return {
      cash: p.cash,
      orderable: p.orderable_cash,
      value,
      equity: p.cash + value,
      unrealized,
      today: p.today.pnl + (unrealized - p.unrealized_pnl),
    };
  }

  function renderStats() {
    const p = store.portfolio;
    if (!p) {
      replace(statsEl, h("p", { class: "muted" }, t("common.loading")));
      return;
    }
    const f = figures(p);
    replace(statsEl,
      stat(t("overview.cash"), won(f.cash), { key: "cash", sub: `${t("overview.orderable")} ${won(f.orderable)}` }),
      stat(t("overview.equity"), won(f.equity), { key: "equity", sub: `${t("overview.market_value")} ${won(f.value)}` }),
      stat(t("overview.today_pnl"), signedWon(f.today), { key: "today", cls: dir(f.today), sub: t("overview.trades_today", { n: p.today.trades }) }),
      stat(t("overview.unrealized"), signedWon(f.unrealized), { key: "unrealized", cls: dir(f.unrealized),
        sub: `${t("overview.realized_today")} ${signedWon(p.today.realized_pnl)}` }),
    );
  }

  function positionRow(pos) {
    const q = live.get(pos.symbol);
    const px = q?.price ?? pos.market_price;
    const change = q ? q.change : null;
    const unreal = pos.unrealized_pnl + pos.qty * (px - pos.market_price);
    const cost = pos.qty * pos.avg_price;
    const ret = cost ? (unreal * 100) / cost : 0;
    return [
      { content: [h("a", { href: `#/chart?symbol=${pos.symbol}` }, pos.name || nameOf(pos.symbol) || pos.symbol), " ", h("span", { class: "mono muted small" }, pos.symbol)] },
      { content: num(pos.qty), num: true },
      { content: price(pos.avg_price), num: true },
      { content: price(px), num: true, class: change === null ? "" : dir(change), dataset: { cell: "price" } },
      { content: q ? pct(q.change_pct) : "—", num: true, class: change === null ? "" : dir(change), dataset: { cell: "change" } },
      { content: won(pos.qty * px), num: true, dataset: { cell: "value" } },
      { content: signedWon(unreal), num: true, class: dir(unreal), dataset: { cell: "pnl" } },
      { content: pct(ret), num: true, class: dir(unreal), dataset: { cell: "ret" } },
      { content: h("a", { href: `#/trade?symbol=${pos.symbol}`, class: "small" }, t("overview.trade")) },
    ];
  }

  function renderPositions() {
    const p = store.portfolio;
    if (!p) return;
    const tbl = table(
      [t("pos.symbol"), { text: t("pos.qty"), num: true }, { text: t("pos.avg_price"), num: true },
        { text: t("pos.price"), num: true }, { text: t("pos.change"), num: true }, { text: t("pos.value"), num: true },
        { text: t("pos.pnl"), num: true }, { text: t("pos.return"), num: true }, ""],
      p.positions.map(positionRow),
      { caption: t("overview.positions"), empty: t("overview.no_positions") },
    );
    if (tbl.querySelectorAll) {
      tbl.querySelectorAll("tbody tr").forEach((tr, i) => {
        tr.dataset.symbol = p.positions[i].symbol;
      });
    }
    replace(positionsEl, tbl);
    // Follow the symbols we hold.
    const symbols = p.positions.map((x) => x.symbol);
    const key = symbols.join(",");
    if (key !== watched) {
      unwatch();
      watched = key;
      unwatch = symbols.length ? market.watch(symbols, onQuote) : () => {};
    }
  }

  function onQuote(q) {
    const prev = live.get(q.symbol);
    live.set(q.symbol, q);
    const p = store.portfolio;
    const pos = p?.positions.find((x) => x.symbol === q.symbol);
    const tr = positionsEl.querySelector(`tr[data-symbol="${q.symbol}"]`);
    if (!pos || !tr) return;
    const cells = positionRow(pos);
    const keys = ["price", "change", "value", "pnl", "ret"];
    for (const cell of cells) {
      const k = cell.dataset?.cell;
      if (!keys.includes(k)) continue;
      const td = tr.querySelector(`td[data-cell="${k}"]`);
      if (!td) continue;
      td.textContent = cell.content;
      td.className = ["num", cell.class].filter(Boolean).join(" ");
    }
    if (prev && prev.price !== q.price) {
      const td = tr.querySelector('td[data-cell="price"]');
      td.classList.add(q.price > prev.price ? "flash-up" : "flash-down");
    }
    renderStats();
  }

  function renderFills() {
    const rows = store.fills.slice(0, 20).map((f) => [
      { content: time(f.ts) },
      { content: [nameOf(f.symbol) || "", " ", h("span", { class: "mono muted small" }, f.symbol)] },
      { content: sideLabel(f.side) },
      { content: num(f.qty), num: true },
      { content: price(f.price), num: true },
      { content: won(f.commission + f.tax), num: true },
    ]);
    replace(fillsEl, table(
      [t("fills.time"), t("fills.symbol"), t("fills.side"), { text: t("fills.qty"), num: true },
        { text: t("fills.price"), num: true }, { text: t("fills.costs"), num: true }],
      rows,
      { caption: t("overview.recent_fills"), empty: t("overview.no_fills") },
    ));
  }

  const offs = [
    store.on("portfolio", () => {
      renderStats();
      renderPositions();
    }),
    store.on("fills", renderFills),
  ];
  renderStats();
  renderPositions();
  renderFills();

  return {
    unmount() {
      for (const off of offs) off();
      orders.unmount();
      watch.unmount();
      unwatch();
    },
    refresh() {
      store.loadAll().catch(() => {});
    },
  };
}
