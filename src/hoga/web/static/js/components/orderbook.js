// 호가창: the 10-level order book of one symbol beside the ticket. Asks above (best ask lowest),
// bids below, each size drawn as a bar; the price of the last trade is marked; clicking a price
// hands it to the ticket. Live from the "orderbook" channel of /ws/market-data, starting from
// GET /api/market/orderbook.

import { get, qs } from "../api.js";
import { h, replace } from "../dom.js";
import { errorText } from "../forms.js";
import { num, price, time } from "../format.js";
import { t } from "../i18n.js";
import { market } from "../live.js";

const LEVELS = 10;

/** An order book panel. ``onPick(price)`` is called when a price is clicked. Returns {el, show(symbol), unmount()}. */
export function orderBook({ onPick }) {
  const body = h("div", { class: "book-body" });
  const status = h("p", { class: "muted small book-status", "aria-live": "polite" });
  const el = h("div", { class: "orderbook", dataset: { orderbook: "" } }, status, body);
  let symbol = null;
  let book = null;
  let last = null;
  let stop = () => {};
  let seq = 0;

  function bar(qty, max, side) {
    const fill = h("span", { class: `bar ${side}` });
    // CSSOM, not a style attribute: allowed under a strict style-src.
    fill.style.width = `${max ? Math.max(2, Math.round((qty / max) * 100)) : 0}%`;
    return h("span", { class: "size" }, fill, h("span", { class: "qty" }, num(qty)));
  }

  function priceButton(p, side) {
    return h("button", {
      type: "button",
      class: `book-price ${side}`,
      dataset: { price: p },
      "aria-label": t("book.pick", { price: price(p) }),
      onclick: () => onPick(p),
    }, price(p));
  }

  function render() {
    if (!book) return;
    const asks = (book.asks || []).slice(0, LEVELS);
    const bids = (book.bids || []).slice(0, LEVELS);
    const max = Math.max(1, ...asks.map((l) => l.qty), ...bids.map((l) => l.qty));
    const lastPrice = last ?? book.last;
    const row = (level, side) => {
      const isLast = lastPrice !== null && lastPrice !== undefined && level.price === lastPrice;
      return h("div", { class: `book-row ${side}${isLast ? " last" : ""}`, dataset: { side, price: level.price, last: isLast ? "true" : null } },
        h("span", { class: "ask-size" }, side === "ask" ? bar(level.qty, max, "ask") : null),
        priceButton(level.price, side),
        h("span", { class: "bid-size" }, side === "bid" ? bar(level.qty, max, "bid") : null),
        isLast ? h("span", { class: "sr-only" }, t("book.last_marker")) : null);
    };
    replace(body,
      h("div", { class: "book-head" }, h("span", null, t("book.ask_qty")), h("span", null, t("book.price")), h("span", null, t("book.bid_qty"))),
      // Farthest ask on top, best ask just above the best bid.
      [...asks].reverse().map((l) => row(l, "ask")),
      bids.map((l) => row(l, "bid")),
      h("div", { class: "book-foot" },
        h("span", null, num(book.total_ask_qty)),
        h("span", { class: "muted" }, t("book.total")),
        h("span", null, num(book.total_bid_qty))));
    status.textContent = book.ts ? t("book.as_of", { time: time(book.ts) }) : "";
    el.dataset.updated = String((Number(el.dataset.updated) || 0) + 1);
  }

  async function show(next) {
    if (next === symbol) return;
    stop();
    symbol = next;
    book = null;
    last = null;
    replace(body);
    if (!symbol) {
      status.textContent = t("book.pick_symbol");
      return;
    }
    status.textContent = t("common.loading");
    const mine = ++seq;
    const offBook = market.watchBook(symbol, (msg) => {
      book = msg;
      render();
    });
    const offQuote = market.watch([symbol], (q) => {
      last = q.price;
      render();
    });
    stop = () => {
      offBook();
      offQuote();
    };
    try {
      const first = await get(`/api/market/orderbook${qs({ symbol })}`);
      if (mine !== seq) return;
      if (!book) book = first;
      render();
    } catch (e) {
      if (mine === seq && !book) status.textContent = `${t("book.unavailable")}: ${errorText(e)}`;
    }
  }

  return {
    el,
    show,
    unmount() {
      stop();
      seq += 1;
    },
  };
}
