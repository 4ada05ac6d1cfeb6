// A date field that reads the same in every browser: YYYY-MM-DD text (an <input type="date">
// shows the browser's locale, e.g. 09/06/2026 - ambiguous). "2026.12.04", "2026/12/04" and
// "20261204" are tidied into 2026-12-04 when the field is left.

import { h } from "../dom.js";

const ISO = /^\d{4}-\d{2}-\d{2}$/;

/** True for a real calendar date written YYYY-MM-DD. */
export function isIsoDate(text) {
  if (!ISO.test(text)) return false;
  const d = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === text;
}

/** Normalise what was typed; returns the text unchanged when it cannot. */
export function tidyDate(text) {
  const digits = String(text || "").trim().replace(/[./\s]/g, "-").replace(/-+/g, "-").replace(/-$/, "");
  const m = /^(\d{4})-?(\d{1,2})-?(\d{1,2})$/.exec(digits);
  if (!m) return String(text || "").trim();
  return `${m[1]}-${m[2].padStart(2, "0")}-${m[3].padStart(2, "0")}`;
}

export function dateInput(value) {
  const input = h("input", {
    type: "text", inputmode: "numeric", autocomplete: "off", maxlength: 10, placeholder: "2026-12-04", value: value || "",
  });
  input.addEventListener("blur", () => {
    input.value = tidyDate(input.value);
  });
  return input;
}
