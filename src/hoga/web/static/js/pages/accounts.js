// Broker accounts: the paper account (its cash) and linked KIS / Kiwoom accounts with masked
// values only; link a new one (credentials go straight to the server's vault and are wiped from
// the form once accepted), test the connection, remove.

import { del, get, post } from "../api.js";
import { h, replace, table, toast } from "../dom.js";
import { busy, clearErrors, errorBox, errorText, field, input, okBox, refuseInvalid, select, setFieldError, showApiError, showBox } from "../forms.js";
import { dateTime, won } from "../format.js";
import { t } from "../i18n.js";
import { store } from "../store.js";

// Input formats (not trading rules): what the server accepts, checked early for quick feedback.
const ACCOUNT_NO_RE = /^(?:\d{8}-?\d{2}|\d{10,12})$/;
const KEY_RE = /^[\x21-\x7e]{8,512}$/;
const HTS_RE = /^[A-Za-z0-9_.-]{1,32}$/;
const URL_RE = /^(https?|wss?):\/\/[^\s/]+(:\d+)?(\/\S*)?$/;

export function mount(el) {
  let accounts = [];
  const listEl = h("div", null, h("p", { class: "muted" }, t("common.loading")));
  const formCard = h("section", { class: "card span-6", "aria-labelledby": "acct-new-h" });

  el.append(
    h("h1", null, t("accounts.title")),
    h("div", { class: "grid" },
      h("section", { class: "card span-12", "aria-labelledby": "acct-list-h" }, h("h2", { id: "acct-list-h" }, t("accounts.list")), listEl),
      formCard),
  );

  async function test(a, button) {
    button.disabled = true;
    try {
      const r = await post(`/api/broker-accounts/${a.id}/test`);
      toast(r.ok ? t("accounts.test_ok", { label: a.label }) : t("accounts.test_failed", { label: a.label, message: r.message }), r.ok ? "ok" : "error", 8000);
    } catch (e) {
      toast(t("accounts.test_failed", { label: a.label, message: errorText(e) }), "error", 8000);
    } finally {
      button.disabled = false;
      load();
    }
  }

  function removeButton(a) {
    const b = h("button", { type: "button", class: "small danger", "aria-label": t("accounts.remove_label", { label: a.label }) }, t("accounts.remove"));
    let armed = false;
    b.addEventListener("click", async () => {
      if (!armed) {
        armed = true;
        b.textContent = t("accounts.remove_confirm");
        setTimeout(() => {
          armed = false;
          b.textContent = t("accounts.remove");
        }, 5000);
        return;
      }
      b.disabled = true;
      try {
        await del(`/api/broker-accounts/${a.id}`);
        toast(t("accounts.removed", { label: a.label }), "ok");
        load();
        store.loadPortfolio().catch(() => {});
      } catch (e) {
        b.disabled = false;
        toast(errorText(e), "error", 8000);
      }
    });
    return b;
  }

  function renderList() {
    const rows = accounts.map((a) => {
      const lt = a.last_test;
      const paper = a.broker === "paper";
      return [
        { content: a.label || "—" },
        { content: t(`broker.${a.broker}`) },
        { content: paper ? t("env.paper") : t(`env.${a.env}`) },
        { content: h("span", { class: "mono" }, a.account_no) },
        { content: h("span", { class: "mono" }, a.app_key || "—") },
        { content: h("span", { class: "mono" }, a.app_secret || "—") },
        // hoga books the paper account's cash itself; a linked account's balance is the broker's.
        { content: paper || a.cash ? won(a.cash) : "—", num: true },
        { content: lt ? [h("span", { class: `badge ${lt.ok ? "ok" : "err"}` }, lt.ok ? t("accounts.ok") : t("accounts.failed")), " ", h("span", { class: "muted small" }, `${dateTime(lt.at)} ${lt.message || ""}`)] : "—", class: "wrap" },
        { content: h("div", { class: "row" },
          h("button", { type: "button", class: "small", "aria-label": t("accounts.test_label", { label: a.label }), onclick: (ev) => test(a, ev.currentTarget) }, t("accounts.test")),
          paper ? null : removeButton(a)) },
      ];
    });
    replace(listEl, table(
      [t("accounts.label"), t("accounts.broker"), t("accounts.env"), t("accounts.account_no"), t("accounts.app_key"),
        t("accounts.app_secret"), { text: t("accounts.cash"), num: true }, t("accounts.last_test"), t("common.actions")],
      rows,
      { caption: t("accounts.list"), empty: t("accounts.none") },
    ));
    listEl.querySelectorAll("tbody tr").forEach((tr, i) => {
      tr.dataset.accountId = accounts[i].id;
    });
  }

  function renderForm() {
    const broker = field(t("accounts.broker"), select([
      { value: "kis", label: t("broker.kis") },
      { value: "kiwoom", label: t("broker.kiwoom") },
    ]), { name: "broker" });
    const envMock = h("input", { type: "radio", name: "acct-env", value: "mock", checked: true });
    const envReal = h("input", { type: "radio", name: "acct-env", value: "real" });
    const env = h("fieldset", { class: "field", dataset: { field: "env" } }, h("legend", null, t("accounts.env")),
      h("label", { class: "checkbox" }, envMock, t("env.mock")),
      h("label", { class: "checkbox" }, envReal, t("env.real")));
    const accountNo = field(t("accounts.account_no"), input({ autocomplete: "off", inputmode: "numeric", placeholder: "50123456-01" }), { name: "account_no", help: t("accounts.account_no_help") });
    const appKey = field(t("accounts.app_key"), input({ type: "password", autocomplete: "off", spellcheck: "false" }), { name: "app_key" });
    const appSecret = field(t("accounts.app_secret"), input({ type: "password", autocomplete: "off", spellcheck: "false" }), { name: "app_secret" });
    const htsId = field(t("accounts.hts_id"), input({ autocomplete: "off" }), { name: "hts_id", help: t("accounts.hts_help") });
    const label = field(t("accounts.label"), input({ maxlength: 64 }), { name: "label" });
    // Where the broker's servers are: blank means the broker's own hosts. A local sandbox
    // (hoga fake-broker) or a proxy is the reason to fill these in.
    const baseUrl = field(t("accounts.base_url"), input({ autocomplete: "off", spellcheck: "false", placeholder: "http://127.0.0.1:8600" }), { name: "base_url", help: t("accounts.base_url_help") });
    const wsUrl = field(t("accounts.ws_url"), input({ autocomplete: "off", spellcheck: "false", placeholder: "ws://127.0.0.1:8600/tryitout" }), { name: "ws_url" });
    const advanced = h("details", { class: "field" }, h("summary", null, t("accounts.advanced")), baseUrl, wsUrl);
    const box = errorBox();
    const ok = okBox();
    const submit = h("button", { type: "submit", class: "primary" }, t("accounts.add"));
    const form = h("form", { novalidate: true, autocomplete: "off" }, box, ok,
      h("p", { class: "muted small" }, t("accounts.secret_note")),
      broker, env, accountNo, appKey, appSecret, htsId, label, advanced, h("div", { class: "row" }, submit));

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      showBox(ok, null);
      const values = {
        broker: broker.control.value,
        env: envReal.checked ? "real" : "mock",
        account_no: accountNo.control.value.trim(),
        app_key: appKey.control.value.trim(),
        app_secret: appSecret.control.value.trim(),
      };
      const hts = htsId.control.value.trim();
      const lbl = label.control.value.trim();
      if (hts) values.hts_id = hts;
      if (lbl) values.label = lbl;
      for (const [key, f] of [["base_url", baseUrl], ["ws_url", wsUrl]]) {
        const v = f.control.value.trim();
        setFieldError(f, !v || URL_RE.test(v) ? null : t("accounts.err_url"));
        if (v) values[key] = v;
      }
      if (advanced.querySelector(".field.invalid")) advanced.open = true;
      setFieldError(accountNo, ACCOUNT_NO_RE.test(values.account_no) ? null : t("accounts.err_account_no"));
      setFieldError(appKey, KEY_RE.test(values.app_key) ? null : t("accounts.err_key"));
      setFieldError(appSecret, KEY_RE.test(values.app_secret) ? null : t("accounts.err_key"));
      setFieldError(htsId, !hts || HTS_RE.test(hts) ? null : t("accounts.err_hts"));
      if (refuseInvalid(form, box)) return;
      await busy(submit, async () => {
        try {
          const acct = await post("/api/broker-accounts", values);
          // The secrets have gone to the vault: wipe them from the page.
          for (const f of [appKey, appSecret, accountNo, htsId, label, baseUrl, wsUrl]) f.control.value = "";
          showBox(ok, t("accounts.added", { label: acct.label }));
          load();
          store.loadPortfolio().catch(() => {});
        } catch (e) {
          if (e.field === "base_url" || e.field === "ws_url") advanced.open = true;
          showApiError(form, box, e, { account_no: accountNo, app_key: appKey, app_secret: appSecret, hts_id: htsId, label, base_url: baseUrl, ws_url: wsUrl });
        }
      });
    });
    replace(formCard, h("h2", { id: "acct-new-h" }, t("accounts.new")), form);
  }

  async function load() {
    try {
      const data = await get("/api/broker-accounts");
      accounts = data.accounts;
      renderList();
    } catch (e) {
      replace(listEl, h("p", { class: "form-error" }, errorText(e)));
    }
  }

  renderForm();
  load();
  return { unmount() {}, refresh: load };
}
