// 관심종목: the user's watchlist with live prices (GET/PUT /api/me/watchlist; quotes from
// /ws/market-data). Add with the symbol picker, remove with ✕; the list is saved whole.

import { get, put } from "../api.js";
import { h, replace, toast } from "../dom.js";
import { errorText } from "../forms.js";
import { dir, pct, price } from "../format.js";
import { t } from "../i18n.js";
import { market } from "../live.js";
import { nameOf } from "../names.js";
import { symbolPicker } from "./symbol-picker.js";

export function watchlist() {
  let symbols = [];
  const quotes = new Map();
  let unwatch = () => {};
  const listEl = h("ul", { class: "watchlist", "aria-label": t("watch.title") });
  const picker = symbolPicker({
    label: t("watch.add"),
    name: "watch_symbol",
    onSelect: (inst) => {
      picker.set(null);
      if (!symbols.includes(inst.symbol)) save([...symbols, inst.symbol]);
    },
  });
  const el = h("div", { class: "watch" }, picker, listEl);

  function row(symbol) {
    const q = quotes.get(symbol);
    return h("li", { class: "watch-row", dataset: { symbol } },
      h("a", { href: `#/chart?symbol=${symbol}`, class: "watch-name" }, nameOf(symbol) || symbol, " ", h("span", { class: "mono muted small" }, symbol)),
      h("span", { class: `num watch-price ${q ? dir(q.change) : ""}`, dataset: { cell: "price" } }, q ? price(q.price) : "—"),
      h("span", { class: `num watch-change ${q ? dir(q.change) : ""}` }, q ? pct(q.change_pct) : ""),
      h("a", { href: `#/trade?symbol=${symbol}`, class: "small" }, t("overview.trade")),
      h("button", { type: "button", class: "small icon", "aria-label": t("watch.remove", { name: nameOf(symbol) || symbol }), onclick: () => save(symbols.filter((s) => s !== symbol)) }, "✕"));
  }

  function render() {
    replace(listEl, symbols.length ? symbols.map(row) : h("li", { class: "empty" }, t("watch.empty")));
  }

  function follow() {
    unwatch();
    unwatch = symbols.length ? market.watch(symbols, (q) => {
      quotes.set(q.symbol, q);
      const li = listEl.querySelector(`li[data-symbol="${q.symbol}"]`);
      if (li) li.replaceWith(row(q.symbol));
    }) : () => {};
  }

  async function save(next) {
    try {
      const data = await put("/api/me/watchlist", { symbols: next });
      symbols = data.symbols;
      render();
      follow();
    } catch (e) {
      toast(errorText(e), "error");
    }
  }

  get("/api/me/watchlist")
    .then((data) => {
      symbols = data.symbols;
      render();
      follow();
    })
    .catch((e) => replace(listEl, h("li", { class: "form-error" }, errorText(e))));
  render();
  return { el, unmount: () => unwatch() };
}
