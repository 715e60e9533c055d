// Helpers shared by the settings sections: read the settings once, turn a form's dotted input
// names (`smtp.host`) into the nested PATCH body PocketBase expects, and save with the API's
// field errors shown next to their inputs (the error keys use the same dotted paths).

import { h } from '../../lib/dom.js';
import { send } from '../../lib/api.js';
import { button, field, formError, formValues, input, showErrors, clearErrors, toast, checkbox } from '../../lib/ui.js';

export function loadSettings() {
  return send('/api/settings');
}

/** {'smtp.host': 'x', 'smtp.port': 25} → {smtp: {host: 'x', port: 25}} */
export function nest(flat) {
  const out = {};
  for (const [key, value] of Object.entries(flat)) {
    const parts = key.split('.');
    let node = out;
    parts.slice(0, -1).forEach((p) => {
      node[p] = node[p] && typeof node[p] === 'object' ? node[p] : {};
      node = node[p];
    });
    node[parts[parts.length - 1]] = value;
  }
  return out;
}

/** Reads `path` ('smtp.host') out of an object. */
export function pick(obj, path) {
  return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

/** A labelled text/number/password input bound to a settings path. */
export function textField(settings, name, label, { type = 'text', help, placeholder, ...rest } = {}) {
  const value = pick(settings, name);
  return field({ label, name, help, input: input(name, { type, value: value ?? '', placeholder, ...rest }) });
}

export function boolField(settings, name, label, opts = {}) {
  return checkbox(name, label, { checked: Boolean(pick(settings, name)), ...opts });
}

/**
 * A form that PATCHes /api/settings with its values. `build(settings)` returns the inputs;
 * `toBody(values, form)` may reshape the nested values before sending.
 */
export function settingsForm({ settings, build, toBody = (v) => v, onSaved, saveLabel = 'Save changes', extraActions = [] }) {
  const error = formError();
  const save = button(saveLabel, null, { kind: 'primary', type: 'submit' });
  const form = h(
    'form',
    {
      class: 'card settings-form',
      novalidate: true,
      onSubmit: async (e) => {
        e.preventDefault();
        clearErrors(form);
        save.disabled = true;
        try {
          const saved = await send('/api/settings', { method: 'PATCH', body: toBody(nest(formValues(form)), form) });
          toast('Settings saved.', 'ok');
          onSaved?.(saved);
        } catch (err) {
          showErrors(form, err);
        } finally {
          save.disabled = false;
        }
      },
    },
    build(settings),
    error,
    h('div', { class: 'form-actions' }, extraActions, save),
  );
  return form;
}
