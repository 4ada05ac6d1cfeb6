// Fill and rejection notices on every page: a toast in this tab whichever page is open (each
// browser tab has its own /ws/events stream, so every open tab says it), and - when the person
// turned them on in the notification settings - a browser notification while the tab is hidden
// and a short sound. The two switches live in localStorage ("hoga.notify"); nothing else.

import { toast } from "./dom.js";
import { num, price } from "./format.js";
import { speak, t } from "./i18n.js";
import { events } from "./live.js";
import { nameOf } from "./names.js";

const KEY = "hoga.notify";
const REJECTED = new Set(["REJECTED", "DENIED"]);

/** {browser: bool, sound: bool} */
export function notifySettings() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) || "{}");
    return { browser: Boolean(saved.browser), sound: Boolean(saved.sound) };
  } catch {
    return { browser: false, sound: false };
  }
}

export function saveNotifySettings(next) {
  try {
    localStorage.setItem(KEY, JSON.stringify({ browser: Boolean(next.browser), sound: Boolean(next.sound) }));
  } catch {
    // storage disabled: the switch lasts for this page only
  }
}

let audio = null;
/** A short two-tone chime (Web Audio: no sound file to fetch). */
export function chime(kind = "ok") {
  try {
    audio ??= new AudioContext();
    const now = audio.currentTime;
    for (const [i, freq] of (kind === "ok" ? [880, 1320] : [440, 330]).entries()) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.08, now + i * 0.12);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.12 + 0.18);
      osc.connect(gain).connect(audio.destination);
      osc.start(now + i * 0.12);
      osc.stop(now + i * 0.12 + 0.2);
    }
  } catch {
    // no audio here
  }
}

function announce(text, kind) {
  toast(text, kind === "ok" ? "ok fill-toast" : "error reject-toast", 8000);
  const s = notifySettings();
  if (s.sound) chime(kind);
  if (s.browser && typeof Notification !== "undefined" && Notification.permission === "granted" && document.hidden) {
    try {
      new Notification("hoga 호가", { body: text, tag: `hoga-${kind}` });
    } catch {
      // some browsers only allow notifications from a service worker
    }
  }
}

const seen = new Set();
let offs = [];

/** Start announcing fills and rejections (after sign-in); returns nothing. */
export function startNotices() {
  stopNotices();
  offs = [
    events.on("fill", (msg) => {
      const f = msg.fill;
      if (!f || seen.has(`f${f.id}`)) return;
      seen.add(`f${f.id}`);
      announce(t("notice.fill", {
        name: nameOf(f.symbol) || f.symbol,
        side: t(`side.${f.side}`),
        qty: num(f.qty),
        price: price(f.price),
      }), "ok");
    }),
    events.on("order", (msg) => {
      const o = msg.order || msg;
      if (!o || !REJECTED.has(o.status) || seen.has(`o${o.id}`)) return;
      seen.add(`o${o.id}`);
      const reason = speak(o.reason || "") || t(`status.${o.status}`);
      announce(t("notice.rejected", { id: o.id, name: nameOf(o.symbol) || o.symbol, reason }), "error");
    }),
  ];
}

export function stopNotices() {
  for (const off of offs) off();
  offs = [];
}
