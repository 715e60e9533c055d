// Inputs for the one-control field types: text, editor, number, bool, email, url, autodate.

import { h } from '../../../lib/dom.js';
import { field as fieldBox } from '../../../lib/ui.js';
import { helpOf, labelOf } from './common.js';

const INPUT_TYPE = { text: 'text', email: 'email', url: 'url', number: 'number' };

export function text(field, { record, readOnly }) {
  const value = record[field.name] ?? '';
  const el = field.type === 'editor'
    ? h('textarea', { rows: 8, readOnly })
    : h('input', {
        type: INPUT_TYPE[field.type] || 'text',
        readOnly,
        step: field.type === 'number' ? (field.onlyInt ? '1' : 'any') : null,
        placeholder: field.autogeneratePattern ? 'Leave empty to generate' : null,
        autocomplete: 'off',
      });
  el.value = String(value);
  const node = fieldBox({ label: labelOf(field), name: field.name, input: el, help: helpOf(field) });
  return {
    node,
    read(out) {
      if (field.type === 'number') out.json[field.name] = el.value === '' ? 0 : Number(el.value);
      else out.json[field.name] = el.value;
    },
  };
}

export function bool(field, { record, readOnly }) {
  const el = h('input', { type: 'checkbox', checked: Boolean(record[field.name]), disabled: readOnly });
  const node = fieldBox({ label: labelOf(field), name: field.name, input: el, inline: true, help: helpOf(field) });
  return {
    node,
    read(out) {
      out.json[field.name] = el.checked;
    },
  };
}

/** Set by the server on create/update: shown, never sent. */
export function autodate(field, { record }) {
  const el = h('input', { type: 'text', readOnly: true, value: record[field.name] || '' });
  el.placeholder = 'Set by the server when saved';
  const node = fieldBox({ label: labelOf(field), name: field.name, input: el, help: helpOf(field, 'Read-only.') });
  return { node, read() {} };
}
