// "Impersonate" for auth records: asks the server for a non-refreshable token of that record
// (POST /api/collections/{c}/impersonate/{id} with a duration) and shows it to copy.

import { h, replace } from '../../lib/dom.js';
import { auth, send } from '../../lib/api.js';
import { button, clearErrors, field as fieldBox, formError, modal, showErrors, toast } from '../../lib/ui.js';
import { presentLabel } from './schema.js';

export function impersonateDialog(collection, record) {
  const duration = h('input', { type: 'number', min: 0, step: 1, inputmode: 'numeric' });
  duration.value = '0';
  const result = h('div', { class: 'token-slot' });
  const submit = button('Create token', null, { type: 'submit', kind: 'primary', attrs: { 'data-action': 'create-token' } });

  const showToken = (token) => {
    const area = h('textarea', { class: 'code token', rows: 4, readOnly: true, spellcheck: false });
    area.value = token;
    const exp = auth.decode(token)?.exp;
    const copy = button('Copy token', () => {
      const fallback = () => {
        area.focus();
        area.select();
        toast('Selected: press Ctrl+C to copy.');
      };
      if (navigator.clipboard) navigator.clipboard.writeText(token).then(() => toast('Token copied.', 'ok'), fallback);
      else fallback();
    });
    replace(
      result,
      fieldBox({ label: 'Token', name: 'token', input: area, help: exp ? `Not refreshable; expires ${new Date(exp * 1000).toISOString().replace('T', ' ').slice(0, 19)} UTC.` : undefined }),
      copy,
    );
  };

  const form = h(
    'form',
    {
      class: 'impersonate-form',
      novalidate: true,
      onSubmit: async (e) => {
        e.preventDefault();
        clearErrors(form);
        submit.disabled = true;
        try {
          const res = await send(`/api/collections/${encodeURIComponent(collection.id)}/impersonate/${encodeURIComponent(record.id)}`, { method: 'POST', body: { duration: Number(duration.value || 0) } });
          showToken(res.token);
        } catch (err) {
          showErrors(form, err);
        } finally {
          submit.disabled = false;
        }
      },
    },
    fieldBox({ label: 'Token duration (seconds)', name: 'duration', input: duration, help: "0 uses the collection's auth token duration." }),
    formError(),
    submit,
  );

  modal({
    title: `Impersonate ${presentLabel(collection, record)}`,
    body: h('div', {}, h('p', { class: 'muted' }, 'Creates an auth token for this record, as if it had signed in. Anyone holding the token acts as this record until it expires.'), form, result),
    actions: [(close) => button('Close', () => close(), { kind: 'ghost' })],
  });
  duration.focus();
}
