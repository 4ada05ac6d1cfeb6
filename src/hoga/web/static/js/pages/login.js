// Sign-in: username and password, then the one-time code when the account has TOTP enrolled
// (the server answers 401 auth.otp_required). Used as the start page and, when a session
// expires, as an overlay above the page so whatever was typed there stays.

import { login } from "../api.js";
import { h } from "../dom.js";
import { busy, errorBox, field, input, showBox, showFixErrors, errorText, setFieldError } from "../forms.js";
import { t } from "../i18n.js";

/**
 * Build the sign-in card. ``onSignedIn(username)`` runs after a successful sign-in.
 * ``notice`` is shown above the form (e.g. "your session expired").
 */
export function loginCard({ onSignedIn, notice, username = "", simulated }) {
  const user = field(t("login.username"), input({ name: "username", autocomplete: "username", required: true, value: username, autocapitalize: "none", spellcheck: "false" }));
  const pass = field(t("login.password"), input({ type: "password", name: "password", autocomplete: "current-password", required: true }));
  const otp = field(
    t("login.otp"),
    input({ name: "otp", autocomplete: "one-time-code", inputmode: "numeric", maxlength: 32 }),
    { help: t("login.otp_help") },
  );
  otp.classList.add("hidden");
  const box = errorBox();
  const submit = h("button", { type: "submit", class: "primary" }, t("login.submit"));
  const form = h("form", { novalidate: true, "aria-labelledby": "login-title" },
    notice ? h("p", { class: "form-ok", role: "status" }, notice) : null,
    box, user, pass, otp, h("div", { class: "row" }, submit));

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const username = user.control.value.trim();
    const password = pass.control.value;
    const code = otp.control.value.trim();
    setFieldError(user, username ? null : t("login.username_required"));
    setFieldError(pass, password ? null : t("login.password_required"));
    const needOtp = !otp.classList.contains("hidden");
    setFieldError(otp, !needOtp || /^[0-9A-Za-z-]{6,32}$/.test(code) ? null : t("login.otp_invalid_format"));
    if (!username || !password || (needOtp && form.querySelector(".field.invalid"))) {
      showFixErrors(form, box);
      return;
    }
    showBox(box, null);
    await busy(submit, async () => {
      try {
        await login(username, password, needOtp ? code : null);
        pass.control.value = "";
        otp.control.value = "";
        onSignedIn(username);
      } catch (e) {
        if (e.code === "auth.otp_required") {
          otp.classList.remove("hidden");
          showBox(box, null);
          setFieldError(otp, null);
          otp.querySelector(".help").textContent = t("login.otp_needed");
          otp.control.focus();
          return;
        }
        if (e.code === "auth.otp_invalid") {
          setFieldError(otp, errorText(e));
          otp.control.select();
        }
        showBox(box, errorText(e));
      }
    });
  });

  return h("section", { class: "card login-card" },
    h("h1", { id: "login-title" }, "hoga ", h("span", { class: "muted" }, "호가"), " ", h("small", { class: "muted small" }, t("login.title"))),
    simulated ? h("p", null, h("span", { class: "sim-badge" }, t("sim.badge"))) : null,
    form);
}

/** The full-page sign-in screen. */
export function renderLoginPage(root, opts) {
  const card = loginCard(opts);
  root.replaceChildren(h("main", { id: "main", class: "login-wrap" }, card));
  card.querySelector("input[name=username]").focus();
}

/** The sign-in overlay shown above the current page when the session ends. */
export function showLoginOverlay(opts) {
  document.querySelector(".overlay")?.remove();
  const app = document.getElementById("app");
  const card = loginCard({
    ...opts,
    onSignedIn: (name) => {
      overlay.remove();
      app.inert = false;
      opts.onSignedIn(name);
    },
  });
  const overlay = h("div", { class: "overlay", role: "dialog", "aria-modal": "true", "aria-labelledby": "login-title" }, card);
  // The page stays as it was underneath, out of reach of clicks and the keyboard.
  app.inert = true;
  document.body.append(overlay);
  const first = opts.username ? "input[name=password]" : "input[name=username]";
  card.querySelector(first).focus();
  return overlay;
}
