// Values people should read as words, not data: an audit entry's detail ("사유: 비밀번호 오류 ·
// IP: 10.0.0.1", never JSON), counters ("접수 3건 · 거부 0건"), a schema enum ("다음 날 시가",
// not "open").

import { num } from "./format.js";
import { MESSAGES } from "./messages.js";
import { speak, t } from "./i18n.js";

/** The translation of ``key`` when there is one, else ``fallback`` (no warning). */
export function tOr(key, fallback) {
  return key in MESSAGES ? t(key) : fallback;
}

function humanKey(key) {
  return tOr(`audit.f.${key}`, key.replace(/_/g, " "));
}

function humanValue(v) {
  if (v === null || v === undefined || v === "") return "—";
  if (typeof v === "boolean") return v ? t("audit.yes") : t("audit.no");
  if (typeof v === "number") return num(v);
  if (Array.isArray(v)) return v.map(humanValue).join(", ") || "—";
  if (typeof v === "object") return Object.entries(v).map(([k, x]) => `${humanKey(k)} ${humanValue(x)}`).join(", ");
  return speak(String(v));
}

/** An audit entry's detail object as "key: value · key: value" in the page's language. */
export function detailWords(detail) {
  if (!detail || typeof detail !== "object") return detail ? speak(String(detail)) : "";
  return Object.entries(detail)
    .map(([k, v]) => t("audit.key", { key: humanKey(k), value: humanValue(v) }))
    .join(" · ");
}

/** Counters {submitted: 3, denied: 0} as "접수 3건 · 거부 0건" (labels from ``prefix``+key). */
export function countWords(counts, prefix) {
  const parts = Object.entries(counts || {}).map(([k, v]) =>
    t("status.orders.count", { label: tOr(`${prefix}${k}`, k), n: num(v) }));
  return parts.join(" · ") || "—";
}

/** A schema enum value in words ("open" -> "다음 날 시가"), or the value itself. */
export function enumWords(value) {
  return tOr(`enum.${value}`, String(value));
}
