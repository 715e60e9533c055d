// Inputs bound to a draft object: each writes its value into `obj[key]` as the user types, and
// is named like the API's error key (`fields.3.max`, `otp.duration`) so `showErrors` can put the
// server's message right under it. Used by every part of the collection editor.

import { h } from '../../lib/dom.js';
import { field } from '../../lib/ui.js';

/** A text input; `onChange` runs after the draft is updated. */
export function textIn(name, label, obj, key, { help, placeholder, type = 'text', onChange, disabled, required } = {}) {
  const el = h('input', { type, name, placeholder, disabled, required, autocomplete: 'off' });
  el.value = obj[key] ?? '';
  el.addEventListener('input', () => {
    obj[key] = el.value;
    onChange && onChange(el.value);
  });
  return field({ label, name, input: el, help });
}

/** A number input; empty means `null` when `nullable`, else 0. */
export function numIn(name, label, obj, key, { help, nullable = false, min, step = 'any', disabled } = {}) {
  const el = h('input', { type: 'number', name, min, step, disabled, inputmode: 'decimal' });
  el.value = obj[key] == null ? '' : String(obj[key]);
  el.addEventListener('input', () => {
    obj[key] = el.value === '' ? (nullable ? null : 0) : Number(el.value);
  });
  return field({ label, name, input: el, help });
}

export function boolIn(name, label, obj, key, { help, disabled, onChange } = {}) {
  const el = h('input', { type: 'checkbox', name, checked: Boolean(obj[key]), disabled });
  el.addEventListener('change', () => {
    obj[key] = el.checked;
    onChange && onChange(el.checked);
  });
  return field({ label, name, input: el, help, inline: true });
}

/** A comma-separated list edited as text and stored as an array of trimmed strings. */
export function listIn(name, label, obj, key, { help, placeholder } = {}) {
  const el = h('input', { type: 'text', name, placeholder, autocomplete: 'off' });
  el.value = (obj[key] || []).join(', ');
  el.addEventListener('input', () => {
    obj[key] = el.value.split(',').map((s) => s.trim()).filter(Boolean);
  });
  return field({ label, name, input: el, help: help || 'Comma-separated.' });
}

export function areaIn(name, label, obj, key, { help, rows = 4, code = false } = {}) {
  const el = h('textarea', { name, rows, class: code ? 'code' : null, spellcheck: !code });
  el.value = obj[key] ?? '';
  el.addEventListener('input', () => {
    obj[key] = el.value;
  });
  return field({ label, name, input: el, help });
}

export function selectIn(name, label, obj, key, options, { help, onChange, disabled } = {}) {
  const el = h(
    'select',
    { name, disabled },
    options.map((o) => {
      const [v, text] = Array.isArray(o) ? o : [o, o];
      return h('option', { value: v }, text);
    }),
  );
  el.value = obj[key] ?? '';
  el.addEventListener('change', () => {
    obj[key] = el.value;
    onChange && onChange(el.value);
  });
  return field({ label, name, input: el, help });
}

export function clone(value) {
  return value == null ? value : JSON.parse(JSON.stringify(value));
}
