// Settings › Rate limits: the switch and the rules table (label, audience, max requests,
// duration), rows added and removed in place; saved as one PATCH of `rateLimits`.

import { h, replace } from '../../lib/dom.js';
import { send } from '../../lib/api.js';
import { button, checkbox, clearErrors, formError, input, pageHeader, select, showErrors, toast } from '../../lib/ui.js';
import { loadSettings } from './form.js';

const AUDIENCES = [
  ['', 'All'],
  ['@guest', 'Guests only'],
  ['@auth', 'Authenticated only'],
];

export default async function section() {
  const settings = await loadSettings();
  const limits = settings.rateLimits || { enabled: false, rules: [] };
  let rules = (limits.rules || []).map((r) => ({ ...r }));
  const body = h('tbody');

  const readRows = () => {
    rules = [...body.querySelectorAll('tr')].map((tr) => ({
      label: tr.querySelector('[data-k=label]').value.trim(),
      audience: tr.querySelector('[data-k=audience]').value,
      maxRequests: Number(tr.querySelector('[data-k=maxRequests]').value),
      duration: Number(tr.querySelector('[data-k=duration]').value),
    }));
  };

  // Each cell is a .field so showErrors can mark its input invalid next to the message.
  const cell = (i, key, control) => h('td', {}, h('div', { class: 'field cell-field' }, control, h('div', { class: 'field-error', dataset: { errorFor: `rateLimits.rules.${i}.${key}` }, role: 'alert' })));
  const draw = () =>
    replace(
      body,
      rules.map((r, i) =>
        h(
          'tr',
          {},
          cell(i, 'label', input(`rateLimits.rules.${i}.label`, { value: r.label, 'aria-label': `Rule ${i + 1} label`, dataset: { k: 'label' }, placeholder: '/api/ or users:create' })),
          cell(i, 'audience', select(`rateLimits.rules.${i}.audience`, AUDIENCES, { value: r.audience || '', 'aria-label': `Rule ${i + 1} audience`, dataset: { k: 'audience' } })),
          cell(i, 'maxRequests', input(`rateLimits.rules.${i}.maxRequests`, { type: 'number', min: 1, value: r.maxRequests, 'aria-label': `Rule ${i + 1} max requests`, dataset: { k: 'maxRequests' } })),
          cell(i, 'duration', input(`rateLimits.rules.${i}.duration`, { type: 'number', min: 1, value: r.duration, 'aria-label': `Rule ${i + 1} duration in seconds`, dataset: { k: 'duration' } })),
          h('td', {}, button('Remove', () => {
            readRows();
            rules.splice(i, 1);
            draw();
          }, { kind: 'ghost', ariaLabel: `Remove rule ${i + 1}` })),
        ),
      ),
    );
  draw();

  const save = button('Save changes', null, { kind: 'primary', type: 'submit' });
  const form = h(
    'form',
    {
      class: 'card',
      onSubmit: async (e) => {
        e.preventDefault();
        clearErrors(form);
        readRows();
        save.disabled = true;
        try {
          await send('/api/settings', { method: 'PATCH', body: { rateLimits: { enabled: form.elements['rateLimits.enabled'].checked, rules } } });
          toast('Rate limits saved.', 'ok');
        } catch (err) {
          showErrors(form, err);
        } finally {
          save.disabled = false;
        }
      },
    },
    checkbox('rateLimits.enabled', 'Enable rate limiting', { checked: Boolean(limits.enabled) }),
    h(
      'div',
      { class: 'table-wrap rules-table' },
      h(
        'table',
        { class: 'table table-inputs' },
        h('caption', { class: 'sr-only' }, 'Rate limit rules'),
        h('thead', {}, h('tr', {}, ['Label', 'Audience', 'Max requests', 'Duration (s)', 'Remove'].map((t) => h('th', { scope: 'col' }, t)))),
        body,
      ),
    ),
    h('p', { class: 'help' }, 'A label is a path prefix (/api/), a method and path (POST /api/x), or collection:action (users:create, *:auth). Max requests are allowed per client IP in each duration window.'),
    h('div', { class: 'field-error', dataset: { errorFor: 'rateLimits' }, role: 'alert' }),
    formError(),
    h('div', { class: 'form-actions' }, button('Add rule', () => {
      readRows();
      rules.push({ label: '', audience: '', maxRequests: 100, duration: 60 });
      draw();
      body.querySelector('tr:last-child input')?.focus();
    }), save),
  );
  return h('div', {}, pageHeader('Rate limits', { crumbs: [{ label: 'Settings' }] }), form);
}
