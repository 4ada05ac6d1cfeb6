// Strategies: the catalog, a create form generated from each strategy's parameter schema,
// start / pause / stop / delete, per-strategy P&L and orders, the last error, and the live log
// (/ws/events "strategy" and "strategy_log" messages).

import { del, get, post, qs } from "../api.js";
import { h, replace, table, toast } from "../dom.js";
import { busy, clearErrors, errorBox, errorText, field, input, setFieldError, showApiError, showBox, showFixErrors } from "../forms.js";
import { dateTime, dir, num, signedWon, time } from "../format.js";
import { pick, speak, t } from "../i18n.js";
import { linesChart } from "../charts.js";
import { events } from "../live.js";
import { schemaForm } from "../schema-form.js";
import { store } from "../store.js";
import { ordersTable } from "../components/orders-table.js";

const STATUS_CLASS = { running: "ok", paused: "warn", created: "info", stopped: "", error: "err" };
const SYMBOL_RE = /^(?:[0-9A-Z]{6}|Q[0-9A-Z]{6})$/;
const MAX_LOG = 200;

// Log lines survive page switches for this tab (not reloads): they arrive only live.
const logs = new Map(); // strategy id -> [{level, message, ts}]
events.on("strategy_log", (msg) => {
  const list = logs.get(msg.strategy_id) || [];
  list.push({ level: msg.level, message: msg.message, ts: msg.ts });
  if (list.length > MAX_LOG) list.splice(0, list.length - MAX_LOG);
  logs.set(msg.strategy_id, list);
});

export function statusBadge(status) {
  return h("span", { class: `badge ${STATUS_CLASS[status] ?? ""}`, dataset: { status } }, t(`strategy.status.${status}`));
}

/** Parse "005930, 000660" into codes; returns {codes, error}. */
export function parseSymbols(text) {
  const codes = [...new Set(String(text).split(/[\s,]+/).map((s) => s.trim().toUpperCase()).filter(Boolean))];
  if (!codes.length) return { codes, error: t("strategy.err_symbols_empty") };
  const bad = codes.filter((c) => !SYMBOL_RE.test(c));
  if (bad.length) return { codes, error: t("strategy.err_symbols_format", { codes: bad.join(", ") }) };
  return { codes, error: null };
}

export function mount(el, params) {
  let catalog = [];
  let strategies = [];
  let selected = params.get("id") ? Number(params.get("id")) : null;
  let detailOrders = null;
  let detailChart = null;

  const catalogEl = h("div", { class: "catalog" }, h("p", { class: "muted" }, t("common.loading")));
  const createEl = h("section", { class: "card span-12 hidden", "aria-labelledby": "create-h" });
  const listEl = h("div", null, h("p", { class: "muted" }, t("common.loading")));
  const detailEl = h("section", { class: "card span-12 hidden", "aria-labelledby": "detail-h" });
  const noticeEl = h("div");

  el.append(
    h("h1", null, t("strategies.title")),
    noticeEl,
    h("div", { class: "grid" },
      h("section", { class: "card span-12", "aria-labelledby": "mine-h" }, h("h2", { id: "mine-h" }, t("strategies.mine")), listEl),
      detailEl,
      createEl,
      h("section", { class: "card span-12", "aria-labelledby": "cat-h" }, h("h2", { id: "cat-h" }, t("strategies.catalog")), catalogEl)),
  );

  // --- catalog ---------------------------------------------------------------------------------
  function renderCatalog() {
    replace(catalogEl, ...catalog.map((c) =>
      h("article", { class: "card", dataset: { kind: c.kind } },
        h("h3", null, pick(c.name, c.name_en), " ", h("span", { class: "mono muted small" }, c.kind)),
        h("p", { class: "small" }, pick(c.description, c.description_en)),
        h("button", { type: "button", class: "primary", onclick: () => openCreate(c) }, t("strategies.create_this", { name: pick(c.name, c.name_en) })))));
    if (!catalog.length) replace(catalogEl, h("p", { class: "empty" }, t("strategies.catalog_empty")));
  }

  // --- create form -------------------------------------------------------------------------------
  function openCreate(c) {
    const name = field(t("strategy.name"), input({ maxlength: 64, autocomplete: "off" }), { name: "name", help: t("strategy.name_help") });
    const symbols = field(t("strategy.symbols"), input({ autocomplete: "off", spellcheck: "false", placeholder: "005930, 000660" }), { name: "symbols", help: t("strategy.symbols_help") });
    const accountSelect = h("select", null, store.accounts().map((a) => h("option", { value: a.id }, `${a.label || a.broker}`)));
    const account = field(t("strategy.account"), accountSelect, { name: "account_id" });
    const params = schemaForm(c.params_schema || {}, { defaults: c.defaults || {}, idPrefix: `p-${c.kind}` });
    const box = errorBox();
    const submit = h("button", { type: "submit", class: "primary" }, t("strategies.create"));
    const cancel = h("button", { type: "button", onclick: () => createEl.classList.add("hidden") }, t("common.cancel"));
    const form = h("form", { novalidate: true },
      box,
      h("div", { class: "fields-inline" }, name, symbols, account),
      h("fieldset", null, h("legend", null, t("strategy.params")), params.el),
      h("div", { class: "row" }, submit, cancel));

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const n = name.control.value.trim();
      const sym = parseSymbols(symbols.control.value);
      const p = params.read();
      setFieldError(name, n ? null : t("strategy.err_name"));
      setFieldError(symbols, sym.error);
      if (!n || sym.error || !p.ok) {
        showFixErrors(form, box);
        return;
      }
      const bodyOut = { name: n, kind: c.kind, symbols: sym.codes, params: p.values };
      if (accountSelect.value) bodyOut.account_id = Number(accountSelect.value);
      await busy(submit, async () => {
        try {
          const view = await post("/api/strategies", bodyOut);
          toast(t("strategies.created", { name: view.name }), "ok");
          createEl.classList.add("hidden");
          upsert(view);
          select(view.id);
        } catch (e) {
          const f = String(e.field || "").replace(/^params\./, "");
          if (f && params.showError(f, errorText(e))) {
            showBox(box, errorText(e));
            return;
          }
          showApiError(form, box, e, { name, symbols, account_id: account });
        }
      });
    });

    replace(createEl,
      h("h2", { id: "create-h" }, t("strategies.create_title", { name: pick(c.name, c.name_en) })),
      h("p", { class: "muted small" }, pick(c.description, c.description_en)),
      form);
    createEl.classList.remove("hidden");
    name.control.focus();
  }

  // --- the user's strategies ----------------------------------------------------------------------
  async function act(s, action, button) {
    button.disabled = true;
    try {
      const view = action === "delete" ? await del(`/api/strategies/${s.id}`) : await post(`/api/strategies/${s.id}/${action}`);
      if (action === "delete") {
        strategies = strategies.filter((x) => x.id !== s.id);
        if (selected === s.id) select(null);
        renderList();
        toast(t("strategies.deleted", { name: s.name }), "ok");
      } else {
        upsert(view);
      }
    } catch (e) {
      button.disabled = false;
      toast(`${s.name}: ${errorText(e)}`, "error", 8000);
    }
  }

  /** Delete asks twice: the first click arms the button for five seconds. */
  function deleteButton(s) {
    const b = h("button", { type: "button", class: "small danger", "aria-label": t("strategies.delete_label", { name: s.name }) }, t("strategies.delete"));
    let armed = false;
    b.addEventListener("click", () => {
      if (!armed) {
        armed = true;
        b.textContent = t("strategies.delete_confirm");
        setTimeout(() => {
          armed = false;
          b.textContent = t("strategies.delete");
        }, 5000);
        return;
      }
      act(s, "delete", b);
    });
    return b;
  }

  function actions(s) {
    const btn = (action, label, cls = "small") =>
      h("button", { type: "button", class: cls, "aria-label": `${label}: ${s.name}`, onclick: (ev) => act(s, action, ev.currentTarget) }, label);
    const out = [];
    if (s.status !== "running") out.push(btn("start", t("strategies.start"), "small primary"));
    if (s.status === "running") out.push(btn("pause", t("strategies.pause")));
    if (s.status === "running" || s.status === "paused") out.push(btn("stop", t("strategies.stop")));
    if (s.status !== "running") out.push(deleteButton(s));
    return h("div", { class: "row" }, out);
  }

  function renderList() {
    const rows = strategies.map((s) => [
      { content: h("a", { href: `#/strategies?id=${s.id}`, onclick: (ev) => { ev.preventDefault(); select(s.id); } }, s.name) },
      { content: kindName(s.kind) },
      { content: h("span", { class: "mono" }, (s.symbols || []).join(", ")) },
      { content: statusBadge(s.status) },
      { content: signedWon(s.pnl?.realized ?? 0), num: true, class: dir(s.pnl?.realized) },
      { content: signedWon(s.pnl?.unrealized ?? 0), num: true, class: dir(s.pnl?.unrealized) },
      { content: num(s.pnl?.fills ?? 0), num: true },
      { content: num(s.pnl?.orders ?? 0), num: true },
      { content: s.last_error ? h("span", { class: "down small" }, speak(s.last_error.message)) : "—", class: "wrap" },
      { content: actions(s) },
    ]);
    replace(listEl, table(
      [t("strategy.name"), t("strategy.kind"), t("strategy.symbols"), t("strategy.status"),
        { text: t("strategy.realized"), num: true }, { text: t("strategy.unrealized"), num: true },
        { text: t("strategy.fills"), num: true }, { text: t("strategy.orders"), num: true }, t("strategy.last_error"), t("common.actions")],
      rows,
      { caption: t("strategies.mine"), empty: t("strategies.none") },
    ));
    listEl.querySelectorAll("tbody tr").forEach((tr, i) => {
      tr.dataset.strategyId = strategies[i].id;
      tr.dataset.status = strategies[i].status;
    });
  }

  /** A parameter's title from the catalog's schema (its name when the schema has none). */
  function paramTitle(kind, name) {
    const prop = catalog.find((x) => x.kind === kind)?.params_schema?.properties?.[name];
    return prop?.title || name;
  }

  function kindName(kind) {
    const c = catalog.find((x) => x.kind === kind);
    return c ? pick(c.name, c.name_en) : kind;
  }

  function upsert(view) {
    const i = strategies.findIndex((x) => x.id === view.id);
    if (i >= 0) strategies[i] = view;
    else strategies.unshift(view);
    renderList();
    if (selected === view.id) renderDetail();
  }

  // --- detail -----------------------------------------------------------------------------------------
  function select(id) {
    selected = id;
    renderDetail();
  }

  function renderDetail() {
    detailOrders?.unmount();
    detailOrders = null;
    const s = strategies.find((x) => x.id === selected);
    if (!s) {
      detailEl.classList.add("hidden");
      return;
    }
    const kv = (k, v, cls) => [h("dt", null, k), h("dd", { class: cls || null }, v)];
    const logEl = h("div", { class: "log", role: "log", "aria-label": t("strategy.log") });
    const renderLog = () => {
      const lines = logs.get(s.id) || [];
      replace(logEl, ...(lines.length
        ? lines.map((l) => h("div", { class: l.level }, `${time(l.ts)} ${t(`strategy.level.${l.level}`)} ${speak(l.message)}`))
        : [h("div", { class: "muted" }, t("strategy.log_empty"))]));
    };
    renderLog();
    // Lines sent before this page listened come from the server's recent log.
    get(`/api/strategies/${s.id}/log`).then((data) => {
      const live = logs.get(s.id) || [];
      const seen = new Set(data.lines.map((l) => `${l.ts}|${l.message}`));
      const merged = [...data.lines, ...live.filter((l) => !seen.has(`${l.ts}|${l.message}`))];
      logs.set(s.id, merged.slice(-MAX_LOG).map((l) => ({ level: l.level, message: l.message, ts: l.ts })));
      renderLog();
    }).catch(() => {});
    const pnlEl = h("div", { class: "chart-box", dataset: { chart: "strategy-pnl" } });
    detailChart?.destroy();
    detailChart = null;
    get(`/api/strategies/${s.id}/pnl`).then(async (data) => {
      if (!data.points.length) {
        replace(pnlEl, h("p", { class: "empty" }, t("strategy.no_pnl")));
        return;
      }
      detailChart = await linesChart(pnlEl, [
        { label: t("strategy.pnl_line"), points: data.points.map((p) => ({ ts: p.ts, value: p.pnl })) },
        { label: t("strategy.realized"), points: data.points.map((p) => ({ ts: p.ts, value: p.realized })) },
      ], { height: 240 });
    }).catch((e) => replace(pnlEl, h("p", { class: "form-error" }, errorText(e))));
    const ordersEl = h("div", null, h("p", { class: "muted" }, t("common.loading")));
    get(`/api/orders${qs({ strategy_id: s.id, limit: 50 })}`).then((data) => {
      for (const o of data.orders) if (!store.orders.has(o.id)) store.orders.set(o.id, o);
      detailOrders = ordersTable({ filter: (o) => o.strategy_id === s.id, empty: t("strategy.no_orders") });
      replace(ordersEl, detailOrders.el);
    }).catch((e) => replace(ordersEl, h("p", { class: "form-error" }, errorText(e))));
    replace(detailEl,
      h("div", { class: "card-head" }, h("h2", { id: "detail-h" }, s.name), statusBadge(s.status),
        h("button", { type: "button", class: "small", onclick: () => select(null) }, t("common.close"))),
      h("div", { class: "grid" },
        h("div", { class: "span-4" },
          h("dl", { class: "kv" },
            kv(t("strategy.kind"), kindName(s.kind)),
            kv(t("strategy.symbols"), (s.symbols || []).join(", ")),
            kv(t("strategy.realized"), signedWon(s.pnl?.realized ?? 0), dir(s.pnl?.realized)),
            kv(t("strategy.unrealized"), signedWon(s.pnl?.unrealized ?? 0), dir(s.pnl?.unrealized)),
            kv(t("strategy.created_at"), dateTime(s.created_at)),
            kv(t("strategy.updated_at"), dateTime(s.updated_at))),
          h("h3", null, t("strategy.params")),
          h("dl", { class: "kv" }, Object.entries(s.params || {}).map(([k, v]) => kv(paramTitle(s.kind, k), Array.isArray(v) ? v.join(", ") : String(v)))),
          s.last_error ? h("div", { class: "form-error", role: "alert" }, `${t("strategy.last_error")}: ${speak(s.last_error.message)} · ${dateTime(s.last_error.at)}`) : null),
        h("div", { class: "span-8 stack" },
          h("h3", null, t("strategy.equity")), pnlEl,
          h("h3", null, t("strategy.orders")), ordersEl,
          h("h3", null, t("strategy.log")), logEl)));
    detailEl.classList.remove("hidden");
    detailEl.renderLog = renderLog;
  }

  // --- loading and live updates ----------------------------------------------------------------------
  async function load() {
    try {
      const [cat, mine] = await Promise.all([get("/api/strategy-catalog"), get("/api/strategies")]);
      catalog = cat.strategies;
      strategies = mine.strategies;
      replace(noticeEl);
      renderCatalog();
      renderList();
      if (selected) renderDetail();
    } catch (e) {
      const missing = e.status === 404;
      replace(noticeEl, h("p", { class: "form-error", role: "alert" }, missing ? t("strategies.unavailable") : errorText(e)));
      replace(catalogEl);
      replace(listEl);
    }
  }

  const offs = [
    events.on("strategy", (msg) => upsert(msg.strategy)),
    events.on("strategy_log", (msg) => {
      if (msg.strategy_id === selected) detailEl.renderLog?.();
    }),
    events.on("fill", (msg) => {
      if (msg.fill.strategy_id) get(`/api/strategies/${msg.fill.strategy_id}`).then(upsert).catch(() => {});
    }),
  ];
  load();

  return {
    unmount() {
      for (const off of offs) off();
      detailOrders?.unmount();
      detailChart?.destroy();
    },
    refresh: load,
  };
}
