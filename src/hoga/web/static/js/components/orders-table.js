// The orders table (overview and trade pages): live status from /ws/events through the store,
// a modify (정정) button on every resting limit order (PATCH /api/orders/{id}) and a cancel
// button on every order that can still be cancelled (DELETE /api/orders/{id}). The actions
// column comes first on the right edge (sticky) so its buttons stay inside the card however wide
// the table; on a phone the rows become cards.

import { del } from "../api.js";
import { h, replace, table, toast } from "../dom.js";
import { errorText } from "../forms.js";
import { num, price, time } from "../format.js";
import { speak, t } from "../i18n.js";
import { nameOf } from "../names.js";
import { isCancellable, isModifiable, isOpen, store } from "../store.js";
import { openModifyDialog } from "./modify-dialog.js";

const STATUS_CLASS = {
  FILLED: "ok",
  PARTIALLY_FILLED: "info",
  ACCEPTED: "info",
  QUEUED: "warn",
  SUBMITTING: "warn",
  CANCEL_PENDING: "warn",
  UNKNOWN: "err",
  DENIED: "err",
  REJECTED: "err",
  CANCELLED: "",
  EXPIRED: "",
};

export function statusBadge(status) {
  return h("span", { class: `badge ${STATUS_CLASS[status] ?? ""}` }, t(`status.${status}`));
}

export function sideLabel(side) {
  return h("span", { class: side === "buy" ? "buy" : "sell" }, t(`side.${side}`));
}

async function cancelOrder(order, button) {
  button.disabled = true;
  try {
    const updated = await del(`/api/orders/${order.id}`);
    store.upsertOrder(updated);
    toast(t("orders.cancel_sent", { id: order.id }), "ok");
  } catch (e) {
    button.disabled = false;
    toast(t("orders.cancel_failed", { id: order.id, message: errorText(e) }), "error", 8000);
  }
}

/**
 * A live orders table. ``filter(order)`` chooses the rows (e.g. open ones only).
 * Returns {el, unmount()}.
 */
export function ordersTable({ filter = () => true, empty, caption } = {}) {
  const el = h("div", { class: "orders-table" });

  function render(orders) {
    const rows = orders.filter(filter).map((o) => {
      const cancel = isCancellable(o)
        ? h("button", {
            type: "button",
            class: "small danger",
            "aria-label": t("orders.cancel_label", { id: o.id, symbol: o.symbol }),
            onclick: (ev) => cancelOrder(o, ev.currentTarget),
          }, t("orders.cancel"))
        : "";
      const modify = isModifiable(o)
        ? h("button", {
            type: "button",
            class: "small",
            "aria-label": t("orders.modify_label", { id: o.id, symbol: o.symbol }),
            onclick: () => openModifyDialog(o),
          }, t("orders.modify"))
        : "";
      const pending = o.modify_pending ? h("span", { class: "badge warn" }, t("orders.modify_pending")) : null;
      const label = nameOf(o.symbol);
      return [
        { content: time(o.created_at) },
        { content: [label ? `${label} ` : "", h("span", { class: "mono muted" }, o.symbol)] },
        { content: sideLabel(o.side) },
        { content: t(`type.${o.type}`) },
        { content: num(o.qty), num: true },
        { content: o.type === "market" ? t("type.market") : price(o.price), num: true },
        { content: `${num(o.filled_qty)} / ${num(o.qty)}`, num: true },
        { content: o.filled_qty ? price(o.avg_fill_price) : "—", num: true },
        { content: [statusBadge(o.status), pending, o.reason ? h("span", { class: "muted small" }, ` ${speak(o.reason)}`) : null], class: "wrap" },
        { content: h("span", { class: "actions" }, modify, cancel), class: "actions-cell" },
      ];
    });
    const tbl = table(
      [t("orders.time"), t("orders.symbol"), t("orders.side"), t("orders.type"),
        { text: t("orders.qty"), num: true }, { text: t("orders.price"), num: true },
        { text: t("orders.filled"), num: true }, { text: t("orders.avg_price"), num: true },
        t("orders.status"), { text: t("orders.actions") }],
      rows,
      { caption, empty: empty || t("orders.none") },
    );
    // Each row says which order it is, for people and tests alike.
    const trs = tbl.querySelectorAll ? tbl.querySelectorAll("tbody tr") : [];
    const shown = orders.filter(filter);
    trs.forEach((tr, i) => {
      tr.dataset.orderId = shown[i].id;
      tr.dataset.status = shown[i].status;
    });
    replace(el, tbl);
  }

  render(store.orderList());
  const off = store.on("orders", render);
  return { el, unmount: off, render: () => render(store.orderList()) };
}

export { isOpen };
