// The records table of one collection (route /collections/:id, id or name): filter bar with the
// server's error under it, sortable headers, pages, column choice remembered per collection,
// bulk delete, JSON export. The URL query holds page, perPage, sort and filter, so a reload or a
// shared link shows the same rows.

import { h, replace, uid } from '../../lib/dom.js';
import { collections, fullList, send } from '../../lib/api.js';
import { current, navigate, setQuery } from '../../lib/router.js';
import { button, checkbox, confirmDialog, modal, pageHeader, pager, select, table, toast } from '../../lib/ui.js';
import { collectionsSidebar } from '../collections/sidebar.js';
import { cell } from './cells.js';
import { rememberListQuery } from './back.js';
import { columnFields, findCollection, relationNames } from './schema.js';

const DEFAULT_PER_PAGE = 30;
const PER_PAGE_CHOICES = [10, 30, 50, 100, 200];
const MAX_SKELETON_ROWS = 10;
const COLUMNS_KEY_PREFIX = 'vb_admin_columns_';
/** How long an exported file's blob URL lives (the download has started long before). */
const EXPORT_URL_LIFETIME_MS = 60000;

function positiveInt(text, fallback) {
  const n = Number.parseInt(text, 10);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

export default async function screen({ params, query }) {
  const collection = await findCollection(params.id);
  if (!collection) {
    return h('div', { class: 'page split' }, collectionsSidebar(params.id), h('section', {}, h('h1', {}, 'Collection not found'), h('p', {}, `There is no collection "${params.id}".`), h('a', { href: '#/collections' }, 'Back to collections')));
  }
  const collectionsById = new Map((await collections()).map((c) => [c.id, c]));
  const readOnly = collection.type === 'view';
  const base = `/api/collections/${encodeURIComponent(collection.id)}/records`;
  const state = {
    page: positiveInt(query.get('page'), 1),
    perPage: positiveInt(query.get('perPage'), DEFAULT_PER_PAGE),
    sort: query.get('sort') || '',
    filter: query.get('filter') || '',
  };
  let rows = [];
  let result = null;
  let loading = true;
  let selected = new Set();
  let fileToken = '';
  let seq = 0;
  let controller = null;

  // Columns: the user's hidden ones are stored (not the shown ones), so new fields show up.
  const columnsKey = `${COLUMNS_KEY_PREFIX}${collection.id}`;
  let hiddenColumns;
  try {
    hiddenColumns = new Set(JSON.parse(localStorage.getItem(columnsKey)) || []);
  } catch {
    hiddenColumns = new Set();
  }
  const allColumns = columnFields(collection);
  const visibleFields = () => allColumns.filter((f) => f.name === 'id' || !hiddenColumns.has(f.name));

  // Filter bar.
  const filterInput = h('input', { type: 'search', name: 'filter', value: state.filter, placeholder: 'Filter, e.g. title ~ "hello" && created > "2024-01-01"', 'aria-label': 'Filter records', autocomplete: 'off', spellcheck: false });
  const filterError = h('div', { class: 'field-error filter-error', id: uid('filter-err'), role: 'alert' });
  filterInput.setAttribute('aria-describedby', filterError.id);
  const filterForm = h(
    'form',
    {
      class: 'records-filter',
      role: 'search',
      onSubmit: (e) => {
        e.preventDefault();
        state.filter = filterInput.value.trim();
        state.page = 1;
        load();
      },
    },
    filterInput,
    button('Apply', null, { type: 'submit' }),
    button('Clear', () => {
      filterInput.value = '';
      state.filter = '';
      state.page = 1;
      load();
    }, { kind: 'ghost', attrs: { 'data-action': 'clear-filter' } }),
  );

  const tableSlot = h('div', { class: 'records-table' });
  const bulkBar = h('div', { class: 'bulk-bar', 'aria-live': 'polite' });
  const pagerSlot = h('div', { class: 'records-pager' });

  function syncQuery() {
    const q = { page: state.page > 1 ? state.page : '', perPage: state.perPage !== DEFAULT_PER_PAGE ? state.perPage : '', sort: state.sort, filter: state.filter };
    setQuery(q);
    rememberListQuery(params.id, current().query.toString());
  }

  function drawTable() {
    const fields = visibleFields();
    const ctx = { collectionsById, fileToken };
    replace(
      tableSlot,
      table({
        columns: fields.map((f) => ({ key: f.name, label: f.name, sortable: true, render: (row) => cell(f, row, ctx) })),
        rows,
        loading,
        skeletonRows: Math.min(rows.length || state.perPage, MAX_SKELETON_ROWS),
        sort: state.sort,
        onSort: (sort) => {
          state.sort = sort;
          state.page = 1;
          load();
        },
        onRowClick: (row) => navigate(`/collections/${encodeURIComponent(params.id)}/records/${encodeURIComponent(row.id)}`),
        selectable: !readOnly,
        selected,
        onSelect: (next) => {
          selected = next;
          drawTable();
          drawBulk();
        },
        empty: filterError.textContent ? 'Fix the filter to see records.' : state.filter ? 'No records match the filter.' : 'No records yet.',
        caption: `Records of ${collection.name}`,
      }),
    );
  }

  function drawBulk() {
    if (readOnly) return;
    replace(
      bulkBar,
      selected.size
        ? [
            h('span', {}, `${selected.size} selected`),
            button(`Delete selected (${selected.size})`, bulkDelete, { kind: 'danger', attrs: { 'data-action': 'bulk-delete' } }),
            button('Clear selection', () => {
              selected = new Set();
              drawTable();
              drawBulk();
            }, { kind: 'ghost' }),
          ]
        : h('span', { class: 'muted' }, 'Tick rows to delete several at once.'),
    );
  }

  function drawPager() {
    const perPage = select('perPage', PER_PAGE_CHOICES.map((n) => [n, `${n} per page`]), {
      value: state.perPage,
      'aria-label': 'Records per page',
      onChange: (e) => {
        state.perPage = Number(e.target.value);
        state.page = 1;
        load();
      },
    });
    const pages = pager({
      page: state.page,
      totalPages: result ? result.totalPages : -1,
      totalItems: result ? result.totalItems : -1,
      hasMore: false,
      onPage: (page) => {
        state.page = page;
        load();
      },
    });
    replace(pagerSlot, perPage, pages);
  }

  async function load() {
    const mine = ++seq;
    controller?.abort();
    controller = new AbortController();
    loading = true;
    replace(filterError);
    filterInput.removeAttribute('aria-invalid');
    drawTable();
    syncQuery();
    const fields = visibleFields();
    const expand = relationNames(collection, fields.map((f) => f.name)).join(',');
    const needsToken = fields.some((f) => f.type === 'file' && f.protected);
    try {
      const [res, token] = await Promise.all([
        send(base, { query: { page: state.page, perPage: state.perPage, sort: state.sort, filter: state.filter, expand }, signal: controller.signal }),
        needsToken ? send('/api/files/token', { method: 'POST' }).then((r) => r.token, () => '') : '',
      ]);
      if (mine !== seq) return;
      if (res.totalPages > 0 && state.page > res.totalPages) {
        state.page = res.totalPages;
        load();
        return;
      }
      rows = res.items;
      result = res;
      fileToken = token;
    } catch (err) {
      if (err.name === 'AbortError' || mine !== seq) return;
      rows = [];
      result = null;
      if (err.status === 400) {
        replace(filterError, `${err.message} Check the filter${state.sort ? ' and the sort' : ''}: field names, operators (=, !=, ~, >, …) and quoted values.`);
        filterInput.setAttribute('aria-invalid', 'true');
      } else {
        toast(err.message, 'error');
      }
    }
    loading = false;
    const present = new Set(rows.map((r) => r.id));
    selected = new Set([...selected].filter((id) => present.has(id)));
    drawTable();
    drawBulk();
    drawPager();
  }

  async function bulkDelete() {
    const ids = [...selected];
    const ok = await confirmDialog(`Delete ${ids.length} record${ids.length === 1 ? '' : 's'} of ${collection.name}? This cannot be undone.`, { title: 'Delete records', danger: true, confirmLabel: 'Delete' });
    if (!ok) return;
    const failures = await deleteMany(ids);
    const deleted = ids.length - failures.length;
    if (deleted) toast(`Deleted ${deleted} record${deleted === 1 ? '' : 's'}.`, 'ok');
    if (failures.length) {
      modal({
        title: `${failures.length} record${failures.length === 1 ? ' was' : 's were'} not deleted`,
        body: h('ul', { class: 'failures' }, failures.map((f) => h('li', {}, h('code', {}, f.id), ` — ${f.message}`))),
        actions: [(close) => button('Close', () => close(), { kind: 'primary' })],
      });
    }
    selected = new Set(failures.map((f) => f.id));
    load();
  }

  async function deleteMany(ids) {
    const url = (id) => `/api/collections/${encodeURIComponent(collection.name)}/records/${encodeURIComponent(id)}`;
    const failures = [];
    const settings = await send('/api/settings').catch(() => null);
    if (settings?.batch?.enabled) {
      // One transaction per chunk: a failing item rolls back its whole chunk.
      const size = Math.max(1, settings.batch.maxRequests || 50);
      for (let i = 0; i < ids.length; i += size) {
        const chunk = ids.slice(i, i + size);
        try {
          await send('/api/batch', { method: 'POST', body: { requests: chunk.map((id) => ({ method: 'DELETE', url: url(id) })) } });
        } catch (err) {
          const items = err.data?.requests || {};
          chunk.forEach((id, n) => {
            const item = items[n] || items[String(n)];
            failures.push({ id, message: item ? item.response?.message || item.message : `not deleted: another delete in the same batch failed, so the batch was rolled back (${err.message})` });
          });
        }
      }
      return failures;
    }
    for (const id of ids) {
      try {
        await send(url(id), { method: 'DELETE' });
      } catch (err) {
        failures.push({ id, message: err.message });
      }
    }
    return failures;
  }

  async function exportJson(btn) {
    btn.disabled = true;
    try {
      const items = await fullList(base, { filter: state.filter, sort: state.sort });
      const blob = new Blob([JSON.stringify(items, null, 2)], { type: 'application/json' });
      const href = URL.createObjectURL(blob);
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      const a = h('a', { href, download: `${collection.name}-${stamp}.json`, class: 'sr-only' }, 'download');
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(href), EXPORT_URL_LIFETIME_MS);
      toast(`Exported ${items.length} record${items.length === 1 ? '' : 's'}.`, 'ok');
    } catch (err) {
      toast(err.message, 'error');
    } finally {
      btn.disabled = false;
    }
  }

  const columnsMenu = h(
    'details',
    { class: 'col-menu' },
    h('summary', { class: 'btn' }, 'Columns'),
    h(
      'div',
      { class: 'col-menu-list' },
      allColumns.map((f) =>
        checkbox(`column-${f.name}`, f.name, {
          checked: f.name === 'id' || !hiddenColumns.has(f.name),
          disabled: f.name === 'id',
          onChange: (e) => {
            if (e.target.checked) hiddenColumns.delete(f.name);
            else hiddenColumns.add(f.name);
            localStorage.setItem(columnsKey, JSON.stringify([...hiddenColumns]));
            load();
          },
        }),
      ),
    ),
  );
  columnsMenu.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && columnsMenu.open) {
      columnsMenu.open = false;
      columnsMenu.querySelector('summary').focus();
    }
  });
  const exportBtn = button('Export JSON', () => exportJson(exportBtn), { kind: 'ghost', attrs: { 'data-action': 'export' } });

  const actions = [
    columnsMenu,
    exportBtn,
    h('a', { class: 'btn btn-ghost', href: `#/collections/${encodeURIComponent(collection.id)}/edit` }, 'Edit collection'),
    readOnly ? null : h('a', { class: 'btn btn-primary', href: `#/collections/${encodeURIComponent(params.id)}/records/new` }, '+ New record'),
  ];
  const section = h(
    'section',
    { class: 'records' },
    pageHeader(collection.name, { crumbs: [{ label: 'Collections', href: '#/collections' }], actions }),
    filterForm,
    filterError,
    readOnly ? null : bulkBar,
    tableSlot,
    pagerSlot,
  );
  drawBulk();
  drawPager();
  load();
  const node = h('div', { class: 'page split records-page' }, collectionsSidebar(params.id), section);
  node.cleanup = () => {
    seq += 1;
    controller?.abort();
  };
  return node;
}
