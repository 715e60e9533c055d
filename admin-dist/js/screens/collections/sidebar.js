// The collections sidebar shared by the collections and records screens: a search box, the
// user's collections with a type icon, system collections folded into a "System" group, the
// active one marked, and the "New collection" link. Reads the cached list (`collections()`);
// whoever changes the schema calls `invalidateCollections()` and the next render is fresh.

import { h, replace } from '../../lib/dom.js';
import { collections } from '../../lib/api.js';

/** One glyph per collection type; the type is also given in text for screen readers. */
export const TYPE_ICONS = { base: '▤', auth: '☺', view: '◫' };

export function typeIcon(type) {
  return h('span', { class: 'icon coll-icon', title: `${type} collection`, 'aria-hidden': 'true' }, TYPE_ICONS[type] || '▤');
}

/** collectionsSidebar(idOrName) — the active collection may be given by id or by name. */
export function collectionsSidebar(activeId) {
  const list = h('div', { class: 'coll-groups' }, h('p', { class: 'muted coll-loading' }, 'Loading…'));
  const search = h('input', { type: 'search', placeholder: 'Search collections', 'aria-label': 'Search collections', autocomplete: 'off' });
  let systemOpen = false;
  const isActive = (c) => c.id === activeId || c.name === activeId;
  const item = (c) =>
    h(
      'li',
      {},
      h(
        'a',
        { href: `#/collections/${encodeURIComponent(c.id)}`, 'aria-current': isActive(c) ? 'page' : null, title: c.name },
        typeIcon(c.type),
        h('span', { class: 'coll-name' }, c.name),
        h('span', { class: 'sr-only' }, ` (${c.type})`),
      ),
    );
  const draw = (items) => {
    const q = search.value.trim().toLowerCase();
    const shown = items.filter((c) => !q || c.name.toLowerCase().includes(q));
    const own = shown.filter((c) => !c.system);
    const system = shown.filter((c) => c.system);
    // A search that only hits system collections, or an active system collection, opens the group.
    const open = systemOpen || (q && system.length > 0) || items.some((c) => c.system && isActive(c));
    const details = system.length
      ? h(
          'details',
          { class: 'coll-system', open },
          // Only the user's own clicks (and Enter/Space, which click) decide the folded state;
          // a search opening the group for its hits does not.
          h('summary', { onClick: (e) => { systemOpen = !e.currentTarget.parentElement.open; } }, `System (${system.length})`),
          h('ul', { class: 'coll-list' }, system.map(item)),
        )
      : null;
    replace(
      list,
      own.length ? h('ul', { class: 'coll-list' }, own.map(item)) : h('p', { class: 'muted' }, q ? 'No collection matches.' : 'No collections yet.'),
      details,
    );
  };
  collections().then(
    (items) => {
      draw(items);
      search.addEventListener('input', () => draw(items));
    },
    (err) => replace(list, h('p', { class: 'error', role: 'alert' }, err.message)),
  );
  return h('aside', { class: 'coll-sidebar', 'aria-label': 'Collections' }, search, list, h('a', { class: 'btn btn-primary', href: '#/collections/new' }, '+ New collection'));
}
