// DOM and number-formatting helpers shared by every screen.

import { formatCount, formatDateTime, formatNumber } from "./i18n.js";

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

/** A number with `digits` decimals; very small or large ones in scientific notation. Written
 * the chosen language's way (12.54 in English, 12,54 in French). */
export function fmt(value, digits = 2) {
  if (value === null || value === undefined || !Number.isFinite(value)) return MISSING;
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) return formatNumber(value, 2, { scientific: true });
  return formatNumber(value, digits);
}

/** A count with the language's digit grouping. */
export const count = (value) => formatCount(value);

/** A timestamp in the reader's time zone, the language's way. */
export function when(iso) {
  if (!iso) return MISSING;
  return formatDateTime(new Date(iso));
}

/** Select options from items, keeping the previous choice when it is still offered. */
export function fillSelect(select, items, value, label) {
  const previous = select.value;
  select.replaceChildren(...items.map((item) => el("option", { value: value(item), text: label(item) })));
  if (items.some((item) => String(value(item)) === previous)) select.value = previous;
}
