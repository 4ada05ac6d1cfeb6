// Admin (admins only; the server refuses everyone else with 403 whatever this page shows):
// users and their tiers and limits, tiers, the server-wide kill switch, system status (feeds and
// their sessions, broker gateways, queue depth, rate-limit use, reconciliation, strategy errors)
// and the audit log.

import { get, patch, post, put, qs } from "../api.js";
import { h, replace, table, toast } from "../dom.js";
import { busy, clearErrors, errorBox, errorText, field, input, select, setFieldError, showApiError, showBox } from "../forms.js";
import { dateTime, num, parseInteger, won } from "../format.js";
import { speak, t } from "../i18n.js";
import { countWords, detailWords, tOr } from "../words.js";
import { store } from "../store.js";

const STATES = ["ACTIVE", "REDUCING", "HALTED"];
const STATUS_EVERY_MS = 5000;
const STRATEGY_COUNTERS = ["running", "by_kind", "queued_events", "events_processed", "errors_since_start", "catalog"];

export function mount(el) {
  let tiers = [];
  let users = [];
  let statusTimer = null;
  let destroyed = false;
  // The kill switch is redrawn only when its state changes: a redraw on every status refresh
  // would disarm a button the admin has just armed.
  let shownKillState = null;
  let auditBefore = null;
  let auditRows = [];

  const usersCard = h("section", { class: "card span-12", "aria-labelledby": "users-h" });
  const newUserCard = h("section", { class: "card span-5", "aria-labelledby": "newuser-h" });
  const tiersCard = h("section", { class: "card span-7", "aria-labelledby": "tiers-h" });
  const killCard = h("section", { class: "card span-12", "aria-labelledby": "kill-h" });
  const statusCard = h("section", { class: "card span-12", "aria-labelledby": "status-h" });
  const auditCard = h("section", { class: "card span-12", "aria-labelledby": "adm-audit-h" });
  el.append(h("h1", null, t("admin.title")), h("div", { class: "grid" }, killCard, usersCard, newUserCard, tiersCard, statusCard, auditCard));

  if (!store.me?.is_admin) {
    replace(el, h("h1", null, t("admin.title")), h("p", { class: "form-error" }, t("admin.only")));
    return { unmount() {} };
  }

  // --- users -------------------------------------------------------------------------------------------
  function userRow(u) {
    const tierSel = select(tiers.map((x) => ({ value: x.name, label: tOr(`tier.${x.name}`, x.name), selected: x.name === u.tier })), { "aria-label": t("admin.tier_of", { user: u.username }) });
    const stateSel = select(STATES.map((s) => ({ value: s, label: t(`state.${s}`), selected: s === u.trading_state })), { "aria-label": t("admin.state_of", { user: u.username }) });
    const maxOrder = input({ inputmode: "numeric", value: u.max_order_value ?? "", "aria-label": t("admin.max_order_of", { user: u.username }), size: 12 });
    const lossLimit = input({ inputmode: "numeric", value: u.daily_loss_limit ?? "", "aria-label": t("admin.loss_limit_of", { user: u.username }), size: 12 });
    const active = h("input", { type: "checkbox", checked: u.is_active, "aria-label": t("admin.active_of", { user: u.username }) });
    const save = h("button", { type: "button", class: "small primary", "aria-label": t("admin.save_user", { user: u.username }) }, t("common.save"));
    save.addEventListener("click", () => busy(save, async () => {
      const changes = {};
      if (tierSel.value !== u.tier) changes.tier = tierSel.value;
      if (stateSel.value !== u.trading_state) changes.trading_state = stateSel.value;
      if (active.checked !== u.is_active) changes.is_active = active.checked;
      for (const [key, ctl, min] of [["max_order_value", maxOrder, 1], ["daily_loss_limit", lossLimit, 0]]) {
        const raw = ctl.value.trim();
        if (raw === "" || raw === String(u[key] ?? "")) continue;
        const v = parseInteger(raw);
        if (!Number.isInteger(v) || v < min) {
          toast(t("admin.err_limit", { field: t(`admin.${key}`) }), "error");
          ctl.focus();
          return;
        }
        if (v !== u[key]) changes[key] = v;
      }
      if (!Object.keys(changes).length) {
        toast(t("admin.no_changes"), "info");
        return;
      }
      try {
        const updated = await patch(`/api/admin/users/${u.id}`, changes);
        users = users.map((x) => (x.id === u.id ? updated : x));
        toast(t("admin.user_saved", { user: u.username }), "ok");
        renderUsers();
      } catch (e) {
        toast(`${u.username}: ${errorText(e)}`, "error", 8000);
      }
    }));
    return [
      { content: String(u.id) },
      { content: [u.username, u.is_admin ? h("span", { class: "badge info" }, " admin") : null] },
      { content: tierSel },
      { content: stateSel },
      { content: maxOrder },
      { content: lossLimit },
      { content: active },
      { content: u.totp_enabled ? h("span", { class: "badge ok" }, "OTP") : "—" },
      { content: dateTime(u.created_at) },
      { content: save },
    ];
  }

  function renderUsers(maxUsers) {
    const tbl = table(
      ["#", t("admin.username"), t("admin.tier"), t("admin.trading_state"), t("admin.max_order_value"), t("admin.daily_loss_limit"),
        t("admin.active"), "2FA", t("admin.created"), ""],
      users.map(userRow),
      { caption: t("admin.users"), empty: t("admin.no_users") },
    );
    tbl.querySelectorAll("tbody tr").forEach((tr, i) => {
      tr.dataset.username = users[i].username;
    });
    replace(usersCard,
      h("div", { class: "card-head" }, h("h2", { id: "users-h" }, t("admin.users")),
        maxUsers ? h("span", { class: "muted small" }, t("admin.user_count", { n: users.filter((u) => u.is_active).length, max: maxUsers })) : null),
      tbl);
  }

  function renderNewUser() {
    const username = field(t("admin.username"), input({ autocomplete: "off", maxlength: 32 }), { name: "username", help: t("admin.username_help") });
    const password = field(t("login.password"), input({ type: "password", autocomplete: "new-password" }), { name: "password", help: t("security.password_help", { n: 8 }) });
    const tier = field(t("admin.tier"), select(tiers.map((x) => ({ value: x.name, label: tOr(`tier.${x.name}`, x.name) }))), { name: "tier" });
    const isAdmin = h("input", { type: "checkbox" });
    const box = errorBox();
    const submit = h("button", { type: "submit", class: "primary" }, t("admin.add_user"));
    const form = h("form", { novalidate: true }, box, username, password, tier,
      h("label", { class: "checkbox" }, isAdmin, t("admin.make_admin")), h("div", { class: "row" }, submit));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const name = username.control.value.trim();
      setFieldError(username, /^.{3,32}$/.test(name) ? null : t("admin.err_username"));
      setFieldError(password, password.control.value.length >= 8 ? null : t("security.err_new", { n: 8 }));
      if (form.querySelector(".field.invalid")) {
        showBox(box, t("form.fix_errors"));
        return;
      }
      await busy(submit, async () => {
        try {
          const u = await post("/api/admin/users", { username: name, password: password.control.value, tier: tier.control.value, is_admin: isAdmin.checked });
          username.control.value = "";
          password.control.value = "";
          toast(t("admin.user_added", { user: u.username }), "ok");
          loadUsers();
        } catch (e) {
          showApiError(form, box, e, { username, password, tier });
        }
      });
    });
    replace(newUserCard, h("h2", { id: "newuser-h" }, t("admin.new_user")), form);
  }

  // --- tiers -----------------------------------------------------------------------------------------------
  function renderTiers() {
    const rows = tiers.map((tier) => {
      const fields = {};
      for (const key of ["daily_trades", "max_strategies", "max_positions", "api_calls_per_minute"]) {
        fields[key] = input({ inputmode: "numeric", value: tier[key], size: 7, "aria-label": t("admin.tier_field", { tier: tier.name, field: t(`tier.${key}`) }) });
      }
      const priority = select([{ value: "normal", label: t("tier.normal") }, { value: "vip", label: "VIP" }].map((o) => ({ ...o, selected: o.value === tier.priority })),
        { "aria-label": t("admin.tier_field", { tier: tier.name, field: t("tier.priority") }) });
      const save = h("button", { type: "button", class: "small primary", "aria-label": t("admin.save_tier", { tier: tier.name }) }, t("common.save"));
      save.addEventListener("click", () => busy(save, async () => {
        const changes = {};
        for (const [key, ctl] of Object.entries(fields)) {
          const v = parseInteger(ctl.value);
          if (!Number.isInteger(v) || v < 0) {
            toast(t("admin.err_tier", { field: t(`tier.${key}`) }), "error");
            ctl.focus();
            return;
          }
          if (v !== tier[key]) changes[key] = v;
        }
        if (priority.value !== tier.priority) changes.priority = priority.value;
        if (!Object.keys(changes).length) {
          toast(t("admin.no_changes"), "info");
          return;
        }
        try {
          const updated = await patch(`/api/admin/tiers/${encodeURIComponent(tier.name)}`, changes);
          tiers = tiers.map((x) => (x.name === tier.name ? updated : x));
          toast(t("admin.tier_saved", { tier: tier.name }), "ok");
          renderTiers();
        } catch (e) {
          toast(`${tier.name}: ${errorText(e)}`, "error", 8000);
        }
      }));
      return [tier.name, fields.daily_trades, fields.max_strategies, fields.max_positions, priority, fields.api_calls_per_minute, save];
    });
    replace(tiersCard, h("h2", { id: "tiers-h" }, t("admin.tiers")), table(
      [t("admin.tier"), t("tier.daily_trades"), t("tier.max_strategies"), t("tier.max_positions"), t("tier.priority"), t("tier.api_calls_per_minute"), ""],
      rows, { caption: t("admin.tiers") }));
  }

  // --- kill switch -------------------------------------------------------------------------------------------
  function renderKill(state) {
    shownKillState = state;
    const buttons = STATES.map((s) => {
      const b = h("button", {
        type: "button",
        class: s === "HALTED" ? "danger" : s === "REDUCING" ? "" : "primary",
        "aria-pressed": s === state ? "true" : "false",
        disabled: s === state,
      }, t(`state.${s}`));
      let armed = false;
      b.addEventListener("click", async () => {
        if (s !== "ACTIVE" && !armed) {
          armed = true;
          b.textContent = t("admin.kill_confirm", { state: t(`state.${s}`) });
          setTimeout(() => {
            armed = false;
            b.textContent = t(`state.${s}`);
          }, 5000);
          return;
        }
        await busy(b, async () => {
          try {
            const res = await put("/api/admin/kill-switch", { state: s });
            toast(t("admin.kill_set", { state: t(`state.${res.state}`) }), res.state === "ACTIVE" ? "ok" : "error", 8000);
            renderKill(res.state);
          } catch (e) {
            toast(errorText(e), "error");
          }
        });
      });
      return b;
    });
    replace(killCard,
      h("div", { class: "card-head" }, h("h2", { id: "kill-h" }, t("admin.kill_switch")),
        h("span", { class: `badge ${state === "ACTIVE" ? "ok" : "err"}`, dataset: { serverState: state } }, t(`state.${state}`))),
      h("p", { class: "small muted" }, t("admin.kill_help")),
      h("div", { class: "row" }, buttons));
  }

  /** Known strategy-runner counters get a label; anything else shows its own name. */
  function strategyLabel(key) {
    return STRATEGY_COUNTERS.includes(key) ? t(`status.strat.${key}`) : key;
  }

  function plain(v) {
    if (v === null || v === undefined) return "—";
    if (Array.isArray(v)) return v.join(", ") || "—";
    if (typeof v === "object") return Object.entries(v).map(([a, b]) => `${a} ${typeof b === "number" ? num(b) : b}`).join(" · ") || "—";
    return typeof v === "number" ? num(v) : String(v);
  }

  // --- system status --------------------------------------------------------------------------------------------
  /** GET /ready's verdict, and each broker account that is not ok with why. */
  function readiness(s) {
    const verdict = t(`ready.${s.ready || "down"}`);
    const troubled = (s.brokers || []).filter((b) => b.status !== "ok")
      .map((b) => `#${b.account_id} ${b.broker} ${t(`ready.${b.status}`)}: ${b.reason || b.code || "—"}`);
    return troubled.length ? `${verdict} · ${troubled.join(" · ")}` : verdict;
  }

  function mismatchWords(r) {
    const parts = [];
    if (r.cash_mismatch) parts.push(t("status.cash_mismatch", { diff: won(r.cash_mismatch.difference ?? 0) }));
    if (r.position_mismatches?.length) parts.push(t("status.position_mismatch", { n: num(r.position_mismatches.length) }));
    return parts.join(" · ") || t("status.none");
  }

  function kv(pairs) {
    return h("dl", { class: "kv" }, pairs.map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
  }

  function renderStatus(s, strategyErrors) {
    const feed = s.feed || {};
    const disp = s.dispatcher || {};
    const sessions = table(
      [t("status.session"), { text: t("status.symbols"), num: true }, { text: t("status.ticks"), num: true }, { text: t("status.last_msg"), num: true }, { text: t("status.age"), num: true }],
      (feed.sessions || []).map((x) => [x.id, { content: num(x.symbols), num: true }, { content: num(x.ticks), num: true },
        { content: `${x.last_message_age}s`, num: true }, { content: `${x.age}s`, num: true }]),
      { empty: t("status.no_sessions") },
    );
    const gateways = table(
      [t("status.gateway"), { text: t("status.queued"), num: true }, { text: t("status.sent"), num: true }, { text: t("status.switches"), num: true }, t("status.active_session")],
      Object.entries(disp.gateways || {}).map(([name, g]) => [name, { content: num(g.queued), num: true }, { content: num(g.sent), num: true },
        { content: num(g.switches), num: true }, g.active_session ?? "—"]),
      { empty: "—" },
    );
    const recon = table(
      [t("status.account"), { text: t("status.checked"), num: true }, { text: t("status.fills_booked"), num: true }, t("status.settled"), t("status.mismatches"), t("status.error")],
      // ``settled`` counts orders by the state they were settled in (an object, not a number).
      Object.entries(s.reconciliation || {}).map(([acct, r]) => [acct, { content: num(r.checked), num: true }, { content: num(r.fills_booked), num: true },
        { content: countWords(r.settled, "status."), class: "wrap" }, { content: mismatchWords(r), class: "wrap" }, r.error ? speak(r.error) : "—"]),
      { empty: t("status.no_recon") },
    );
    const strat = s.strategies || {};
    const errors = strategyErrors || [];
    const limit = disp.global_limit || {};
    replace(statusCard,
      h("div", { class: "card-head" }, h("h2", { id: "status-h" }, t("admin.status")), h("span", { class: "muted small" }, t("admin.status_auto"))),
      h("div", { class: "grid" },
        h("div", { class: "span-4" }, h("h3", null, t("status.server")), kv([
          [t("status.version"), s.version],
          [t("status.trading_state"), t(`state.${s.trading_state}`)],
          [t("status.market"), `${s.market?.mode} · ${s.market?.open ? t("rules.open") : t("rules.closed")}`],
          [t("status.readiness"), readiness(s)],
          [t("status.paused"), s.paused?.paused
            ? t("status.paused_yes", { reason: s.paused.reason || "—", by: s.paused.by || "?" })
            : t("status.paused_no")],
          [t("status.queue_depth"), num(s.queue?.size)],
          [t("status.rate_use"), `${num(disp.global_rate_in_window)} / ${num(limit.limit)} (${limit.window}s)`],
          [t("status.in_flight"), num(disp.in_flight)],
          [t("status.orders"), countWords(s.orders, "status.orders.")],
        ])),
        h("div", { class: "span-8" }, h("h3", null, t("status.feed", { name: tOr(`feed.${feed.feed}`, feed.feed || "?") })), kv([
          [t("status.symbols_wanted"), `${num(feed.symbols_wanted)} (${t("status.placed")} ${num(feed.symbols_placed)})`],
          [t("status.per_session"), feed.symbols_per_session ? num(feed.symbols_per_session) : t("status.unlimited")],
          [t("status.consumers"), num(feed.consumers)],
          [t("status.reconnects"), num(feed.reconnects)],
        ]), sessions),
        h("div", { class: "span-6" }, h("h3", null, t("status.gateways")), gateways),
        h("div", { class: "span-6" }, h("h3", null, t("status.reconciliation")), recon),
        h("div", { class: "span-12" }, h("h3", null, t("status.strategies")),
          Object.keys(strat).length
            ? kv(Object.entries(strat).map(([k, v]) => [strategyLabel(k), plain(v)]))
            : h("p", { class: "muted small" }, t("status.no_strategies")),
          h("h3", null, t("status.strategy_errors")),
          table([t("status.strategy"), t("status.user"), t("strategy.status"), t("status.error"), t("audit.ts")],
            errors.map((e) => [
              `${e.name} (#${e.strategy_id}, ${e.kind})`,
              `${e.username ?? "?"} (#${e.user_id})`,
              t(`strategy.status.${e.status}`),
              { content: e.message || "—", class: "wrap" },
              dateTime(e.at),
            ]),
            { empty: t("status.no_strategy_errors") }))));
  }

  async function loadStatus() {
    try {
      const [s, errs] = await Promise.all([
        get("/api/admin/status"),
        get("/api/admin/strategy-errors").catch(() => ({ errors: [] })),
      ]);
      if (destroyed) return;
      renderStatus(s, errs.errors);
      if (s.trading_state !== shownKillState) renderKill(s.trading_state);
    } catch (e) {
      replace(statusCard, h("h2", { id: "status-h" }, t("admin.status")), h("p", { class: "form-error" }, errorText(e)));
    }
    if (!destroyed) statusTimer = setTimeout(loadStatus, STATUS_EVERY_MS);
  }

  // --- audit log ---------------------------------------------------------------------------------------------------
  const actionFilter = input({ placeholder: "auth.login", autocomplete: "off" });
  const userFilter = input({ inputmode: "numeric", autocomplete: "off" });
  const auditTable = h("div");
  const more = h("button", { type: "button" }, t("admin.audit_more"));
  more.addEventListener("click", () => loadAudit(true));
  const filterForm = h("form", { class: "fields-inline", novalidate: true },
    field(t("audit.action"), actionFilter, { name: "action" }),
    field(t("audit.user_id"), userFilter, { name: "user_id" }),
    h("div", { class: "field" }, h("span", { class: "label" }, "\u00a0"), h("button", { type: "submit" }, t("admin.audit_filter"))));
  filterForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadAudit(false);
  });
  replace(auditCard, h("h2", { id: "adm-audit-h" }, t("admin.audit")), filterForm, auditTable, h("div", { class: "row" }, more));

  async function loadAudit(append) {
    const uid = userFilter.value.trim() ? parseInteger(userFilter.value) : null;
    if (uid !== null && (!Number.isInteger(uid) || uid < 1)) {
      toast(t("admin.err_user_id"), "error");
      return;
    }
    const before = append ? auditBefore : null;
    try {
      const data = await get(`/api/admin/audit${qs({ limit: 100, before_id: before, action: actionFilter.value.trim(), user_id: uid })}`);
      auditRows = append ? [...auditRows, ...data.entries] : data.entries;
      auditBefore = data.entries.length ? data.entries[data.entries.length - 1].id : auditBefore;
      more.disabled = data.entries.length < 100;
      replace(auditTable, table(
        [t("audit.ts"), t("audit.user_id"), t("audit.actor"), t("audit.action"), t("audit.target"), "IP", t("audit.detail")],
        auditRows.map((e) => [dateTime(e.ts), String(e.user_id ?? "—"), String(e.actor_id ?? "—"), h("span", { class: "mono small" }, e.action),
          e.target ?? "—", e.ip ?? "—", { content: detailWords(e.detail), class: "wrap small detail" }]),
        { empty: t("admin.audit_empty") },
      ));
    } catch (e) {
      replace(auditTable, h("p", { class: "form-error" }, errorText(e)));
    }
  }

  async function loadUsers() {
    try {
      const [u, tr] = await Promise.all([get("/api/admin/users"), get("/api/admin/tiers")]);
      tiers = tr.tiers;
      users = u.users;
      renderUsers(u.max_users);
      renderTiers();
      renderNewUser();
    } catch (e) {
      replace(usersCard, h("h2", { id: "users-h" }, t("admin.users")), h("p", { class: "form-error" }, errorText(e)));
    }
  }

  renderKill("ACTIVE");
  loadUsers();
  loadStatus();
  loadAudit(false);
  return {
    unmount() {
      destroyed = true;
      clearTimeout(statusTimer);
    },
    refresh() {
      loadUsers();
      loadAudit(false);
    },
  };
}

