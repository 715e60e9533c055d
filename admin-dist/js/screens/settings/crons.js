// Settings › Crons: every registered job with its expression, "run now", and its last runs
// (vaultbase's `/api/crons/{id}/runs`, newest first).

import { h, replace } from '../../lib/dom.js';
import { send } from '../../lib/api.js';
import { button, pageHeader, table, toast } from '../../lib/ui.js';

const RUNS_SHOWN = 10;

export function runsTable(runs, { loading = false } = {}) {
  return table({
    caption: 'Runs',
    loading,
    skeletonRows: 3,
    rows: runs,
    empty: 'No runs yet.',
    columns: [
      { key: 'started', label: 'Started' },
      { key: 'durationMs', label: 'Duration', render: (r) => `${r.durationMs ?? '—'} ms` },
      { key: 'trigger', label: 'Trigger' },
      { key: 'outcome', label: 'Outcome', render: (r) => h('span', { class: `badge ${r.outcome === 'ok' ? 'badge-ok' : 'badge-danger'}` }, r.outcome) },
      { key: 'worker', label: 'Worker' },
      { key: 'error', label: 'Error', render: (r) => (r.error ? h('span', { class: 'error', title: r.error }, r.error) : h('span', { class: 'muted' }, '—')) },
    ],
  });
}

export default async function section() {
  const crons = await send('/api/crons');
  const list = h('div', { class: 'cron-list' });
  const cards = crons.map((c) => {
    const runs = h('div', { class: 'cron-runs', dataset: { cron: c.id } }, runsTable([], { loading: true }));
    const load = async () => {
      try {
        const res = await send(`/api/crons/${encodeURIComponent(c.id)}/runs`, { query: { limit: RUNS_SHOWN } });
        replace(runs, runsTable(res.items || []));
      } catch (err) {
        replace(runs, h('p', { class: 'error', role: 'alert' }, err.message));
      }
    };
    const run = button('Run now', async () => {
      run.disabled = true;
      try {
        const before = runs.querySelectorAll('tbody tr:not(.skeleton)').length;
        await send(`/api/crons/${encodeURIComponent(c.id)}`, { method: 'POST' });
        toast(`${c.id} started.`, 'ok');
        // The run is started in the background: poll its history a few times until it shows.
        for (let i = 0; i < 20; i += 1) {
          await load();
          if (runs.querySelector('tbody tr[data-id]') && runs.querySelectorAll('tbody tr[data-id]').length !== before) break;
          await new Promise((r) => setTimeout(r, 250));
        }
      } catch (err) {
        toast(err.message, 'error');
      } finally {
        run.disabled = false;
      }
    }, { kind: 'primary', ariaLabel: `Run ${c.id} now` });
    load();
    return h(
      'section',
      { class: 'card cron-card', dataset: { cron: c.id } },
      h('div', { class: 'page-head' }, h('div', {}, h('h2', {}, c.id), h('code', {}, c.expression)), h('div', { class: 'page-actions' }, button('Refresh', load, { kind: 'ghost', ariaLabel: `Refresh runs of ${c.id}` }), run)),
      runs,
    );
  });
  replace(list, cards.length ? cards : h('p', { class: 'muted' }, 'No cron jobs are registered.'));
  return h('div', {}, pageHeader('Crons', { crumbs: [{ label: 'Settings' }] }), h('p', { class: 'muted' }, 'Jobs registered by the app and by pb_hooks (cronAdd). Times are UTC.'), list);
}
