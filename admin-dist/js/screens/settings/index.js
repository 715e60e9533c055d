// Settings: the section list on the left, one module per section on the right. Each section
// module's default export is `section({params, query}) → Node` and owns its own loading and
// saving; this file only knows the list and routes between them.

import { h } from '../../lib/dom.js';

export const SECTIONS = [
  { id: 'application', label: 'Application', load: () => import('./application.js') },
  { id: 'mail', label: 'Mail settings', load: () => import('./mail.js') },
  { id: 'files', label: 'Files storage', load: () => import('./files.js') },
  { id: 'backups', label: 'Backups', load: () => import('./backups.js') },
  { id: 'crons', label: 'Crons', load: () => import('./crons.js') },
  { id: 'rate-limits', label: 'Rate limits', load: () => import('./rate-limits.js') },
  { id: 'superusers', label: 'Superusers', load: () => import('./superusers.js') },
  { id: 'export', label: 'Export collections', load: () => import('./export.js') },
  { id: 'import', label: 'Import collections', load: () => import('./import.js') },
];

export default async function screen({ params, query }) {
  const active = SECTIONS.find((s) => s.id === params.section) || SECTIONS[0];
  const nav = h(
    'nav',
    { class: 'settings-nav', 'aria-label': 'Settings sections' },
    h('ul', { class: 'coll-list' }, SECTIONS.map((s) => h('li', {}, h('a', { href: `#/settings/${s.id}`, 'aria-current': s === active ? 'page' : null }, s.label)))),
  );
  const mod = await active.load();
  const body = await mod.default({ params, query });
  const node = h('div', { class: 'page split settings-page' }, nav, h('div', { class: 'settings-body' }, body));
  node.cleanup = body?.cleanup;
  return node;
}
