// DOM and number-formatting helpers shared by every screen.

import { locale } from "./i18n.js";

/** Shown where a value is missing. */
export const MISSING = "—";

export const $ = (id) => document.getElementById(id);

/** An element with attributes (`class`, `text`, `on<event>` handlers, the rest as attributes;
 * null, undefined and false leave one out) and children (nodes or text, arrays flattened). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A number with `digits` decimals; very small or large ones in exponent notation. */
export function fmt(value, digits = 2) {
  if (value === null || value === undefined || !Number.isFinite(value)) return MISSING;
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) return value.toExponential(2);
  return value.toFixed(digits);
}

/** A count with the catalogue's digit grouping (1,000 in English). */
export const count = (value) => value.toLocaleString(locale);

/** A timestamp as local `YYYY-MM-DD hh:mm:ss`. */
export function when(iso) {
  if (!iso) return MISSING;
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Select options from items, keeping the previous choice when it is still offered. */
export function fillSelect(select, items, value, label) {
  const previous = select.value;
  select.replaceChildren(...items.map((item) => el("option", { value: value(item), text: label(item) })));
  if (items.some((item) => String(value(item)) === previous)) select.value = previous;
}
