// Symbol search: an ARIA combobox over /api/market/symbols?q= (code or Korean name).
// Keyboard: type to search, ArrowDown/ArrowUp to move, Enter to choose, Escape to close.

import { get, qs } from "../api.js";
import { debounce, h, uid } from "../dom.js";
import { field } from "../forms.js";
import { t } from "../i18n.js";

/**
 * A labelled symbol picker. ``onSelect({symbol, name, market})`` runs when one is chosen.
 * The returned wrapper has .value (the chosen instrument or null) and .set(inst).
 */
export function symbolPicker({ label, initial = null, onSelect, name = "symbol" }) {
  const listId = uid("list");
  const inputEl = h("input", {
    type: "text",
    role: "combobox",
    autocomplete: "off",
    spellcheck: "false",
    "aria-autocomplete": "list",
    "aria-expanded": "false",
    "aria-controls": listId,
    placeholder: t("symbol.placeholder"),
  });
  const list = h("ul", { id: listId, role: "listbox", class: "hidden", "aria-label": label });
  const wrap = field(label, inputEl, { name });
  const combo = h("div", { class: "combo" });
  inputEl.replaceWith(combo);
  combo.append(inputEl, list);

  let options = [];
  let active = -1;
  let seq = 0;
  wrap.value = null;

  function show(inst) {
    inputEl.value = inst ? `${inst.name} (${inst.symbol})` : "";
  }

  wrap.set = (inst) => {
    wrap.value = inst;
    show(inst);
  };

  function close() {
    list.classList.add("hidden");
    inputEl.setAttribute("aria-expanded", "false");
    inputEl.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function choose(inst) {
    wrap.set(inst);
    close();
    onSelect?.(inst);
  }

  function highlight(i) {
    active = i;
    for (const [k, li] of [...list.children].entries()) li.setAttribute("aria-selected", k === i ? "true" : "false");
    const li = list.children[i];
    if (li) {
      inputEl.setAttribute("aria-activedescendant", li.id);
      li.scrollIntoView({ block: "nearest" });
    }
  }

  function render() {
    list.replaceChildren(
      ...options.map((inst, i) =>
        h("li", {
          id: `${listId}-${i}`,
          role: "option",
          "aria-selected": "false",
          // mousedown, not click: it fires before the input's blur closes the list.
          onmousedown: (ev) => {
            ev.preventDefault();
            choose(inst);
          },
        }, h("span", null, inst.name), h("span", { class: "code" }, inst.symbol), h("span", { class: "muted small" }, inst.market))),
    );
    if (!options.length) list.append(h("li", { class: "muted", role: "option", "aria-disabled": "true" }, t("symbol.none")));
    list.classList.remove("hidden");
    inputEl.setAttribute("aria-expanded", "true");
  }

  const search = debounce(async (q) => {
    const mine = ++seq;
    try {
      const data = await get(`/api/market/symbols${qs({ q, limit: 12 })}`);
      if (mine !== seq) return; // a newer search is on its way
      options = data.symbols;
      active = -1;
      render();
    } catch {
      options = [];
    }
  }, 150);

  inputEl.addEventListener("input", () => {
    wrap.value = null;
    const q = inputEl.value.trim();
    if (q) search(q);
    else close();
  });
  inputEl.addEventListener("keydown", (ev) => {
    const open = !list.classList.contains("hidden");
    if (ev.key === "ArrowDown") {
      ev.preventDefault();
      if (!open && inputEl.value.trim()) search(inputEl.value.trim());
      else if (options.length) highlight(Math.min(options.length - 1, active + 1));
    } else if (ev.key === "ArrowUp") {
      ev.preventDefault();
      if (options.length) highlight(Math.max(0, active - 1));
    } else if (ev.key === "Enter") {
      if (open && options.length) {
        ev.preventDefault();
        choose(options[active >= 0 ? active : 0]);
      }
    } else if (ev.key === "Escape") {
      if (open) {
        ev.preventDefault();
        close();
      }
    }
  });
  inputEl.addEventListener("blur", () => {
    close();
    if (!wrap.value) {
      // Leaving with an exact code typed counts as choosing it.
      const code = inputEl.value.trim().toUpperCase();
      const exact = options.find((o) => o.symbol === code || o.name === inputEl.value.trim());
      if (exact) choose(exact);
    }
  });

  if (initial) wrap.set(initial);
  return wrap;
}

/** Look up one symbol's instrument (name and market) by its code. */
export async function lookupSymbol(symbol) {
  const data = await get(`/api/market/symbols${qs({ q: symbol, limit: 5 })}`);
  return data.symbols.find((s) => s.symbol === symbol) || null;
}
