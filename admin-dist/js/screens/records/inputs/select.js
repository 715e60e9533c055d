// Select fields: a <select> for single values, a group of checkboxes for multiple ones.

import { h, uid } from '../../../lib/dom.js';
import { field as fieldBox, select as selectEl } from '../../../lib/ui.js';
import { asList, isMulti } from '../schema.js';
import { group, helpOf, labelOf } from './common.js';

export function select(field, { record, readOnly }) {
  const current = asList(record[field.name]);
  if (!isMulti(field)) {
    const el = selectEl(field.name, [['', '— none —'], ...field.values.map((v) => [v, v])], { value: current[0] || '', disabled: readOnly });
    const node = fieldBox({ label: labelOf(field), name: field.name, input: el, help: helpOf(field) });
    return {
      node,
      read(out) {
        out.json[field.name] = el.value;
      },
    };
  }
  const boxes = field.values.map((v) => {
    const id = uid('sel');
    const box = h('input', { type: 'checkbox', id, value: v, checked: current.includes(v), disabled: readOnly });
    return { box, node: h('span', { class: 'check' }, box, h('label', { for: id }, v)) };
  });
  const node = group(field.name, labelOf(field), h('div', { class: 'checks' }, boxes.map((b) => b.node)), { help: helpOf(field, `Up to ${field.maxSelect}.`) });
  return {
    node,
    read(out) {
      out.json[field.name] = boxes.filter((b) => b.box.checked).map((b) => b.box.value);
    },
  };
}
