// Jobs (vaultbase's `/api/vb/jobs`): the list filtered by name and status, one job with its
// payload and attempts (start, duration, outcome, error), retry and cancel.

import { h, replace } from '../lib/dom.js';
import { send } from '../lib/api.js';
import { setQuery } from '../lib/router.js';
import { button, field, input, modal, pageHeader, pager, select, table, toast } from '../lib/ui.js';

const PER_PAGE = 50;
const STATUSES = ['queued', 'running', 'done', 'dead', 'cancelled'];
const STATUS_KIND = { done: 'badge-ok', dead: 'badge-danger', cancelled: 'badge-warn', running: '', queued: '' };

/** Jobs store times as unix milliseconds. */
export function when(ms) {
  return ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '—';
}

export function statusBadge(status) {
  return h('span', { class: `badge ${STATUS_KIND[status] ?? ''}` }, status);
}

export default async function screen({ query }) {
  const state = { name: query.get('name') || '', status: query.get('status') || '', page: Number(query.get('page')) || 1 };
  const listSlot = h('div');
  const pagerSlot = h('div', { class: 'pager-slot' });
  const error = h('p', { class: 'error', role: 'alert' });
  const columns = [
    { key: 'name', label: 'Name' },
    { key: 'status', label: 'Status', render: (r) => statusBadge(r.status) },
    { key: 'attempts', label: 'Attempts', render: (r) => `${r.attempts}/${r.maxAttempts}` },
    { key: 'runAt', label: 'Run at (UTC)', render: (r) => when(r.runAt) },
    { key: 'lastError', label: 'Last error', render: (r) => (r.lastError ? h('span', { class: 'error', title: r.lastError }, r.lastError) : h('span', { class: 'muted' }, '—')) },
  ];
  const load = async () => {
    setQuery({ name: state.name, status: state.status, page: state.page > 1 ? state.page : '' });
    replace(listSlot, table({ caption: 'Jobs', columns, loading: true }));
    replace(error);
    try {
      const res = await send('/api/vb/jobs', { query: { name: state.name, status: state.status, limit: PER_PAGE, offset: (state.page - 1) * PER_PAGE } });
      replace(listSlot, table({ caption: 'Jobs', columns, rows: res.items, onRowClick: (r) => view(r.id, load), empty: 'No jobs match.' }));
      const totalPages = Math.max(1, Math.ceil(res.totalItems / PER_PAGE));
      replace(pagerSlot, pager({ page: state.page, totalPages, totalItems: res.totalItems, onPage: (p) => { state.page = p; load(); } }));
    } catch (err) {
      replace(listSlot, table({ caption: 'Jobs', columns, rows: [] }));
      replace(error, err.message);
    }
  };
  const nameInput = input('name', { value: state.name, placeholder: 'webhook.deliver', autocomplete: 'off' });
  const statusSelect = select('status', [['', 'Any status'], ...STATUSES.map((s) => [s, s])], { value: state.status });
  const bar = h(
    'form',
    {
      class: 'row filter-bar',
      role: 'search',
      onSubmit: (e) => {
        e.preventDefault();
        state.name = nameInput.value.trim();
        state.status = statusSelect.value;
        state.page = 1;
        load();
      },
    },
    field({ label: 'Job name', name: 'name', input: nameInput }),
    field({ label: 'Status', name: 'status', input: statusSelect }),
    h('div', { class: 'field' }, button('Filter', null, { kind: 'primary', type: 'submit' })),
  );
  statusSelect.addEventListener('change', () => bar.requestSubmit());
  load();
  return h('div', { class: 'page' }, pageHeader('Jobs', { actions: [button('Refresh', load, { kind: 'ghost', ariaLabel: 'Refresh jobs' })] }), bar, error, listSlot, pagerSlot);
}

async function view(id, onChange) {
  let job;
  try {
    job = await send(`/api/vb/jobs/${encodeURIComponent(id)}`);
  } catch (err) {
    toast(err.message, 'error');
    return;
  }
  const act = (verb) => async (close) => {
    try {
      await send(`/api/vb/jobs/${encodeURIComponent(id)}/${verb}`, { method: 'POST' });
      toast(verb === 'retry' ? 'Job queued again.' : 'Job cancelled.', 'ok');
      close(true);
      onChange();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  const canRetry = ['dead', 'cancelled', 'queued'].includes(job.status);
  const canCancel = ['queued', 'running'].includes(job.status);
  modal({
    title: `Job ${job.name}`,
    wide: true,
    body: h(
      'div',
      { class: 'job-detail' },
      h(
        'dl',
        { class: 'kv' },
        h('dt', {}, 'ID'), h('dd', {}, h('code', {}, job.id)),
        h('dt', {}, 'Status'), h('dd', {}, statusBadge(job.status)),
        h('dt', {}, 'Attempts'), h('dd', {}, `${Array.isArray(job.attempts) ? job.attempts.length : job.attempts} of ${job.maxAttempts}`),
        h('dt', {}, 'Created'), h('dd', {}, when(job.created)),
        h('dt', {}, 'Run at'), h('dd', {}, when(job.runAt)),
        job.lastError ? [h('dt', {}, 'Last error'), h('dd', { class: 'error' }, job.lastError)] : null,
      ),
      h('h3', {}, 'Attempts'),
      table({
        caption: 'Attempts',
        rowKey: (a) => String(a.attempt),
        rows: job.attempts || [],
        skeletonRows: 2,
        empty: 'Not attempted yet.',
        columns: [
          { key: 'attempt', label: '#' },
          { key: 'started', label: 'Started (UTC)', render: (a) => when(a.started) },
          { key: 'durationMs', label: 'Duration', render: (a) => `${a.durationMs ?? '—'} ms` },
          { key: 'outcome', label: 'Outcome', render: (a) => h('span', { class: `badge ${a.outcome === 'ok' || a.outcome === 'done' ? 'badge-ok' : 'badge-danger'}` }, a.outcome) },
          { key: 'error', label: 'Error', render: (a) => (a.error ? h('span', { class: 'error', title: a.error }, a.error) : h('span', { class: 'muted' }, '—')) },
        ],
      }),
      h('h3', {}, 'Payload'),
      h('pre', {}, JSON.stringify(job.payload, null, 2)),
    ),
    actions: [
      (close) => button('Close', () => close(false), { kind: 'ghost' }),
      canCancel ? (close) => button('Cancel job', () => act('cancel')(close), { kind: 'danger' }) : null,
      canRetry ? (close) => button('Retry', () => act('retry')(close), { kind: 'primary' }) : null,
    ].filter(Boolean),
  });
}
