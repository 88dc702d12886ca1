// The dashboard's words come from one catalogue per language (i18n/<language>.js), by key;
// no screen writes a sentence of its own. The browser's languages (navigator.languages)
// choose the catalogue; the switch in the top bar overrides them, and that choice is kept in
// localStorage. Numbers and dates are written the chosen language's way (Intl).

import * as en from "./i18n/en.js";
import * as fr from "./i18n/fr.js";

const CATALOGUES = new Map([
  ["en", en],
  ["fr", fr],
]);
const DEFAULT_LANGUAGE = "en";
const LANGUAGE_STORAGE = "gradecast.language";

/** The languages offered by the switch, each with its name in its own words. */
export const languages = [...CATALOGUES].map(([code, catalogue]) => ({
  code,
  name: catalogue.messages["language.name"],
}));

const primary = (tag) => tag.toLowerCase().split("-")[0];

function storedLanguage() {
  try {
    return localStorage.getItem(LANGUAGE_STORAGE);
  } catch {
    return null; // storage disabled: the browser's languages decide
  }
}

function browserLanguages() {
  return navigator.languages?.length ? navigator.languages : [navigator.language || DEFAULT_LANGUAGE];
}

/** The remembered choice, else the first of the browser's languages that has a catalogue. */
function initialLanguage() {
  const stored = storedLanguage();
  if (CATALOGUES.has(stored)) return stored;
  return (
    browserLanguages()
      .map(primary)
      .find((code) => CATALOGUES.has(code)) ?? DEFAULT_LANGUAGE
  );
}

let language;
let catalogue;
let locale; // a BCP 47 tag for Intl: the browser's own variant of the language when it has one
const listeners = [];

function use(code) {
  language = code;
  catalogue = CATALOGUES.get(code);
  locale = browserLanguages().find((tag) => primary(tag) === code) ?? catalogue.locale;
}

use(initialLanguage());

export const currentLanguage = () => language;
export const currentLocale = () => locale;

/** Switch to `code`, remember it, refill the page's fixed words and tell the listeners. */
export function chooseLanguage(code) {
  if (!CATALOGUES.has(code)) throw new Error(`no catalogue for "${code}"`);
  try {
    localStorage.setItem(LANGUAGE_STORAGE, code);
  } catch {
    // storage disabled: the choice lasts as long as the page
  }
  if (code === language) return;
  use(code);
  translatePage();
  for (const listener of listeners) listener(code);
}

/** Call `listener(code)` after each switch of language. */
export function onLanguageChange(listener) {
  listeners.push(listener);
}

/** The catalogue's text for `key`, with each `{name}` replaced by `values[name]`. A missing
 * key or value throws: a screen never shows a key or a hole in place of words. */
export function t(key, values = {}) {
  const text = catalogue.messages[key];
  if (text === undefined) throw new Error(`"${key}" is not in the ${language} catalogue`);
  return text.replace(/\{(\w+)\}/g, (_, name) => {
    if (!(name in values)) throw new Error(`"${key}" needs a value for {${name}}`);
    return String(values[name]);
  });
}

const formats = new Map(); // locale and options → Intl.NumberFormat

function numberFormat(options) {
  const id = `${locale} ${JSON.stringify(options)}`;
  if (!formats.has(id)) formats.set(id, new Intl.NumberFormat(locale, options));
  return formats.get(id);
}

/** A number with `digits` decimals, or in scientific notation, the language's way. */
export function formatNumber(value, digits, { scientific = false } = {}) {
  const options = { minimumFractionDigits: digits, maximumFractionDigits: digits };
  return numberFormat(scientific ? { ...options, notation: "scientific" } : options).format(value);
}

/** A count, with the language's digit grouping (1,000 in English, 1 000 in French). */
export const formatCount = (value) => numberFormat({ maximumFractionDigits: 0 }).format(value);

/** A share as a percentage (0.953 → 95.3% or 95,3 %). */
export const formatPercent = (value, digits = 1) =>
  numberFormat({ style: "percent", minimumFractionDigits: digits, maximumFractionDigits: digits }).format(value);

/** A date and time, short, the language's way. */
export const formatDateTime = (date) =>
  new Intl.DateTimeFormat(locale, { dateStyle: "short", timeStyle: "medium" }).format(date);

const TRANSLATED_ATTRIBUTES = ["aria-label", "placeholder"];

/** Fill the page's fixed words: `data-i18n="key"` sets an element's text (`code` in backticks
 * becomes a <code> element), `data-i18n-aria-label` and `data-i18n-placeholder` set those
 * attributes. */
export function translatePage() {
  document.documentElement.lang = language;
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
