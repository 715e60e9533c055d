// Settings › Superusers: the records of `_superusers` — list, add (email + password), delete.
// The signed-in superuser cannot delete themself from here.

import { h, replace } from '../../lib/dom.js';
import { auth, fullList, send } from '../../lib/api.js';
import { button, clearErrors, confirmDialog, field, formError, input, modal, pageHeader, showErrors, table, toast } from '../../lib/ui.js';

const BASE = '/api/collections/_superusers/records';

export default async function section() {
  const slot = h('div');
  let rows = [];
  const draw = (loading = false) =>
    replace(
      slot,
      table({
        caption: 'Superusers',
        loading,
        skeletonRows: 3,
        rows,
        columns: [
          { key: 'email', label: 'Email' },
          { key: 'created', label: 'Created' },
          {
            key: 'actions',
            label: 'Actions',
            render: (r) =>
              r.id === auth.record?.id
                ? h('span', { class: 'muted' }, 'you')
                : button('Delete', () => remove(r), { kind: 'ghost', ariaLabel: `Delete superuser ${r.email}` }),
          },
        ],
      }),
    );
  const reload = async () => {
    try {
      rows = await fullList(BASE, { sort: 'created' });
    } catch (err) {
      toast(err.message, 'error');
    }
    draw();
  };
  const remove = async (r) => {
    if (!(await confirmDialog(`Delete the superuser ${r.email}?`, { danger: true, confirmLabel: 'Delete' }))) return;
    try {
      await send(`${BASE}/${encodeURIComponent(r.id)}`, { method: 'DELETE' });
      toast('Superuser deleted.', 'ok');
      reload();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  const add = () => {
    const m = modal({
      title: 'New superuser',
      body: (close) => {
        const form = h(
          'form',
          {
            id: 'superuser-form',
            onSubmit: async (e) => {
              e.preventDefault();
              clearErrors(form);
              const v = Object.fromEntries(new FormData(form));
              try {
                await send(BASE, { method: 'POST', body: v });
                close(true);
                toast('Superuser created.', 'ok');
                reload();
              } catch (err) {
                showErrors(form, err);
              }
            },
          },
          field({ label: 'Email', name: 'email', input: input('email', { type: 'email', required: true, autocomplete: 'off' }) }),
          field({ label: 'Password', name: 'password', input: input('password', { type: 'password', required: true, autocomplete: 'new-password' }) }),
          field({ label: 'Password confirm', name: 'passwordConfirm', input: input('passwordConfirm', { type: 'password', required: true, autocomplete: 'new-password' }) }),
          formError(),
        );
        return form;
      },
      actions: [(close) => button('Cancel', () => close(false), { kind: 'ghost' }), button('Create', null, { kind: 'primary', type: 'submit', attrs: { form: 'superuser-form' } })],
    });
    m.dialog.querySelector('input')?.focus();
  };
  draw(true);
  reload();
  return h('div', {}, pageHeader('Superusers', { crumbs: [{ label: 'Settings' }], actions: [button('New superuser', add, { kind: 'primary' })] }), slot);
}
