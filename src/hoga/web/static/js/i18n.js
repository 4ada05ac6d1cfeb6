// Korean first, English on request. t(key, {name: value}) looks a key up in the current
// language (falling back to Korean) and fills {name} placeholders. The choice is remembered in
// localStorage - it is the only thing besides the session tokens that the dashboard stores.

import { fillJosa, josa } from "./josa.js";
import { MESSAGES } from "./messages.js";

const LANG_KEY = "hoga.lang";
let current = readLang();
const listeners = new Set();

function readLang() {
  try {
    const saved = localStorage.getItem(LANG_KEY);
    if (saved === "ko" || saved === "en") return saved;
  } catch {
    // storage disabled: Korean
  }
  return "ko";
}

/** The current language: "ko" or "en". */
export function lang() {
  return current;
}

/** Switch language; listeners re-render. */
export function setLang(next) {
  if (next !== "ko" && next !== "en") return;
  current = next;
  try {
    localStorage.setItem(LANG_KEY, next);
  } catch {
    // not remembered, still switched
  }
  document.documentElement.lang = next;
  for (const fn of listeners) fn(next);
}

export function onLang(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

const warned = new Set();

/** Translate ``key``; ``vars`` fill {placeholders}. */
export function t(key, vars) {
  const entry = MESSAGES[key];
  let text;
  if (!entry) {
    if (!warned.has(key)) {
      warned.add(key);
      console.warn(`i18n: missing key ${key}`);
    }
    text = key;
  } else {
    text = entry[current] ?? entry.ko;
  }
  if (vars) {
    text = fillJosa(text, vars);
    text = text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
  }
  return text;
}

/** Pick the language's variant of a server-provided pair (e.g. name / name_en). */
export function pick(ko, en) {
  return current === "en" && en ? en : ko;
}

document.documentElement.lang = current;

const HANGUL = /[\uac00-\ud7a3\u3131-\u318e]/;
const GROUP = /(?:^|\s+)\(([^()]*)\)/g;
const isEnglish = (g) => /[A-Za-z]/.test(g) && !HANGUL.test(g);

const PARTICLE = /(이\(가\)|을\(를\)|은\(는\)|과\(와\)|와\(과\)|\(으\)로)/g;
const PARTICLE_PAIR = { "이(가)": "이/가", "을(를)": "을/를", "은(는)": "은/는", "과(와)": "과/와", "와(과)": "와/과", "(으)로": "(으)로" };

/** "사용자 'kim'이(가)" -> "사용자 'kim'이": a written-out particle resolved by the sound before it. */
function resolveParticles(text) {
  return text.replace(PARTICLE, (m, p, offset) => {
    const before = text.slice(0, offset);
    return josa(before, PARTICLE_PAIR[p]).slice(before.length);
  });
}

/**
 * The current language's half of a server text written "한국어 (English)" (an order's reason, a
 * strategy's error) - the same rule as the server's api/language.py, for texts inside data
 * rather than error answers.
 */
export function speak(text) {
  if (!text || !HANGUL.test(text)) return text ?? "";
  const english = [...text.matchAll(GROUP)].map((m) => m[1].trim()).filter(isEnglish);
  if (!english.length) return current === "ko" ? resolveParticles(text) : text;
  if (current === "en") {
    const joined = english.join("; ");
    return joined.charAt(0).toUpperCase() + joined.slice(1);
  }
  return resolveParticles(text)
    .replace(GROUP, (m, g) => (isEnglish(g) ? "" : m))
    .replace(/\s+([.,;:])/g, "$1")
    .replace(/\s{2,}/g, " ")
    .trim()
    .replace(/;$/, "")
    .trim();
}
