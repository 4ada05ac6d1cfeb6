// The order ticket. KRX rules are never computed here: tick size, the day's limit band and the
// neighbouring valid prices come from /api/market/rules, and the cost (amount, commission, tax,
// cash left) and the risk gate's verdict from POST /api/orders/preview.
//
// What is typed is saved as a draft (sessionStorage) on every change, so a reload, a language
// switch or an expired session (the sign-in overlay) loses nothing.

import { get, post, qs } from "../api.js";
import { debounce, h, replace } from "../dom.js";
import { errorBox, errorText, field, okBox, setFieldError, showApiError, showBox, showFixErrors, busy, clearErrors } from "../forms.js";
import { dir, groupDigits, num, parseInteger, pct, price, won } from "../format.js";
import { speak, t } from "../i18n.js";
import { market } from "../live.js";
import { instrument } from "../names.js";
import { isOpen, store } from "../store.js";
import { ordersTable } from "../components/orders-table.js";
import { orderBook } from "../components/orderbook.js";
import { symbolPicker } from "../components/symbol-picker.js";
import { loadTicketDraft, saveTicketDraft } from "../ticket-draft.js";

const MAX_QTY_DIGITS = 9;

/** A random id for client_order_id (idempotent retries of one submission). */
function newClientOrderId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return "web-" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A segmented radio group; returns {el, value(), set(v), onChange}. */
function segmented(legend, name, options, initial, onChange) {
  const labels = [];
  const group = h("div", { class: "segmented" });
  for (const opt of options) {
    const radio = h("input", { type: "radio", name, value: opt.value, checked: opt.value === initial });
    const label = h("label", { class: opt.cls || "" }, radio, h("span", null, opt.label));
    radio.addEventListener("change", () => {
      sync();
      onChange(opt.value);
    });
    labels.push(label);
    group.append(label);
  }
  function sync() {
    for (const l of labels) l.classList.toggle("checked", l.querySelector("input").checked);
  }
  sync();
  const fieldset = h("fieldset", { class: "field", dataset: { field: name } }, h("legend", null, legend), group);
  return {
    el: fieldset,
    value: () => group.querySelector("input:checked")?.value,
    set(v) {
      for (const l of labels) l.querySelector("input").checked = l.querySelector("input").value === v;
      sync();
    },
  };
}

export function mount(el, params) {
  const draft = loadTicketDraft() || {};
  const fromUrl = params.get("symbol");
  if (fromUrl && fromUrl !== draft.symbol) {
    // Arriving from "trade this symbol": keep the side/type, start a fresh price.
    draft.symbol = fromUrl;
    draft.price = "";
  }
  const state = {
    inst: draft.symbol ? (instrument(draft.symbol) || { symbol: draft.symbol, name: draft.name || draft.symbol, market: draft.market || "" }) : null,
    rules: null, // last answer of /api/market/rules for the current price
    quote: null,
    clientOrderId: newClientOrderId(),
  };
  let unwatch = () => {};

  // --- controls --------------------------------------------------------------------------
  const accountSelect = h("select", { name: "account_id" });
  const account = field(t("ticket.account"), accountSelect, { name: "account_id" });
  const picker = symbolPicker({
    label: t("ticket.symbol"),
    initial: state.inst,
    onSelect: (inst) => {
      // Another symbol trades at other prices: start again from its last price.
      if (inst.symbol !== state.inst?.symbol) priceInput.value = "";
      selectSymbol(inst);
    },
  });
  const side = segmented(t("ticket.side"), "side", [
    { value: "buy", label: t("side.buy"), cls: "side-buy" },
    { value: "sell", label: t("side.sell"), cls: "side-sell" },
  ], draft.side || "buy", () => changed());
  const type = segmented(t("ticket.type"), "type", [
    { value: "limit", label: t("type.limit") },
    { value: "market", label: t("type.market") },
  ], draft.type || "limit", () => changed());

  const qtyInput = h("input", { type: "text", inputmode: "numeric", autocomplete: "off", value: draft.qty ?? "", maxlength: MAX_QTY_DIGITS + 3 });
  const qty = field(t("ticket.qty"), qtyInput, { name: "qty", help: t("ticket.qty_help") });
  const qtyStep = h("div", { class: "stepper" });
  qtyInput.replaceWith(qtyStep);
  qtyStep.append(
    h("button", { type: "button", "aria-label": t("ticket.qty_down"), onclick: () => bumpQty(-1) }, "−"),
    qtyInput,
    h("button", { type: "button", "aria-label": t("ticket.qty_up"), onclick: () => bumpQty(1) }, "+"));

  const priceInput = h("input", { type: "text", inputmode: "numeric", autocomplete: "off", value: draft.price ?? "" });
  const priceField = field(t("ticket.price"), priceInput, { name: "price", help: t("ticket.price_help") });
  const priceStep = h("div", { class: "stepper" });
  priceInput.replaceWith(priceStep);
  const downBtn = h("button", { type: "button", "aria-label": t("ticket.price_down"), onclick: () => stepPrice(-1) }, "▼");
  const upBtn = h("button", { type: "button", "aria-label": t("ticket.price_up"), onclick: () => stepPrice(1) }, "▲");
  const lastBtn = h("button", { type: "button", class: "small", onclick: () => useLastPrice() }, t("ticket.use_last"));
  priceStep.append(downBtn, priceInput, upBtn);
  priceField.append(h("div", { class: "row" }, lastBtn));

  const quoteEl = h("div", { class: "quote-line", "aria-live": "off" });
  const rulesEl = h("dl", { class: "kv", "aria-label": t("ticket.rules") });
  const previewEl = h("div", { class: "preview", "aria-live": "polite" });
  const box = errorBox();
  const ok = okBox();
  const submit = h("button", { type: "submit", class: "buy-btn" }, t("ticket.submit_buy"));

  const form = h("form", { novalidate: true, "aria-labelledby": "ticket-h" },
    box, ok, account, picker, quoteEl, side.el, type.el, qty, priceField,
    h("h3", null, t("ticket.rules")), rulesEl,
    h("h3", null, t("ticket.preview")), previewEl,
    h("div", { class: "row" }, submit));

  const book = orderBook({ onPick: pickPrice });

  const openOrders = ordersTable({ filter: isOpen, empty: t("overview.no_open_orders"), caption: t("trade.open_orders") });
  const doneOrders = ordersTable({ filter: (o) => !isOpen(o), empty: t("trade.no_done_orders"), caption: t("trade.done_orders") });

  el.append(
    h("h1", null, t("trade.title")),
    h("div", { class: "grid trade-grid" },
      h("section", { class: "card span-4", "aria-labelledby": "ticket-h" }, h("h2", { id: "ticket-h" }, t("ticket.title")), form),
      h("section", { class: "card span-3 book-col", "aria-labelledby": "book-h" }, h("h2", { id: "book-h" }, t("book.title")), book.el),
      h("div", { class: "span-5 stack orders-col" },
        h("section", { class: "card", "aria-labelledby": "open-h" }, h("h2", { id: "open-h" }, t("trade.open_orders")), openOrders.el),
        h("section", { class: "card", "aria-labelledby": "done-h" }, h("h2", { id: "done-h" }, t("trade.done_orders")), doneOrders.el))),
  );

  // --- accounts ----------------------------------------------------------------------------
  function renderAccounts() {
    const accts = store.accounts();
    const chosen = accountSelect.value || String(draft.account_id || "");
    replace(accountSelect, ...accts.map((a) =>
      h("option", { value: a.id, selected: String(a.id) === chosen }, `${a.label || a.broker} · ${won(a.cash - a.reserved_cash)}`)));
    account.classList.toggle("hidden", accts.length <= 1);
  }
  accountSelect.addEventListener("change", () => changed());

  // --- reading the form -----------------------------------------------------------------------
  function values() {
    return {
      account_id: accountSelect.value ? Number(accountSelect.value) : null,
      symbol: picker.value?.symbol || null,
      side: side.value(),
      type: type.value(),
      qty: parseInteger(qtyInput.value),
      price: parseInteger(priceInput.value),
    };
  }

  function body(v) {
    const b = { symbol: v.symbol, side: v.side, type: v.type, qty: v.qty };
    if (v.type === "limit") b.price = v.price;
    if (v.account_id) b.account_id = v.account_id;
    return b;
  }

  /** Client-side checks; returns true when the ticket can be previewed/sent. */
  function validate(show) {
    const v = values();
    const errors = {};
    if (!v.symbol) errors.symbol = t("ticket.err_symbol");
    if (!Number.isInteger(v.qty) || v.qty < 1) errors.qty = t("ticket.err_qty");
    if (v.type === "limit") {
      if (!Number.isInteger(v.price) || v.price < 1) errors.price = t("ticket.err_price");
      else if (state.rules && state.rules.price === v.price && !state.rules.valid) errors.price = ruleProblem(state.rules);
    }
    if (show) {
      setFieldError(picker, errors.symbol || null);
      setFieldError(qty, errors.qty || null);
      setFieldError(priceField, errors.price || null);
    }
    return Object.keys(errors).length === 0;
  }

  function ruleProblem(r) {
    if (r.price < r.lower || r.price > r.upper) {
      return t("ticket.err_band", { lower: price(r.lower), upper: price(r.upper) });
    }
    return t("ticket.err_tick", { tick: num(r.tick_size), down: price(r.price_down), up: price(r.price_up) });
  }

  function saveDraft() {
    const v = values();
    saveTicketDraft({
      account_id: v.account_id,
      symbol: picker.value?.symbol || null,
      name: picker.value?.name || null,
      market: picker.value?.market || null,
      side: v.side,
      type: v.type,
      qty: qtyInput.value,
      price: priceInput.value,
    });
  }

  // --- market data and rules ---------------------------------------------------------------------
  function selectSymbol(inst) {
    state.inst = inst;
    state.quote = null;
    state.rules = null;
    unwatch();
    unwatch = inst ? market.watch([inst.symbol], onQuote) : () => {};
    book.show(inst ? inst.symbol : null);
    if (inst && !priceInput.value) {
      // Start at the last traded price (the server's rules answer carries it).
      loadRules(null, true);
    } else {
      loadRules(parseInteger(priceInput.value));
    }
    changed();
  }

  function onQuote(q) {
    state.quote = q;
    renderQuote();
  }

  function renderQuote() {
    const q = state.quote;
    if (!state.inst) {
      replace(quoteEl);
      return;
    }
    if (!q) {
      replace(quoteEl, h("p", { class: "muted small" }, t("ticket.waiting_quote")));
      return;
    }
    replace(quoteEl, h("p", { class: "stat" },
      h("span", { class: "label" }, t("ticket.last_price")),
      h("span", { class: `value ${dir(q.change)}`, dataset: { quote: state.inst.symbol } }, price(q.price)),
      h("span", { class: `sub ${dir(q.change)}` }, `${q.change > 0 ? "▲" : q.change < 0 ? "▼" : ""} ${num(Math.abs(q.change))} (${pct(q.change_pct)}) · ${t("ticket.bid_ask", { bid: price(q.bid), ask: price(q.ask) })}`)));
  }

  let rulesSeq = 0;
  async function fetchRules(symbol, p) {
    const query = qs({ symbol, price: Number.isInteger(p) && p > 0 ? p : null });
    return get(`/api/market/rules${query}`);
  }

  async function loadRules(p, fillPrice = false) {
    if (!state.inst) {
      renderRules();
      return;
    }
    const mine = ++rulesSeq;
    try {
      const r = await fetchRules(state.inst.symbol, p);
      if (mine !== rulesSeq) return;
      state.rules = r;
      if (fillPrice && !priceInput.value) {
        priceInput.value = groupDigits(r.valid ? r.price : r.price_down);
        state.rules = null;
        loadRules(parseInteger(priceInput.value));
        changed();
        return;
      }
      renderRules();
      if (priceInput.value) validate(true);
      schedulePreview();
    } catch (e) {
      if (mine === rulesSeq) replace(rulesEl, h("p", { class: "form-error" }, errorText(e)));
    }
  }
  const loadRulesSoon = debounce((p) => loadRules(p), 200);

  function renderRules() {
    const r = state.rules;
    if (!r) {
      replace(rulesEl, h("p", { class: "muted small" }, state.inst ? t("common.loading") : t("ticket.pick_symbol")));
      return;
    }
    const kv = (k, v, cls) => [h("dt", null, k), h("dd", { class: cls || null }, v)];
    replace(rulesEl,
      kv(t("rules.tick"), `${num(r.tick_size)}${t("unit.won")}`),
      kv(t("rules.base"), price(r.base_price)),
      kv(t("rules.upper"), price(r.upper), "up"),
      kv(t("rules.lower"), price(r.lower), "down"),
      kv(t("rules.neighbours"), `${price(r.price_down)} / ${price(r.price_up)}`),
      kv(t("rules.session"), r.market_open ? t("rules.open") : t("rules.closed")));
  }

  async function stepPrice(direction) {
    if (!state.inst) {
      setFieldError(picker, t("ticket.err_symbol"));
      return;
    }
    const current = parseInteger(priceInput.value);
    try {
      const r = await fetchRules(state.inst.symbol, Number.isInteger(current) && current > 0 ? current : null);
      const next = direction > 0 ? r.price_up : r.price_down;
      // At a band edge the neighbour is the edge itself: stay.
      priceInput.value = groupDigits(next);
      state.rules = null;
      await loadRules(next);
      changed();
    } catch (e) {
      setFieldError(priceField, errorText(e));
    }
  }

  /** A price clicked in the order book: a limit order at that price. */
  function pickPrice(p) {
    if (type.value() !== "limit") type.set("limit");
    priceInput.value = groupDigits(p);
    setFieldError(priceField, null);
    state.rules = null;
    loadRules(p);
    changed();
    priceInput.focus();
  }

  function useLastPrice() {
    if (!state.inst) return;
    priceInput.value = "";
    loadRules(null, true);
  }

  function bumpQty(delta) {
    const q = parseInteger(qtyInput.value);
    const next = Math.max(1, (Number.isInteger(q) ? q : 0) + delta);
    qtyInput.value = groupDigits(next);
    changed();
  }

  // --- preview ------------------------------------------------------------------------------------
  let previewSeq = 0;
  const schedulePreview = debounce(async () => {
    const mine = ++previewSeq;
    if (!validate(false)) {
      replace(previewEl, h("p", { class: "muted small" }, t("ticket.preview_hint")));
      return;
    }
    try {
      // With the id the order would carry, so the verdict matches what sending it would get.
      const p = await post("/api/orders/preview", { ...body(values()), client_order_id: state.clientOrderId });
      if (mine !== previewSeq) return;
      renderPreview(p);
    } catch (e) {
      if (mine !== previewSeq) return;
      replace(previewEl, h("p", { class: "form-error" }, errorText(e)));
    }
  }, 250);

  function renderPreview(p) {
    const kv = (k, v, cls) => [h("dt", null, k), h("dd", { class: cls || null }, v)];
    const isBuy = values().side === "buy";
    replace(previewEl,
      h("dl", { class: "kv", dataset: { preview: "" } },
        kv(t("preview.price"), `${price(p.price)}${t("unit.won")}`),
        kv(t("preview.amount"), won(p.amount)),
        kv(t("preview.commission"), won(p.commission)),
        kv(t("preview.tax"), won(p.tax)),
        kv(isBuy ? t("preview.total_buy") : t("preview.total_sell"), won(p.total)),
        kv(t("preview.orderable"), won(p.orderable_cash)),
        isBuy && p.reserved_cash ? kv(t("preview.reserved"), won(p.reserved_cash)) : null,
        kv(t("preview.cash_after"), won(p.cash_after), p.cash_after < 0 ? "down" : null),
        kv(t("preview.trades"), `${num(p.trades_today)} / ${num(p.daily_limit)}`)),
      isBuy && values().type === "market" && p.reserved_cash
        ? h("p", { class: "note", dataset: { reservation: "" } }, t("preview.reservation_market", {
            upper: price(p.limits?.upper ?? p.price), reserved: won(p.reserved_cash), total: won(p.total),
          }))
        : null,
      p.ok
        ? h("p", { class: "form-ok", dataset: { gate: "ok" } }, t("preview.gate_ok"))
        : h("p", { class: "form-error", dataset: { gate: "denied" } }, `${t("preview.gate_denied")}: ${speak(p.message)}`));
  }

  // --- changes and submission ----------------------------------------------------------------------
  function changed() {
    const isBuy = side.value() === "buy";
    submit.className = isBuy ? "buy-btn" : "sell-btn";
    submit.textContent = isBuy ? t("ticket.submit_buy") : t("ticket.submit_sell");
    const isMarket = type.value() === "market";
    priceField.classList.toggle("hidden", isMarket);
    state.clientOrderId = newClientOrderId();
    showBox(ok, null);
    saveDraft();
    schedulePreview();
  }

  // Thousands separators as people type (71,400), keeping the caret where it was.
  function regroup(input) {
    const fromEnd = input.value.length - (input.selectionStart ?? input.value.length);
    const grouped = groupDigits(input.value);
    if (grouped === input.value) return;
    input.value = grouped;
    const pos = Math.max(0, grouped.length - fromEnd);
    input.setSelectionRange(pos, pos);
  }

  qtyInput.addEventListener("input", () => {
    regroup(qtyInput);
    setFieldError(qty, null);
    changed();
  });
  priceInput.addEventListener("input", () => {
    regroup(priceInput);
    setFieldError(priceField, null);
    state.rules = null;
    loadRulesSoon(parseInteger(priceInput.value));
    changed();
  });
  priceInput.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowUp" || ev.key === "ArrowDown") {
      ev.preventDefault();
      stepPrice(ev.key === "ArrowUp" ? 1 : -1);
    }
  });
  priceInput.addEventListener("blur", () => {
    const p = parseInteger(priceInput.value);
    if (Number.isInteger(p)) priceInput.value = groupDigits(p);
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    showBox(ok, null);
    if (!validate(true)) {
      showFixErrors(form, box);
      return;
    }
    const v = values();
    const request = { ...body(v), client_order_id: state.clientOrderId };
    await busy(submit, async () => {
      try {
        const order = await post("/api/orders", request);
        store.upsertOrder(order);
        state.clientOrderId = newClientOrderId();
        const msg = t("ticket.accepted", { id: order.id, status: t(`status.${order.status}`) });
        showBox(ok, msg);
        schedulePreview();
      } catch (e) {
        if (e.body && e.body.order) store.upsertOrder(e.body.order);
        if (e.code !== "network") state.clientOrderId = newClientOrderId(); // a network failure retries the same order
        if (e.code === "session.expired") {
          showBox(box, t("ticket.session_expired"));
          return;
        }
        showApiError(form, box, e, { symbol: picker, qty, price: priceField });
      }
    });
  });

  // --- start -----------------------------------------------------------------------------------------
  const offs = [
    store.on("portfolio", () => {
      renderAccounts();
      schedulePreview(); // cash and holdings moved: the preview's figures too
    }),
  ];
  renderAccounts();
  renderQuote();
  renderRules();
  if (state.inst) selectSymbol(state.inst);
  else changed();
  if (!draft.symbol) picker.control.focus();

  return {
    unmount() {
      for (const off of offs) off();
      openOrders.unmount();
      book.unmount();
      doneOrders.unmount();
      unwatch();
      schedulePreview.cancel();
      loadRulesSoon.cancel();
    },
    refresh() {
      if (state.inst) loadRules(parseInteger(priceInput.value));
      schedulePreview();
    },
  };
}

