// The two live streams: /ws/market-data (quotes) and /ws/events (the user's orders, fills and
// strategies). Both authenticate with a first {"type":"auth","token"} message (never a token in
// the URL, where proxies would log it), reconnect with backoff when dropped, and say so.
//
// After a reconnect the events stream may have missed something, so it emits "resync" and the
// pages reload what they show from the HTTP API.

import { accessToken, onTokens, refreshTokens } from "./api.js";
import { lang } from "./i18n.js";

const MAX_DELAY_MS = 10_000;

class LiveSocket {
  constructor(path) {
    this.path = path;
    this.ws = null;
    this.authed = false;
    this.everOpened = false;
    this.stopped = true;
    this.attempt = 0;
    this.timer = null;
    this.state = "idle";
    this.detail = {};
    this.messageListeners = new Set();
    this.stateListeners = new Set();
    this.openListeners = new Set();
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    this.everOpened = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000);
      this.ws = null;
    }
    this.authed = false;
    this.setState("idle");
  }

  setState(state, detail = {}) {
    this.state = state;
    this.detail = detail;
    for (const fn of this.stateListeners) fn(state, detail);
  }

  connect() {
    const token = accessToken();
    if (!token) {
      this.setState("closed");
      return;
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    // ?lang= picks the language of the server's error messages (no headers on a WebSocket).
    const ws = new WebSocket(`${proto}//${location.host}${this.path}?lang=${lang()}`);
    this.ws = ws;
    this.authed = false;
    this.setState(this.everOpened ? "reconnecting" : "connecting", { attempt: this.attempt });
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: accessToken() || token }));
    ws.onmessage = (ev) => this.onMessage(ev);
    ws.onclose = (ev) => this.onClose(ev);
  }

  onMessage(ev) {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (msg.type === "auth" && msg.ok) {
      if (!this.authed) {
        const reconnected = this.everOpened;
        this.authed = true;
        this.everOpened = true;
        this.attempt = 0;
        this.setState("open", { reconnected });
        for (const fn of this.openListeners) fn(reconnected);
      }
      return;
    }
    if (msg.type === "error" && msg.code === "token.expired") {
      // The stream keeps going for a grace period: hand it a fresh token.
      refreshTokens()
        .then((t) => this.send({ type: "auth", token: t }))
        .catch(() => {});
    }
    for (const fn of this.messageListeners) fn(msg);
  }

  onClose(ev) {
    this.ws = null;
    this.authed = false;
    if (this.stopped) return;
    if (ev.code === 4001) {
      // Unauthorised: renew the session first; if that fails the sign-in overlay takes over.
      refreshTokens().then(
        () => this.retry(),
        () => this.setState("closed", { code: ev.code }),
      );
      return;
    }
    this.retry(ev.code === 4008 || ev.code === 4003 ? 5 : 0);
  }

  retry(extraSteps = 0) {
    this.attempt += 1;
    const step = Math.min(this.attempt - 1 + extraSteps, 5);
    const delay = Math.min(MAX_DELAY_MS, 500 * 2 ** step) + Math.floor(Math.random() * 250);
    this.setState("reconnecting", { attempt: this.attempt, delay });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }
}

/** Quotes by symbol, reference-counted: a page watches what it shows and lets go on leaving. */
class MarketFeed {
  constructor() {
    this.socket = new LiveSocket("/ws/market-data");
    this.watchers = new Map(); // symbol -> Set(callback)
    this.last = new Map(); // symbol -> latest quote
    this.books = new Map(); // symbol -> Set(callback) for the "orderbook" channel
    this.socket.messageListeners.add((msg) => this.onMessage(msg));
    this.socket.openListeners.add(() => this.resubscribe());
  }

  onMessage(msg) {
    if (msg.type === "orderbook") {
      const fns = this.books.get(msg.symbol);
      if (fns) for (const fn of fns) fn(msg);
      return;
    }
    if (msg.type !== "quote") return;
    this.last.set(msg.symbol, msg);
    const fns = this.watchers.get(msg.symbol);
    if (fns) for (const fn of fns) fn(msg);
  }

  resubscribe() {
    const symbols = [...this.watchers.keys()].filter((s) => !this.books.has(s));
    if (symbols.length) this.socket.send({ type: "subscribe", symbols });
    const booked = [...this.books.keys()];
    if (booked.length) this.socket.send({ type: "subscribe", symbols: booked, channels: ["trades", "orderbook"] });
  }

  /**
   * Call ``fn(book)`` for every order-book push of ``symbol`` (the "orderbook" channel of
   * /ws/market-data); trades keep flowing to ``watch``ers. Returns a function that stops it.
   */
  watchBook(symbol, fn) {
    const fresh = !this.books.has(symbol);
    if (fresh) this.books.set(symbol, new Set());
    this.books.get(symbol).add(fn);
    if (fresh && this.socket.authed) {
      this.socket.send({ type: "subscribe", symbols: [symbol], channels: ["trades", "orderbook"] });
    }
    return () => {
      const set = this.books.get(symbol);
      if (!set) return;
      set.delete(fn);
      if (set.size) return;
      this.books.delete(symbol);
      if (!this.socket.authed) return;
      // The server's subscribe only adds channels, and an unsubscribe without "channels" drops
      // only "trades": say "orderbook" explicitly, or the book keeps streaming to nobody.
      const channels = this.watchers.has(symbol) ? ["orderbook"] : ["trades", "orderbook"];
      this.socket.send({ type: "unsubscribe", symbols: [symbol], channels });
    };
  }

  /** Call ``fn(quote)`` for every quote of ``symbols``; returns a function that stops it. */
  watch(symbols, fn) {
    const fresh = [];
    for (const s of symbols) {
      if (!this.watchers.has(s)) {
        this.watchers.set(s, new Set());
        fresh.push(s);
      }
      this.watchers.get(s).add(fn);
      const q = this.last.get(s);
      if (q) fn(q);
    }
    if (fresh.length && this.socket.authed) this.socket.send({ type: "subscribe", symbols: fresh });
    return () => {
      const gone = [];
      for (const s of symbols) {
        const set = this.watchers.get(s);
        if (!set) continue;
        set.delete(fn);
        if (!set.size) {
          this.watchers.delete(s);
          gone.push(s);
        }
      }
      if (gone.length && this.socket.authed) this.socket.send({ type: "unsubscribe", symbols: gone });
    };
  }
}

/** The user's own events, by type ("order", "fill", "strategy", "strategy_log", "resync"). */
class EventsFeed {
  constructor() {
    this.socket = new LiveSocket("/ws/events");
    this.listeners = new Map();
    this.socket.messageListeners.add((msg) => this.onMessage(msg));
    this.socket.openListeners.add((reconnected) => {
      if (reconnected) this.emit({ type: "resync" });
    });
  }

  onMessage(msg) {
    if (msg.type === "gap") {
      // We fell behind and lost events: reload, then handle the one that came with the gap.
      this.emit({ type: "resync" });
      if (msg.next) this.emit(msg.next);
      return;
    }
    this.emit(msg);
  }

  emit(msg) {
    const fns = this.listeners.get(msg.type);
    if (fns) for (const fn of [...fns]) fn(msg);
  }

  /** Listen for events of ``type``; returns a function that stops listening. */
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type)?.delete(fn);
  }
}

export const market = new MarketFeed();
export const events = new EventsFeed();
const sockets = [market.socket, events.socket];

/** Open both streams (after sign-in). */
export function startLive() {
  for (const s of sockets) s.start();
}

/** Close both streams (sign-out, expired session). */
export function stopLive() {
  for (const s of sockets) s.stop();
}

/** The combined state of both streams: "open", "connecting", "reconnecting", "closed", "idle". */
export function liveState() {
  const states = sockets.map((s) => s.state);
  for (const worst of ["closed", "reconnecting", "connecting", "idle"]) {
    if (states.includes(worst)) {
      const s = sockets.find((x) => x.state === worst);
      return { state: worst, detail: s.detail };
    }
  }
  return { state: "open", detail: sockets.map((s) => s.detail).find((d) => d.reconnected) || {} };
}

/** Call ``fn(combined)`` whenever either stream changes state. */
export function onLiveState(fn) {
  for (const s of sockets) s.stateListeners.add(() => fn(liveState()));
}

// A renewed access token goes to the open streams so they outlive the old one.
onTokens((token) => {
  for (const s of sockets) if (s.authed) s.send({ type: "auth", token });
});
