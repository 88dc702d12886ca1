// The dashboard's words come from one catalogue per language (i18n/<language>.js), by key;
// no screen writes a sentence of its own. English is the only catalogue so far.

import * as catalogue from "./i18n/en.js";

export const { locale } = catalogue;

/** The catalogue's text for `key`, with each `{name}` replaced by `values[name]`. A missing
 * key or value throws: a screen never shows a key or a hole in place of words. */
export function t(key, values = {}) {
  const text = catalogue.messages[key];
  if (text === undefined) throw new Error(`"${key}" is not in the ${locale} catalogue`);
  return text.replace(/\{(\w+)\}/g, (_, name) => {
    if (!(name in values)) throw new Error(`"${key}" needs a value for {${name}}`);
    return String(values[name]);
  });
}

const TRANSLATED_ATTRIBUTES = ["aria-label", "placeholder"];

/** Fill the page's fixed words: `data-i18n="key"` sets an element's text (`code` in backticks
 * becomes a <code> element), `data-i18n-aria-label` and `data-i18n-placeholder` set those
 * attributes. */
export function translatePage() {
  document.documentElement.lang = locale;
  for (const node of document.querySelectorAll("[data-i18n]")) {
    node.replaceChildren(
      ...t(node.dataset.i18n)
        .split("`")
        .map((part, i) => (i % 2 ? Object.assign(document.createElement("code"), { textContent: part }) : part)),
    );
  }
  for (const attribute of TRANSLATED_ATTRIBUTES) {
    for (const node of document.querySelectorAll(`[data-i18n-${attribute}]`)) {
      node.setAttribute(attribute, t(node.getAttribute(`data-i18n-${attribute}`)));
    }
  }
}
