// A form generated from a strategy's JSON parameter schema (pydantic's model_json_schema()):
// one labelled control per property, in schema order, with the title as label, the description
// and constraints as help text, and the schema's constraints checked before anything is sent.
// Rules that span several parameters (e.g. fast < slow) are the server's; its refusal names the
// field and is shown next to it.
//
// Supported: integer, number, boolean, string (with enum -> select, pattern, lengths), arrays of
// those (comma-separated), $ref into $defs, allOf with one member, and Optional (anyOf with null).

import { h } from "./dom.js";
import { field, setFieldError } from "./forms.js";
import { lang, speak, t } from "./i18n.js";
import { num } from "./format.js";
import { enumWords } from "./words.js";

/** Resolve $ref / single-member allOf; report whether null is allowed. */
export function resolve(prop, root) {
  let p = prop || {};
  let nullable = false;
  for (let guard = 0; guard < 10; guard += 1) {
    if (p.$ref) {
      const name = p.$ref.split("/").pop();
      const target = (root.$defs || root.definitions || {})[name] || {};
      p = { ...target, ...omit(p, ["$ref"]) };
    } else if (Array.isArray(p.allOf) && p.allOf.length === 1) {
      p = { ...p.allOf[0], ...omit(p, ["allOf"]) };
    } else if (Array.isArray(p.anyOf) || Array.isArray(p.oneOf)) {
      const options = p.anyOf || p.oneOf;
      const real = options.filter((o) => o.type !== "null");
      nullable = nullable || real.length < options.length;
      p = { ...(real[0] || {}), ...omit(p, ["anyOf", "oneOf"]) };
    } else break;
  }
  if (Array.isArray(p.type)) {
    nullable = nullable || p.type.includes("null");
    p = { ...p, type: p.type.find((x) => x !== "null") };
  }
  if (!p.type && Array.isArray(p.enum)) p = { ...p, type: typeof p.enum[0] === "number" ? "number" : "string" };
  if (!p.type && p.const !== undefined) p = { ...p, type: typeof p.const, enum: [p.const] };
  return { schema: p, nullable };
}

function omit(obj, keys) {
  const out = { ...obj };
  for (const k of keys) delete out[k];
  return out;
}

// Titles and descriptions written "한국어 (English)" in the strategy's code show one half.
function labelOf(name, s) {
  if (lang() === "en") return s.title_en || s["x-title-en"] || speak(s.title) || name;
  return speak(s.title) || name;
}

function descriptionOf(s) {
  if (lang() === "en") return s.description_en || s["x-description-en"] || speak(s.description) || "";
  return speak(s.description) || "";
}

/** Human summary of the constraints ("1 이상 · 200 이하"). */
function constraintsText(s) {
  const parts = [];
  if (s.minimum !== undefined) parts.push(t("schema.min", { v: num(s.minimum) }));
  if (s.exclusiveMinimum !== undefined) parts.push(t("schema.xmin", { v: num(s.exclusiveMinimum) }));
  if (s.maximum !== undefined) parts.push(t("schema.max", { v: num(s.maximum) }));
  if (s.exclusiveMaximum !== undefined) parts.push(t("schema.xmax", { v: num(s.exclusiveMaximum) }));
  if (s.multipleOf !== undefined) parts.push(t("schema.multiple", { v: num(s.multipleOf) }));
  if (s.minLength !== undefined) parts.push(t("schema.min_len", { v: s.minLength }));
  if (s.maxLength !== undefined) parts.push(t("schema.max_len", { v: s.maxLength }));
  return parts.join(" · ");
}

/** Check one scalar against its schema; returns an error message or null. */
export function checkValue(v, s) {
  if (s.type === "integer" && !Number.isInteger(v)) return t("schema.err_integer");
  if (s.type === "number" && (typeof v !== "number" || !Number.isFinite(v))) return t("schema.err_number");
  if (typeof v === "number") {
    if (s.minimum !== undefined && v < s.minimum) return t("schema.err_min", { v: num(s.minimum) });
    if (s.exclusiveMinimum !== undefined && v <= s.exclusiveMinimum) return t("schema.err_xmin", { v: num(s.exclusiveMinimum) });
    if (s.maximum !== undefined && v > s.maximum) return t("schema.err_max", { v: num(s.maximum) });
    if (s.exclusiveMaximum !== undefined && v >= s.exclusiveMaximum) return t("schema.err_xmax", { v: num(s.exclusiveMaximum) });
    if (s.multipleOf !== undefined) {
      const q = v / s.multipleOf;
      if (Math.abs(q - Math.round(q)) > 1e-9) return t("schema.err_multiple", { v: num(s.multipleOf) });
    }
  }
  if (typeof v === "string") {
    if (s.minLength !== undefined && v.length < s.minLength) return t("schema.err_min_len", { v: s.minLength });
    if (s.maxLength !== undefined && v.length > s.maxLength) return t("schema.err_max_len", { v: s.maxLength });
    if (s.pattern && !new RegExp(s.pattern, "u").test(v)) return t("schema.err_pattern");
  }
  if (Array.isArray(s.enum) && !s.enum.includes(v)) return t("schema.err_enum");
  return null;
}

function parseScalar(text, s) {
  const raw = String(text).trim();
  if (s.type === "integer") return /^[-+]?\d+$/.test(raw.replace(/,/g, "")) ? Number.parseInt(raw.replace(/,/g, ""), 10) : NaN;
  if (s.type === "number") return raw === "" || Number.isNaN(Number(raw.replace(/,/g, ""))) ? NaN : Number(raw.replace(/,/g, ""));
  return raw;
}

function display(v) {
  if (v === null || v === undefined) return "";
  if (Array.isArray(v)) return v.join(", ");
  return String(v);
}

/**
 * Build the form part for ``schema``. Returns {el, read(), showError(name, msg), fields}.
 * read() -> {ok, values, errors}: values ready to send as ``params``.
 */
export function schemaForm(schema, { values = {}, defaults = {}, idPrefix = "p" } = {}) {
  const props = schema.properties || {};
  const required = new Set(schema.required || []);
  const fields = {};
  const specs = {};
  const el = h("div", { class: "fields-inline schema-form" });

  for (const [name, raw] of Object.entries(props)) {
    const { schema: s, nullable } = resolve(raw, schema);
    const initial = name in values ? values[name] : name in defaults ? defaults[name] : s.default;
    const help = [descriptionOf(s), constraintsText(s)].filter(Boolean).join(" — ");
    let control;
    if (s.type === "boolean") {
      control = h("input", { type: "checkbox", checked: Boolean(initial) });
    } else if (Array.isArray(s.enum)) {
      control = h("select", null,
        nullable || !required.has(name) ? h("option", { value: "" }, t("schema.none")) : null,
        s.enum.map((v) => h("option", { value: String(v), selected: v === initial }, enumWords(v))));
    } else if (s.type === "integer" || s.type === "number") {
      control = h("input", {
        type: "number",
        step: s.type === "integer" ? (s.multipleOf ?? 1) : "any",
        min: s.minimum ?? null,
        max: s.maximum ?? null,
        inputmode: s.type === "integer" ? "numeric" : "decimal",
        value: display(initial),
      });
    } else {
      control = h("input", { type: "text", value: display(initial), maxlength: s.maxLength ?? null });
    }
    control.id = `${idPrefix}-${name}`;
    const wrap = field(labelOf(name, s), control, { name, help: s.type === "array" ? [help, t("schema.comma")].filter(Boolean).join(" — ") : help });
    if (s.type === "boolean") {
      wrap.classList.add("checkbox-field");
    }
    fields[name] = wrap;
    specs[name] = { s, nullable, required: required.has(name) && s.default === undefined && !(name in defaults) };
    el.append(wrap);
  }

  function readOne(name) {
    const { s, nullable, required: must } = specs[name];
    const control = fields[name].control;
    if (s.type === "boolean") return { value: control.checked };
    const text = control.value;
    if (String(text).trim() === "") {
      if (must) return { error: t("schema.err_required") };
      return { skip: !nullable, value: null };
    }
    if (Array.isArray(s.enum)) {
      const v = s.enum.find((x) => String(x) === text);
      return v === undefined ? { error: t("schema.err_enum") } : { value: v };
    }
    if (s.type === "array") {
      const items = resolve(s.items || {}, schema).schema;
      const values = String(text).split(",").map((x) => x.trim()).filter(Boolean).map((x) => parseScalar(x, items));
      for (const v of values) {
        const err = checkValue(v, items);
        if (err) return { error: err };
      }
      if (s.minItems !== undefined && values.length < s.minItems) return { error: t("schema.err_min_items", { v: s.minItems }) };
      if (s.maxItems !== undefined && values.length > s.maxItems) return { error: t("schema.err_max_items", { v: s.maxItems }) };
      return { value: values };
    }
    const v = parseScalar(text, s);
    const err = checkValue(v, s);
    return err ? { error: err } : { value: v };
  }

  return {
    el,
    fields,
    read() {
      const out = {};
      const errors = {};
      for (const name of Object.keys(fields)) {
        const r = readOne(name);
        setFieldError(fields[name], r.error || null);
        if (r.error) errors[name] = r.error;
        else if (!r.skip) out[name] = r.value;
      }
      return { ok: Object.keys(errors).length === 0, values: out, errors };
    },
    showError(name, message) {
      const wrap = fields[name];
      if (!wrap) return false;
      setFieldError(wrap, message);
      wrap.control.focus();
      return true;
    },
  };
}
