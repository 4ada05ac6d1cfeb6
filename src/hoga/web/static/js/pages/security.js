// Security: change password, enrol / disable TOTP (QR code rendered by the server as an SVG data
// URI), the IP allowlist, active sign-in sessions, and the account's recent security events.

import { del, get, post, put } from "../api.js";
import { h, replace, table, toast } from "../dom.js";
import { busy, clearErrors, errorBox, errorText, field, input, okBox, refuseInvalid, setFieldError, showApiError, showBox } from "../forms.js";
import { dateTime } from "../format.js";
import { t } from "../i18n.js";
import { detailWords } from "../words.js";
import { store } from "../store.js";

const MIN_PASSWORD = 8;
const MAX_ALLOWLIST = 50;

/** "Chrome 156 · Linux" from a user-agent string (the full string is in the title). */
export function describeAgent(ua) {
  if (!ua) return "—";
  const browser = (ua.match(/(Edg|OPR|Firefox|Chrome|Safari)\/(\d+)/) || [])
    .slice(1).join(" ").replace("Edg", "Edge").replace("OPR", "Opera");
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Windows/.test(ua) ? "Windows"
    : /Mac OS X/.test(ua) ? "macOS" : /Linux/.test(ua) ? "Linux" : "";
  return [browser || ua.slice(0, 40), os].filter(Boolean).join(" · ");
}

export function mount(el) {
  const passwordCard = h("section", { class: "card span-6", "aria-labelledby": "pw-h" });
  const totpCard = h("section", { class: "card span-6", "aria-labelledby": "totp-h" });
  const ipCard = h("section", { class: "card span-6", "aria-labelledby": "ip-h" });
  const sessionsCard = h("section", { class: "card span-6", "aria-labelledby": "sess-h" });
  const auditCard = h("section", { class: "card span-12", "aria-labelledby": "audit-h" });
  el.append(h("h1", null, t("security.title")), h("div", { class: "grid" }, passwordCard, totpCard, ipCard, sessionsCard, auditCard));

  // --- password -----------------------------------------------------------------------------------
  function renderPassword() {
    const current = field(t("security.current_password"), input({ type: "password", autocomplete: "current-password" }), { name: "current_password" });
    const next = field(t("security.new_password"), input({ type: "password", autocomplete: "new-password" }), { name: "new_password", help: t("security.password_help", { n: MIN_PASSWORD }) });
    const again = field(t("security.confirm_password"), input({ type: "password", autocomplete: "new-password" }), { name: "confirm" });
    const box = errorBox();
    const ok = okBox();
    const submit = h("button", { type: "submit", class: "primary" }, t("security.change_password"));
    const form = h("form", { novalidate: true }, box, ok, current, next, again, h("div", { class: "row" }, submit));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      showBox(ok, null);
      const cur = current.control.value;
      const nw = next.control.value;
      setFieldError(current, cur ? null : t("security.err_current"));
      setFieldError(next, nw.length >= MIN_PASSWORD && nw.trim() === nw ? null : t("security.err_new", { n: MIN_PASSWORD }));
      setFieldError(again, again.control.value === nw ? null : t("security.err_mismatch"));
      if (refuseInvalid(form, box)) return;
      await busy(submit, async () => {
        try {
          await post("/api/me/password", { current_password: cur, new_password: nw });
          for (const f of [current, next, again]) f.control.value = "";
          showBox(ok, t("security.password_changed"));
          loadSessions();
        } catch (e) {
          showApiError(form, box, e, { current_password: current, new_password: next });
        }
      });
    });
    replace(passwordCard, h("h2", { id: "pw-h" }, t("security.password")), form);
  }

  // --- TOTP ---------------------------------------------------------------------------------------------
  function renderTotp() {
    const me = store.me;
    const box = errorBox();
    const ok = okBox();
    if (me?.totp_enabled) {
      const pw = field(t("security.password_again"), input({ type: "password", autocomplete: "current-password" }), { name: "password" });
      const code = field(t("security.otp_code"), input({ inputmode: "numeric", autocomplete: "one-time-code" }), { name: "code" });
      const submit = h("button", { type: "submit", class: "danger" }, t("security.totp_disable"));
      const form = h("form", { novalidate: true }, box, pw, code, h("div", { class: "row" }, submit));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        clearErrors(form);
        setFieldError(pw, pw.control.value ? null : t("security.err_current"));
        setFieldError(code, /^[0-9A-Za-z-]{6,32}$/.test(code.control.value.trim()) ? null : t("login.otp_invalid_format"));
        if (form.querySelector(".field.invalid")) {
          showBox(box, t("form.fix_errors"));
          return;
        }
        await busy(submit, async () => {
          try {
            await post("/api/me/totp/disable", { password: pw.control.value, code: code.control.value.trim() });
            await store.loadMe();
            toast(t("security.totp_disabled"), "ok");
            renderTotp();
          } catch (e) {
            showApiError(form, box, e, { password: pw, code });
          }
        });
      });
      replace(totpCard, h("h2", { id: "totp-h" }, t("security.totp")),
        h("p", null, h("span", { class: "badge ok", dataset: { totp: "on" } }, t("security.totp_on")), " ",
          h("span", { class: "muted small" }, t("security.recovery_left", { n: me.recovery_codes_left ?? 0 }))),
        form);
      return;
    }
    const start = h("button", { type: "button", class: "primary" }, t("security.totp_start"));
    const area = h("div");
    start.addEventListener("click", () => busy(start, async () => {
      try {
        const enrol = await post("/api/me/totp/enroll");
        start.classList.add("hidden");
        renderEnrol(area, enrol);
      } catch (e) {
        showBox(box, errorText(e));
      }
    }));
    replace(totpCard, h("h2", { id: "totp-h" }, t("security.totp")),
      h("p", null, h("span", { class: "badge", dataset: { totp: "off" } }, t("security.totp_off")), " ", t("security.totp_why")),
      box, ok, start, area);
  }

  function renderEnrol(area, enrol) {
    const code = field(t("security.otp_code"), input({ inputmode: "numeric", autocomplete: "one-time-code", maxlength: 6 }), { name: "code", help: t("security.otp_code_help") });
    const box = errorBox();
    const submit = h("button", { type: "submit", class: "primary" }, t("security.totp_confirm"));
    const form = h("form", { novalidate: true }, box, code, h("div", { class: "row" }, submit));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const c = code.control.value.trim();
      if (!/^\d{6}$/.test(c)) {
        setFieldError(code, t("security.err_otp6"));
        showBox(box, t("form.fix_errors"));
        return;
      }
      await busy(submit, async () => {
        try {
          const res = await post("/api/me/totp/confirm", { code: c });
          await store.loadMe();
          // The secret leaves the page; the recovery codes are shown this once.
          replace(area,
            h("div", { class: "form-ok", role: "status" }, t("security.totp_enabled")),
            h("h3", null, t("security.recovery_codes")),
            h("p", { class: "small" }, t("security.recovery_note")),
            h("ul", { class: "codes", dataset: { recovery: "" } }, res.recovery_codes.map((rc) => h("li", null, rc))),
            h("button", { type: "button", onclick: () => renderTotp() }, t("security.recovery_done")));
        } catch (e) {
          showApiError(form, box, e, { code });
        }
      });
    });
    replace(area,
      h("p", { class: "small" }, t("security.totp_scan")),
      h("div", { class: "qr" }, h("img", { src: enrol.qr_svg, alt: t("security.qr_alt"), width: 200, height: 200 })),
      h("p", { class: "small" }, t("security.totp_manual"), " ", h("code", { dataset: { totpSecret: "" } }, enrol.secret)),
      form);
    code.control.focus();
  }

  // --- IP allowlist ---------------------------------------------------------------------------------------
  function renderIp() {
    const me = store.me;
    const area = h("textarea", { rows: 5, spellcheck: "false" });
    area.value = (me?.ip_allowlist || []).join("\n");
    const list = field(t("security.ip_list"), area, { name: "entries", help: t("security.ip_help") });
    const box = errorBox();
    const ok = okBox();
    const submit = h("button", { type: "submit", class: "primary" }, t("common.save"));
    const form = h("form", { novalidate: true }, box, ok, list, h("div", { class: "row" }, submit));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      showBox(ok, null);
      const entries = area.value.split(/[\n,]+/).map((x) => x.trim()).filter(Boolean);
      if (entries.length > MAX_ALLOWLIST) {
        setFieldError(list, t("security.err_ip_many", { n: MAX_ALLOWLIST }));
        showBox(box, t("form.fix_errors"));
        return;
      }
      const bad = entries.filter((x) => !/^[0-9A-Fa-f:.]+(\/\d{1,3})?$/.test(x));
      if (bad.length) {
        setFieldError(list, t("security.err_ip_format", { entries: bad.join(", ") }));
        showBox(box, t("form.fix_errors"));
        return;
      }
      await busy(submit, async () => {
        try {
          const res = await put("/api/me/ip-allowlist", { entries });
          area.value = res.entries.join("\n");
          await store.loadMe();
          showBox(ok, res.entries.length ? t("security.ip_saved", { n: res.entries.length }) : t("security.ip_cleared"));
        } catch (e) {
          setFieldError(list, errorText(e));
          showBox(box, errorText(e));
        }
      });
    });
    replace(ipCard, h("h2", { id: "ip-h" }, t("security.ip")), h("p", { class: "small muted" }, t("security.ip_note")), form);
  }

  // --- sessions ------------------------------------------------------------------------------------------------
  async function loadSessions() {
    try {
      const data = await get("/api/me/sessions");
      const rows = data.sessions.map((s) => [
        { content: s.current ? h("span", { class: "badge ok" }, t("security.this_session")) : "" },
        { content: dateTime(s.created_at) },
        { content: s.ip || "—" },
        { content: h("span", { title: s.user_agent || "" }, describeAgent(s.user_agent)) },
        { content: dateTime(s.expires_at) },
        { content: s.current ? "" : h("button", {
          type: "button",
          class: "small danger",
          onclick: async (ev) => {
            ev.currentTarget.disabled = true;
            try {
              await del(`/api/me/sessions/${encodeURIComponent(s.id)}`);
              toast(t("security.session_revoked"), "ok");
            } catch (e) {
              toast(errorText(e), "error");
            }
            loadSessions();
          },
        }, t("security.revoke")) },
      ]);
      replace(sessionsCard, h("h2", { id: "sess-h" }, t("security.sessions")), table(
        ["", t("security.signed_in"), "IP", t("security.browser"), t("security.expires"), ""], rows, { empty: t("security.no_sessions") }));
    } catch (e) {
      replace(sessionsCard, h("h2", { id: "sess-h" }, t("security.sessions")), h("p", { class: "form-error" }, errorText(e)));
    }
  }

  async function loadAudit() {
    try {
      const data = await get("/api/me/audit?limit=30");
      replace(auditCard, h("h2", { id: "audit-h" }, t("security.activity")), table(
        [t("audit.ts"), t("audit.action"), "IP", t("audit.detail")],
        data.entries.map((e) => [
          { content: dateTime(e.ts) },
          { content: h("span", { class: "mono small" }, e.action) },
          { content: e.ip || "—" },
          { content: detailWords(e.detail), class: "wrap small detail" },
        ]),
        { empty: t("security.no_activity") },
      ));
    } catch (e) {
      replace(auditCard, h("h2", { id: "audit-h" }, t("security.activity")), h("p", { class: "form-error" }, errorText(e)));
    }
  }

  renderPassword();
  renderTotp();
  renderIp();
  loadSessions();
  loadAudit();
  return {
    unmount() {},
    refresh() {
      loadSessions();
      loadAudit();
    },
  };
}
