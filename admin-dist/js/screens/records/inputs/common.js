// Pieces every record input shares: the wrapper for inputs made of several controls (a fieldset
// whose legend names the field, with the error slot `showErrors` fills by the field's name).

import { h, uid } from '../../../lib/dom.js';

/** A label for a record field: its name, with a mark when required. */
export function labelOf(field, suffix = '') {
  return `${field.name}${suffix}${field.required ? ' *' : ''}`;
}

/** fieldset + legend + content + help + the error slot keyed by `name`. */
export function group(name, legend, content, { help } = {}) {
  const errorId = uid('err');
  return h(
    'fieldset',
    { class: 'field field-group', dataset: { field: name }, 'aria-describedby': errorId },
    h('legend', {}, legend),
    content,
    help ? h('div', { class: 'help' }, help) : null,
    h('div', { class: 'field-error', id: errorId, dataset: { errorFor: name }, role: 'alert' }),
  );
}

/** Help text from the schema, plus what the input adds. */
export function helpOf(field, extra) {
  return [field.help, extra].filter(Boolean).join(' ') || undefined;
}
