// `/collections`: the sidebar and an overview of every collection — type, field count, record
// count, who may list it — with links to its records and its editor. Record counts are one
// `perPage=1` request per collection, fetched after the table is drawn and capped, so a large
// schema never delays the page.

import { h, replace } from '../../lib/dom.js';
import { collections, send } from '../../lib/api.js';
import { pageHeader, table } from '../../lib/ui.js';
import { collectionsSidebar, typeIcon } from './sidebar.js';
import { ruleSummary } from './rules.js';

/** Counting more collections than this would be a burst of requests for a glance. */
const MAX_COUNTED_COLLECTIONS = 60;

export default async function screen() {
  const slot = h('div', { class: 'coll-overview' }, table({ columns: COLUMNS, loading: true, skeletonRows: 6, caption: 'Collections' }));
  const counts = new Map();
  const draw = (items) => {
    const own = items.filter((c) => !c.system);
    const system = items.filter((c) => c.system);
    replace(
      slot,
      table({ columns: COLUMNS.map((c) => (c.key === 'count' ? { ...c, render: (row) => counts.get(row.id) } : c)), rows: own, caption: 'Your collections', empty: h('span', {}, 'No collections yet. ', h('a', { href: '#/collections/new' }, 'Create the first one.')) }),
      system.length ? h('h2', {}, 'System collections') : null,
      system.length ? table({ columns: COLUMNS.map((c) => (c.key === 'count' ? { ...c, render: (row) => counts.get(row.id) } : c)), rows: system, caption: 'System collections' }) : null,
    );
  };
  collections().then(
    (items) => {
      items.forEach((c) => counts.set(c.id, h('span', { class: 'muted', dataset: { count: c.name } }, '…')));
      draw(items);
      items.slice(0, MAX_COUNTED_COLLECTIONS).forEach((c) => {
        send(`/api/collections/${encodeURIComponent(c.id)}/records`, { query: { perPage: 1, fields: 'id' } }).then(
          (res) => replace(counts.get(c.id), String(res.totalItems)),
          () => replace(counts.get(c.id), '—'),
        );
      });
    },
    (err) => replace(slot, h('p', { class: 'error', role: 'alert' }, err.message)),
  );
  return h(
    'div',
    { class: 'split' },
    collectionsSidebar(null),
    h('section', { class: 'page' }, pageHeader('Collections', { actions: [h('a', { class: 'btn btn-primary', href: '#/collections/new' }, '+ New collection')] }), slot),
  );
}

const COLUMNS = [
  {
    key: 'name',
    label: 'Name',
    render: (c) => h('a', { href: `#/collections/${encodeURIComponent(c.id)}`, class: 'coll-link' }, typeIcon(c.type), ' ', c.name),
  },
  { key: 'type', label: 'Type', render: (c) => h('span', { class: 'badge' }, c.type) },
  { key: 'fields', label: 'Fields', render: (c) => String((c.fields || []).length) },
  { key: 'count', label: 'Records' },
  { key: 'listRule', label: 'List rule', render: (c) => ruleSummary(c.listRule) },
  {
    key: 'actions',
    label: 'Actions',
    render: (c) =>
      h(
        'span',
        { class: 'coll-actions' },
        h('a', { href: `#/collections/${encodeURIComponent(c.id)}`, 'aria-label': `Records of ${c.name}` }, 'Records'),
        ' · ',
        h('a', { href: `#/collections/${encodeURIComponent(c.id)}/edit`, 'aria-label': `Edit ${c.name}` }, 'Edit'),
      ),
  },
];
