// The password of an auth record: password + confirmation. Required when creating; when editing,
// left empty keeps the current password (superusers need no old password).

import { h } from '../../../lib/dom.js';
import { field as fieldBox } from '../../../lib/ui.js';

export function password(field, { isNew, readOnly }) {
  if (readOnly) return { node: null, read() {} };
  const pass = h('input', { type: 'password', autocomplete: 'new-password' });
  const confirm = h('input', { type: 'password', autocomplete: 'new-password' });
  const node = h(
    'div',
    { class: 'row row-top' },
    fieldBox({ label: isNew ? `${field.name} *` : `New ${field.name}`, name: field.name, input: pass, help: isNew ? undefined : 'Leave empty to keep the current one.' }),
    fieldBox({ label: `${field.name} confirm`, name: `${field.name}Confirm`, input: confirm }),
  );
  return {
    node,
    check() {
      return pass.value !== confirm.value ? { [`${field.name}Confirm`]: 'The passwords do not match.' } : null;
    },
    read(out) {
      if (!pass.value && !isNew) return;
      out.json[field.name] = pass.value;
      out.json[`${field.name}Confirm`] = confirm.value;
    },
  };
}
