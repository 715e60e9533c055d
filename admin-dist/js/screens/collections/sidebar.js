// The collections sidebar shared by the collections and records screens: search, system
// collections folded away, the active one marked. (Placeholder for the collections screen work.)

import { h, replace } from '../../lib/dom.js';
import { collections } from '../../lib/api.js';

export function collectionsSidebar(activeId) {
  const list = h('ul', { class: 'coll-list' });
  const search = h('input', { type: 'search', placeholder: 'Search collections', 'aria-label': 'Search collections' });
  const draw = (items) => {
    const q = search.value.trim().toLowerCase();
    replace(
      list,
      items
        .filter((c) => !q || c.name.toLowerCase().includes(q))
        .map((c) => h('li', {}, h('a', { href: `#/collections/${encodeURIComponent(c.id)}`, 'aria-current': c.id === activeId || c.name === activeId ? 'page' : null }, c.name))),
    );
  };
  collections().then((items) => {
    draw(items);
    search.addEventListener('input', () => draw(items));
  });
  return h('aside', { class: 'coll-sidebar', 'aria-label': 'Collections' }, search, list, h('a', { class: 'btn btn-primary', href: '#/collections/new' }, '+ New collection'));
}
