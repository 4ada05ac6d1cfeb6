// Form building blocks: labelled fields with help and error text wired for screen readers,
// client-side checks before sending, and the server's refusal shown next to the field it names.

import { h, uid } from "./dom.js";
import { speak, t } from "./i18n.js";

/**
 * A labelled field. ``control`` is an <input>/<select>/<textarea> (given an id if it has none).
 * Returns the wrapper; the control is wrapper.control, the error slot wrapper.errorEl.
 */
export function field(label, control, { help, name } = {}) {
  if (!control.id) control.id = uid("in");
  if (name) control.name = name;
  const helpEl = help ? h("span", { class: "help", id: uid("help") }, help) : null;
  const errorEl = h("span", { class: "error-msg", id: uid("err"), "aria-live": "polite" });
  control.setAttribute("aria-describedby", [helpEl?.id, errorEl.id].filter(Boolean).join(" "));
  const wrap = h("div", { class: "field", dataset: { field: control.name || "" } },
    h("label", { for: control.id }, label), control, helpEl, errorEl);
  wrap.control = control;
  wrap.errorEl = errorEl;
  return wrap;
}

export function input(props = {}) {
  return h("input", { type: "text", ...props });
}

export function select(options, props = {}) {
  return h(
    "select",
    props,
    options.map((o) => h("option", { value: o.value, selected: o.selected || false }, o.label)),
  );
}

/** A form-level message box (role=alert so it is announced). */
export function errorBox() {
  return h("div", { class: "form-error hidden", role: "alert" });
}

export function okBox() {
  return h("div", { class: "form-ok hidden", role: "status" });
}

export function showBox(box, message) {
  box.textContent = message || "";
  box.classList.toggle("hidden", !message);
}

/** Mark a field invalid with ``message`` (or clear it with null). */
export function setFieldError(wrap, message) {
  if (!wrap) return;
  wrap.classList.toggle("invalid", Boolean(message));
  wrap.errorEl.textContent = message || "";
  wrap.control.setAttribute("aria-invalid", message ? "true" : "false");
}

/** Tell the user to fix the fields marked invalid, and focus the first of them. */
export function showFixErrors(form, box) {
  showBox(box, t("form.fix_errors"));
  form.querySelector(".field.invalid input, .field.invalid select")?.focus();
}

/** Whether a field of ``form`` is marked invalid; if so, ``showFixErrors`` has said so. */
export function refuseInvalid(form, box) {
  if (!form.querySelector(".field.invalid")) return false;
  showFixErrors(form, box);
  return true;
}

export function clearErrors(form) {
  for (const wrap of form.querySelectorAll(".field.invalid")) setFieldError(wrap, null);
  for (const box of form.querySelectorAll(".form-error")) showBox(box, null);
}

/** The words to show for an error thrown by the API helpers. */
export function errorText(err) {
  if (!err) return "";
  if (err.code === "network") return t("error.network");
  if (err.code === "session.expired") return t("error.session_expired");
  return speak(err.message) || t("error.unknown");
}

/**
 * Show a refusal from the server: next to the field it names (when the form has it) and in the
 * form's error box. ``fieldFor`` maps server field names to wrappers.
 */
export function showApiError(form, box, err, fieldFor = {}) {
  const text = errorText(err);
  const names = [err.field, ...(err.fields || []).map((f) => f.field)].filter(Boolean);
  let focused = false;
  for (const name of names) {
    const short = String(name).split(".").pop();
    const wrap = fieldFor[name] || fieldFor[short] || form.querySelector(`.field[data-field="${CSS.escape(short)}"]`);
    if (wrap) {
      const own = (err.fields || []).find((f) => f.field === name);
      setFieldError(wrap, own && own.message ? own.message : text);
      if (!focused) {
        wrap.control.focus();
        focused = true;
      }
    }
  }
  showBox(box, text);
}

/** Disable a form's submit button while ``work`` runs. */
export async function busy(button, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}
