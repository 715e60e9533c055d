// The SQL console (vaultbase's `POST /api/sql`, PocketBase's shape). Read-only unless the
// superuser ticks "Allow writes": the switch goes with each run as `allowWrites` (this console
// only; the shared `sql.readOnly` setting is left alone), and SQLite itself (not a guess from
// the query text) decides what counts as a write.

import { h, replace } from '../lib/dom.js';
import { send } from '../lib/api.js';
import { button, checkbox, clearErrors, codeArea, confirmDialog, formError, pageHeader, showErrors, table } from '../lib/ui.js';

const DRAFT_KEY = 'vb_admin_sql_draft';

export default async function screen() {
  const editor = codeArea({ name: 'query', label: 'Query', rows: 8, value: sessionStorage.getItem(DRAFT_KEY) || 'SELECT name, type FROM _collections ORDER BY name;' });
  const area = editor.querySelector('textarea');
  const writes = checkbox('allowWrites', 'Allow writes (INSERT, UPDATE, DELETE, DDL)');
  const writeBox = writes.querySelector('input');
  const warning = h('p', { class: 'sql-warning', role: 'status' });
  const meta = h('p', { class: 'muted sql-meta', role: 'status' });
  const emptyResults = () => table({ columns: [{ key: 'x', label: 'Result' }], rows: [], empty: 'Run a query to see its rows.' });
  const results = h('div', { class: 'sql-results' }, emptyResults());
  const run = button('Run', null, { kind: 'primary', type: 'submit', attrs: { 'aria-keyshortcuts': 'Control+Enter' } });

  const showWarning = () => replace(warning, writeBox.checked ? h('span', { class: 'error' }, '⚠ Writes are allowed: statements change the live database at once, with no undo. Take a backup first.') : h('span', { class: 'muted' }, 'Read-only: statements that would write are refused.'));
  writeBox.addEventListener('change', async () => {
    if (writeBox.checked && !(await confirmDialog('Statements will change the live database with no undo. Allow writes for this console?', { title: 'Allow writes?', danger: true, confirmLabel: 'Allow writes' }))) writeBox.checked = false;
    showWarning();
  });
  showWarning();

  const form = h(
    'form',
    {
      class: 'card sql-form',
      onSubmit: async (e) => {
        e.preventDefault();
        clearErrors(form);
        replace(meta);
        run.disabled = true;
        sessionStorage.setItem(DRAFT_KEY, area.value);
        try {
          const out = await send('/api/sql', { method: 'POST', body: { query: area.value, allowWrites: writeBox.checked } });
          const columns = (out.columns || []).map((c, i) => ({ key: String(i), label: c.type ? `${c.name} (${c.type})` : c.name }));
          const rows = (out.rows || []).map((r, i) => ({ id: String(i), ...Object.fromEntries(r.map((v, j) => [String(j), v])) }));
          replace(results, columns.length ? table({ caption: 'Query results', columns, rows, empty: 'No rows.' }) : h('p', { class: 'muted' }, 'The statement returned no columns.'));
          replace(meta, `${rows.length} row${rows.length === 1 ? '' : 's'} · ${out.affectedRows ?? 0} affected · ${out.execTime ?? 0} ms`);
        } catch (err) {
          replace(results, emptyResults());
          showErrors(form, err);
        } finally {
          run.disabled = false;
        }
      },
    },
    editor,
    writes,
    warning,
    formError(),
    h('div', { class: 'form-actions' }, h('span', { class: 'muted' }, 'Ctrl+Enter runs'), run),
  );
  area.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  return h('div', { class: 'page' }, pageHeader('SQL console'), form, meta, results);
}
