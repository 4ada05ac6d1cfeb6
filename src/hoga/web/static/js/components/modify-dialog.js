// 정정 (modify) of a resting limit order: a dialog with the new price and the new total quantity,
// sent as PATCH /api/orders/{id} {price, quantity}. The server decides (409 order.not_modifiable,
// 422 order.invalid_modify); the order comes back with modify_pending until the broker answers,
// and the final version arrives on /ws/events like any order change.

import { patch } from "../api.js";
import { h, toast } from "../dom.js";
import { errorBox, errorText, field, showBox } from "../forms.js";
import { groupDigits, num, parseInteger, price } from "../format.js";
import { t } from "../i18n.js";
import { nameOf } from "../names.js";
import { store } from "../store.js";

/** Open the modify dialog for ``order``; resolves when it closes. */
export function openModifyDialog(order) {
  document.querySelector("dialog.modify")?.remove();
  const priceInput = h("input", { type: "text", inputmode: "numeric", autocomplete: "off", value: groupDigits(order.price) });
  const qtyInput = h("input", { type: "text", inputmode: "numeric", autocomplete: "off", value: groupDigits(order.qty) });
  for (const input of [priceInput, qtyInput]) {
    input.addEventListener("input", () => {
      const caretFromEnd = input.value.length - (input.selectionStart ?? input.value.length);
      input.value = groupDigits(input.value);
      const pos = Math.max(0, input.value.length - caretFromEnd);
      input.setSelectionRange(pos, pos);
    });
  }
  const priceField = field(t("modify.price"), priceInput, { name: "price" });
  const qtyField = field(t("modify.qty"), qtyInput, {
    name: "quantity",
    help: t("modify.qty_help", { filled: num(order.filled_qty) }),
  });
  const box = errorBox();
  const send = h("button", { type: "submit", class: "primary" }, t("modify.send"));
  const close = h("button", { type: "button", onclick: () => dialog.close() }, t("common.close"));
  const form = h("form", { method: "dialog", novalidate: true },
    h("h2", null, t("modify.title", { id: order.id })),
    h("p", { class: "muted" }, `${nameOf(order.symbol) || order.symbol} · ${t(`side.${order.side}`)} · ${price(order.price)} × ${num(order.qty)}`),
    box, priceField, qtyField,
    h("div", { class: "row" }, send, close));
  const dialog = h("dialog", { class: "modify", "aria-label": t("modify.title", { id: order.id }) }, form);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const newPrice = parseInteger(priceInput.value);
    const newQty = parseInteger(qtyInput.value);
    if (!Number.isInteger(newPrice) || newPrice < 1 || !Number.isInteger(newQty) || newQty < 1) {
      showBox(box, t("modify.err_numbers"));
      return;
    }
    if (newQty <= order.filled_qty) {
      showBox(box, t("modify.err_qty", { filled: num(order.filled_qty) }));
      return;
    }
    const body = {
      price: newPrice !== order.price ? newPrice : null,
      quantity: newQty !== order.qty ? newQty : null,
    };
    if (body.price === null && body.quantity === null) {
      showBox(box, t("modify.err_same"));
      return;
    }
    send.disabled = true;
    try {
      const updated = await patch(`/api/orders/${order.id}`, body);
      store.upsertOrder(updated);
      toast(t("modify.sent", { id: order.id }), "ok");
      dialog.close();
    } catch (e) {
      showBox(box, errorText(e));
    } finally {
      send.disabled = false;
    }
  });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  priceInput.focus();
  return dialog;
}
