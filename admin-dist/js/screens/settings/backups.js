// Settings › Backups: create (optional name), list with size and date, download (with a
// superuser file token, as the browser cannot send a header on a plain link), upload a zip,
// restore behind a typed confirmation, delete; and the schedule with its own S3 storage.

import { h, replace } from '../../lib/dom.js';
import { send } from '../../lib/api.js';
import { button, clearErrors, confirmDialog, field, formError, input, modal, pageHeader, showErrors, table, toast } from '../../lib/ui.js';
import { keepSecret, s3Fields, s3Test } from './files.js';
import { loadSettings, settingsForm, textField } from './form.js';

export function formatBytes(n) {
  if (!Number.isFinite(n)) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

export default async function section() {
  const slot = h('div', { class: 'backups-list' });
  let rows = [];
  let loading = true;

  const draw = () =>
    replace(
      slot,
      table({
        caption: 'Backups',
        loading,
        skeletonRows: 3,
        rows,
        rowKey: (r) => r.key,
        empty: 'No backups yet.',
        columns: [
          { key: 'key', label: 'Name', render: (r) => h('span', { class: 'backup-key' }, r.key) },
          { key: 'size', label: 'Size', render: (r) => formatBytes(r.size) },
          { key: 'modified', label: 'Date', render: (r) => r.modified },
          {
            key: 'actions',
            label: 'Actions',
            render: (r) =>
              h(
                'div',
                { class: 'row-actions' },
                button('Download', () => download(r.key), { kind: 'ghost', ariaLabel: `Download ${r.key}` }),
                button('Restore', () => restore(r.key), { kind: 'ghost', ariaLabel: `Restore ${r.key}` }),
                button('Delete', () => remove(r.key), { kind: 'ghost', ariaLabel: `Delete ${r.key}` }),
              ),
          },
        ],
      }),
    );

  const reload = async () => {
    try {
      rows = await send('/api/backups');
      rows.sort((a, b) => String(b.modified).localeCompare(String(a.modified)));
    } catch (err) {
      toast(err.message, 'error');
      rows = [];
    }
    loading = false;
    draw();
  };

  const download = async (key) => {
    try {
      const { token } = await send('/api/files/token', { method: 'POST' });
      const a = h('a', { href: `/api/backups/${encodeURIComponent(key)}?token=${encodeURIComponent(token)}`, download: key, class: 'sr-only' }, key);
      document.body.append(a);
      a.click();
      a.remove();
    } catch (err) {
      toast(err.message, 'error');
    }
  };

  const restore = (key) => {
    const error = formError();
    const typed = input('confirm', { autocomplete: 'off' });
    const m = modal({
      title: 'Restore a backup',
      body: (close) =>
        h(
          'form',
          {
            id: 'restore-form',
            onSubmit: async (e) => {
              e.preventDefault();
              clearErrors(e.target);
              if (typed.value.trim() !== key) {
                replace(error, 'Type the backup name exactly to confirm.');
                return;
              }
              const go = m.dialog.querySelector('[data-confirm]');
              go.disabled = true;
              replace(error, 'Restoring… the server swaps its data and comes back.');
              try {
                await send(`/api/backups/${encodeURIComponent(key)}/restore`, { method: 'POST' });
                close(true);
                toast(`Restored ${key}.`, 'ok');
                reload();
              } catch (err) {
                showErrors(e.target, err);
                go.disabled = false;
              }
            },
          },
          h('p', {}, 'Every collection, record and setting is replaced by the backup\'s. Changes made since then are lost.'),
          field({ label: `Type "${key}" to confirm`, name: 'confirm', input: typed }),
          error,
        ),
      actions: [
        (close) => button('Cancel', () => close(false), { kind: 'ghost' }),
        button('Restore backup', null, { kind: 'danger', type: 'submit', attrs: { form: 'restore-form', 'data-confirm': '' } }),
      ],
    });
    typed.focus();
  };

  const remove = async (key) => {
    if (!(await confirmDialog(`Delete the backup ${key}? This cannot be undone.`, { danger: true, confirmLabel: 'Delete' }))) return;
    try {
      await send(`/api/backups/${encodeURIComponent(key)}`, { method: 'DELETE' });
      toast('Backup deleted.', 'ok');
      reload();
    } catch (err) {
      toast(err.message, 'error');
    }
  };

  const createBtn = button('Create backup', null, { kind: 'primary', type: 'submit' });
  const createForm = h(
    'form',
    {
      class: 'row backup-create',
      onSubmit: async (e) => {
        e.preventDefault();
        clearErrors(createForm);
        createBtn.disabled = true;
        try {
          const name = createForm.elements.name.value.trim();
          await send('/api/backups', { method: 'POST', body: name ? { name } : {} });
          createForm.reset();
          toast('Backup created.', 'ok');
          reload();
        } catch (err) {
          showErrors(createForm, err);
        } finally {
          createBtn.disabled = false;
        }
      },
    },
    field({ label: 'Backup name (optional)', name: 'name', help: 'Ends in .zip; letters, digits, _ and -.', input: input('name', { placeholder: 'my_backup.zip', autocomplete: 'off' }) }),
    h('div', { class: 'field field-button' }, createBtn),
    formError(),
  );

  const fileInput = h('input', { type: 'file', accept: '.zip,application/zip', name: 'file', id: 'backup-upload', class: 'sr-only' });
  fileInput.addEventListener('change', async () => {
    const file = fileInput.files[0];
    if (!file) return;
    const body = new FormData();
    body.append('file', file);
    try {
      await send('/api/backups/upload', { method: 'POST', body });
      toast(`Uploaded ${file.name}.`, 'ok');
      reload();
    } catch (err) {
      const detail = Object.values(err.data || {}).map((v) => v?.message).filter(Boolean).join(' ');
      toast(`${err.message} ${detail}`.trim(), 'error');
    }
    fileInput.value = '';
  });
  const uploadLabel = h('label', { for: 'backup-upload', class: 'btn', tabindex: 0, onKeydown: (e) => (e.key === 'Enter' || e.key === ' ') && fileInput.click() }, 'Upload backup (.zip)');

  const settings = await loadSettings();
  draw();
  reload();
  return h(
    'div',
    {},
    pageHeader('Backups', { crumbs: [{ label: 'Settings' }], actions: [fileInput, uploadLabel] }),
    h('section', { class: 'card' }, createForm, slot),
    h('h2', {}, 'Schedule and storage'),
    settingsForm({
      settings,
      build: (s) => [
        h(
          'div',
          { class: 'grid-2' },
          textField(s, 'backups.cron', 'Automatic backups (cron expression)', { placeholder: '0 0 * * *', help: 'Empty turns automatic backups off. E.g. "0 0 * * *" every midnight.' }),
          textField(s, 'backups.cronMaxKeep', 'Automatic backups to keep', { type: 'number', min: 1 }),
        ),
        h('h2', {}, 'Store backups in S3'),
        s3Fields(s, 'backups.s3'),
      ],
      toBody: (v) => {
        keepSecret(v.backups.s3);
        return v;
      },
      extraActions: s3Test('backups'),
    }),
  );
}
