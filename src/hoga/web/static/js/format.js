// Numbers the Korean way (thousands separators from toLocaleString('ko-KR'); money as "원" in
// Korean and "₩" in English), times in KST, dates unambiguous (2026-12-04 in English), and the
// colour class of a change: rise RED ("up"), fall BLUE ("down").

import { lang } from "./i18n.js";

const NUM = "ko-KR";
const TZ = "Asia/Seoul";

/** 1234567 -> "1,234,567"; null/undefined -> "—". */
export function num(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return Number(n).toLocaleString(NUM);
}

/** Won amount: Korean 1234567 -> "1,234,567원", -500 -> "-500원"; English "₩1,234,567", "-₩500". */
export function won(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  const v = Math.round(Number(n));
  const digits = Math.abs(v).toLocaleString(NUM);
  const sign = v < 0 ? "-" : "";
  return lang() === "en" ? `${sign}₩${digits}` : `${sign}${digits}원`;
}

/** Signed won for P&L: "+1,200원" / "+₩1,200", "-300원", "0원". */
export function signedWon(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  const v = Math.round(Number(n));
  return (v > 0 ? "+" : "") + won(v);
}

/** A price (won, no symbol): 71400 -> "71,400". */
export function price(n) {
  return num(n);
}

/** Percent with sign: 1.234 -> "+1.23%". */
export function pct(x, digits = 2) {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  const v = Number(x);
  return (v > 0 ? "+" : "") + v.toLocaleString(NUM, { minimumFractionDigits: digits, maximumFractionDigits: digits }) + "%";
}

/** A ratio (0.0123) as percent: "+1.23%". */
export function ratioPct(x, digits = 2) {
  return x === null || x === undefined ? "—" : pct(Number(x) * 100, digits);
}

/** "up" (red), "down" (blue) or "flat" for a signed change. */
export function dir(n) {
  if (!n) return "flat";
  return n > 0 ? "up" : "down";
}

/** Time of day in KST: "15:04:05". */
export function time(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleTimeString(lang() === "en" ? "en-GB" : "ko-KR", { timeZone: TZ, hourCycle: "h23", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** Date and time in KST: "2026. 12. 04. 15:04:05" (Korean) or "2026-12-04 15:04:05" (English). */
export function dateTime(iso) {
  if (!iso) return "—";
  if (lang() === "en") return `${isoDate(new Date(iso))} ${time(iso)}`;
  return new Date(iso).toLocaleString("ko-KR", {
    timeZone: TZ, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

/** A calendar date ("2026-12-04", or an ISO time) as "2026-12-04" (English) or "2026. 12. 04." (Korean). */
export function day(value) {
  if (!value) return "—";
  const iso = /^\d{4}-\d{2}-\d{2}$/.test(value) ? value : isoDate(new Date(value));
  if (lang() === "en") return iso;
  const [y, m, d] = iso.split("-");
  return `${y}. ${m}. ${d}.`;
}

/** Digits with thousands separators as typed into a price or quantity field ("71400" -> "71,400"). */
export function groupDigits(text) {
  const digits = String(text ?? "").replace(/[^\d]/g, "");
  if (!digits) return "";
  return Number.parseInt(digits, 10).toLocaleString(NUM);
}

/** "2026-11-26" in KST, for <input type="date">. */
export function isoDate(d = new Date()) {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" }).format(d);
  return parts;
}

/** Parse digits typed by a person ("71,400" or "71400") into an integer, or NaN. */
export function parseInteger(text) {
  const s = String(text ?? "").replace(/[,\s₩원]/g, "");
  if (!/^-?\d+$/.test(s)) return NaN;
  return Number.parseInt(s, 10);
}
