// Date fields: a datetime-local input showing UTC, converted to and from PocketBase's
// "YYYY-MM-DD HH:MM:SS.sssZ". An untouched value is sent back exactly as it came (milliseconds kept).

import { h } from '../../../lib/dom.js';
import { field as fieldBox } from '../../../lib/ui.js';
import { fromInputDate, toInputDate } from '../schema.js';
import { helpOf, labelOf } from './common.js';

export function date(field, { record, readOnly }) {
  const original = record[field.name] || '';
  const initial = toInputDate(original);
  const el = h('input', { type: 'datetime-local', step: 1, readOnly });
  el.value = initial;
  const node = fieldBox({ label: labelOf(field, ' (UTC)'), name: field.name, input: el, help: helpOf(field) });
  return {
    node,
    read(out) {
      out.json[field.name] = el.value === initial ? original : fromInputDate(el.value);
    },
  };
}
