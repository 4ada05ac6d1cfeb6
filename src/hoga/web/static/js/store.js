// The signed-in user's account state, shared by the pages: who they are, their portfolio, their
// orders and recent fills. Loaded over HTTP and kept current by /ws/events; pages listen with
// store.on("portfolio" | "orders" | "fills" | "me", fn).

import { get, qs } from "./api.js";
import { debounce } from "./dom.js";
import { events } from "./live.js";

const OPEN_STATES = new Set(["QUEUED", "SUBMITTING", "ACCEPTED", "PARTIALLY_FILLED", "CANCEL_PENDING", "MODIFY_PENDING", "UNKNOWN"]);
const CANCELLABLE = new Set(["QUEUED", "ACCEPTED", "PARTIALLY_FILLED"]);
const MODIFIABLE = new Set(["ACCEPTED", "PARTIALLY_FILLED"]);
const MAX_ORDERS = 100;
const MAX_FILLS = 50;

const TERMINAL = new Set(["FILLED", "CANCELLED", "REJECTED", "DENIED", "EXPIRED"]);

/**
 * True when ``a`` is a later version of an order than ``b``. Versions arrive by two roads (the
 * HTTP answer and /ws/events) in either order: the 202 answer of a market order can come after
 * the event saying it filled.
 */
export function isNewer(a, b) {
  const ta = Date.parse(a.updated_at);
  const tb = Date.parse(b.updated_at);
  if (ta !== tb) return ta > tb;
  if (TERMINAL.has(a.status) !== TERMINAL.has(b.status)) return TERMINAL.has(a.status);
  return a.filled_qty >= b.filled_qty;
}

export function isOpen(order) {
  return OPEN_STATES.has(order.status);
}

export function isCancellable(order) {
  return CANCELLABLE.has(order.status);
}

/** A resting limit order can be modified (정정) unless a modify is already on its way. */
export function isModifiable(order) {
  return order.type === "limit" && MODIFIABLE.has(order.status) && !order.modify_pending;
}

class Store {
  constructor() {
    this.me = null;
    this.health = null;
    this.portfolio = null;
    this.orders = new Map(); // id -> order (today's and open ones, newest first when listed)
    this.fills = []; // newest first
    this.listeners = new Map();
    this.reloadPortfolio = debounce(() => this.loadPortfolio().catch(() => {}), 250);
    this.unsubscribe = [];
  }

  on(topic, fn) {
    if (!this.listeners.has(topic)) this.listeners.set(topic, new Set());
    this.listeners.get(topic).add(fn);
    return () => this.listeners.get(topic)?.delete(fn);
  }

  emit(topic, data) {
    const fns = this.listeners.get(topic);
    if (fns) for (const fn of [...fns]) fn(data);
  }

  /** Start following the event stream (once per sign-in). */
  attach() {
    this.detach();
    this.unsubscribe = [
      // The order view is the message's "order" field (or, per the modify contract, the message).
      events.on("order", (msg) => this.upsertOrder(msg.order || msg)),
      events.on("fill", (msg) => {
        this.fills.unshift(msg.fill);
        this.fills.length = Math.min(this.fills.length, MAX_FILLS);
        this.emit("fills", this.fills);
        this.emit("fill", msg.fill);
        this.reloadPortfolio();
      }),
      events.on("resync", () => this.loadAll().catch(() => {})),
    ];
  }

  detach() {
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
  }

  reset() {
    this.detach();
    this.me = null;
    this.portfolio = null;
    this.orders = new Map();
    this.fills = [];
  }

  async loadMe() {
    this.me = await get("/api/me");
    this.emit("me", this.me);
    return this.me;
  }

  async loadPortfolio() {
    this.portfolio = await get("/api/portfolio");
    this.emit("portfolio", this.portfolio);
    return this.portfolio;
  }

  async loadOrders() {
    const [open, recent] = await Promise.all([
      get(`/api/orders${qs({ status: "open", limit: 200 })}`),
      get(`/api/orders${qs({ limit: 50 })}`),
    ]);
    const map = new Map();
    for (const o of [...recent.orders, ...open.orders, ...this.orders.values()]) {
      const known = map.get(o.id);
      if (!known || isNewer(o, known)) map.set(o.id, o);
    }
    this.orders = map;
    this.emit("orders", this.orderList());
  }

  async loadFills() {
    const data = await get(`/api/fills${qs({ limit: MAX_FILLS })}`);
    this.fills = data.fills;
    this.emit("fills", this.fills);
  }

  loadAll() {
    return Promise.all([this.loadPortfolio(), this.loadOrders(), this.loadFills()]);
  }

  upsertOrder(order) {
    const known = this.orders.get(order.id);
    if (known && !isNewer(order, known)) return;
    this.orders.set(order.id, order);
    if (this.orders.size > MAX_ORDERS + 50) {
      // Forget the oldest finished orders; open ones always stay.
      const finished = this.orderList().filter((o) => !isOpen(o));
      for (const o of finished.slice(MAX_ORDERS)) this.orders.delete(o.id);
    }
    this.emit("orders", this.orderList());
    this.emit("order", order);
    if (order.status === "CANCELLED" || order.status === "REJECTED" || order.status === "QUEUED") {
      this.reloadPortfolio(); // reserved cash changed
    }
  }

  /** Orders, newest first. */
  orderList() {
    return [...this.orders.values()].sort((a, b) => b.id - a.id);
  }

  /** The user's accounts from the last portfolio load: [{id, label, broker, cash, ...}]. */
  accounts() {
    return this.portfolio ? this.portfolio.accounts : [];
  }
}

export const store = new Store();
