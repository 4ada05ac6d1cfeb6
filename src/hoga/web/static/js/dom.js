// Small DOM helpers. Every piece of text goes in through textContent (never innerHTML), so data
// from the server - symbol names, error messages, audit details - cannot inject markup.

const PROPS = new Set(["value", "checked", "selected", "disabled", "readOnly", "indeterminate"]);

/** Create an element: h("button", {class: "primary", onclick: fn}, "text", childNode, ...). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (PROPS.has(key)) el[key] = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** Append children (strings, numbers, nodes, arrays; null/false are skipped). */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all children of ``el``. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let idCounter = 0;
/** A document-unique id for label/aria wiring. */
export function uid(prefix = "f") {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** Call ``fn`` once ``ms`` have passed without another call. */
export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** Show a short message in the corner (announced to screen readers by the live region). */
export function toast(message, kind = "info", ms = 5000) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const el = h("div", { class: `toast ${kind}` }, message);
  box.append(el);
  setTimeout(() => el.remove(), ms);
}

/** A table with a header row; ``rows`` are arrays of cells (node, string or {el, num}). */
export function table(headers, rows, { caption, empty } = {}) {
  if (!rows.length && empty) return h("p", { class: "empty" }, empty);
  const head = h(
    "tr",
    null,
    headers.map((hd) => {
      const spec = typeof hd === "string" ? { text: hd } : hd;
      return h("th", { scope: "col", class: spec.num ? "num" : null }, spec.text);
    }),
  );
  const body = rows.map((r) => rowEl(r));
  // Each cell names its column, so a narrow screen can show rows as cards (CSS: td::before).
  const names = headers.map((hd) => (typeof hd === "string" ? hd : hd.text));
  for (const tr of body) {
    [...tr.children].forEach((td, i) => {
      if (names[i]) td.dataset.label = names[i];
    });
  }
  return h(
    "div",
    { class: "table-wrap cards-on-phone" },
    h("table", { class: "data" }, caption ? h("caption", { class: "sr-only" }, caption) : null,
      h("thead", null, head), h("tbody", null, body)),
  );
}

/** One table row; a cell may be {content, num, class} for alignment and colour. */
export function rowEl(cells, props) {
  return h(
    "tr",
    props,
    cells.map((c) => {
      if (c && typeof c === "object" && !(c instanceof Node) && !Array.isArray(c)) {
        return h("td", { class: [c.num ? "num" : "", c.class || ""].join(" ").trim() || null, dataset: c.dataset }, c.content);
      }
      return h("td", null, c);
    }),
  );
}
