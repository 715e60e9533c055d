// JSON fields: a monospace textarea, parsed before submit (a parse error stays in the browser and
// is shown under the input); empty means null.

import { h } from '../../../lib/dom.js';
import { field as fieldBox } from '../../../lib/ui.js';
import { helpOf, labelOf } from './common.js';

function parse(text) {
  if (text.trim() === '') return { value: null };
  try {
    return { value: JSON.parse(text) };
  } catch (err) {
    return { error: `Invalid JSON: ${err.message}` };
  }
}

export function json(field, { record, readOnly }) {
  const value = record[field.name];
  const el = h('textarea', { class: 'code', rows: 6, spellcheck: false, readOnly });
  el.value = value == null ? '' : JSON.stringify(value, null, 2);
  const node = fieldBox({ label: labelOf(field), name: field.name, input: el, help: helpOf(field, 'Empty means null.') });
  return {
    node,
    check() {
      const { error } = parse(el.value);
      return error ? { [field.name]: error } : null;
    },
    read(out) {
      out.json[field.name] = parse(el.value).value ?? null;
    },
  };
}
