// Relation fields: the linked records as chips (their presentable fields) and a picker dialog that
// searches the related collection. The picker edits a copy of the selection; "Select" applies it.

import { h, replace, debounce, uid } from '../../../lib/dom.js';
import { send } from '../../../lib/api.js';
import { button, field as fieldBox, modal } from '../../../lib/ui.js';
import { asList, filterLiteral, isMulti, presentLabel, searchableFields } from '../schema.js';
import { group, helpOf, labelOf } from './common.js';

const PICKER_PAGE_SIZE = 20;
const SEARCH_DEBOUNCE_MS = 250;

export function relation(field, { record, readOnly, collectionsById }) {
  const related = collectionsById.get(field.collectionId);
  const multi = isMulti(field);
  const known = new Map(asList(record.expand?.[field.name]).map((r) => [r.id, r]));
  let ids = asList(record[field.name]);
  const chipsBox = h('div', { class: 'chips chips-wrap' });
  const label = (id) => (known.has(id) ? presentLabel(related, known.get(id)) : id);

  function draw() {
    replace(
      chipsBox,
      ids.length
        ? ids.map((id) =>
            h(
              'span',
              { class: 'chip', dataset: { id } },
              label(id),
              readOnly
                ? null
                : button('×', () => {
                    ids = ids.filter((x) => x !== id);
                    draw();
                  }, { kind: 'ghost', ariaLabel: `Unlink ${label(id)}`, attrs: { class: 'btn btn-ghost chip-x' } }),
            ),
          )
        : h('span', { class: 'muted' }, 'Nothing linked.'),
    );
  }
  draw();

  const open = () =>
    pick({ related, multi, selected: ids, known }).then((chosen) => {
      if (!chosen) return;
      ids = chosen;
      draw();
    });
  const pickBtn = readOnly || !related ? null : button(multi ? 'Pick records…' : 'Pick a record…', open, { attrs: { 'data-action': 'pick', 'aria-label': `Pick ${field.name}` } });
  const help = helpOf(field, related ? `Records of ${related.name}${multi ? `, up to ${field.maxSelect}` : ''}.` : 'The related collection no longer exists.');
  const node = group(field.name, labelOf(field), h('div', { class: 'relation' }, chipsBox, pickBtn), { help });
  return {
    node,
    read(out) {
      out.json[field.name] = multi ? ids : ids[0] || '';
    },
  };
}

/** The picker dialog; resolves with the chosen ids, or undefined when cancelled. */
function pick({ related, multi, selected, known }) {
  let chosen = [...selected];
  let page = 1;
  let seq = 0;
  const results = h('ul', { class: 'picker-list', 'aria-live': 'polite' });
  const status = h('p', { class: 'muted picker-status' });
  const more = button('Load more', () => load(false), { kind: 'ghost' });
  more.hidden = true;
  const search = h('input', { type: 'search', placeholder: 'Search by id or text fields', autocomplete: 'off' });
  const groupName = uid('pick');

  const toggle = (rec, on) => {
    known.set(rec.id, rec);
    if (!multi) chosen = on ? [rec.id] : [];
    else chosen = on ? [...chosen.filter((x) => x !== rec.id), rec.id] : chosen.filter((x) => x !== rec.id);
  };

  const row = (rec) => {
    const id = uid('opt');
    const control = h('input', {
      type: multi ? 'checkbox' : 'radio',
      name: groupName,
      id,
      checked: chosen.includes(rec.id),
      onChange: (e) => toggle(rec, e.target.checked),
    });
    return h('li', {}, control, h('label', { for: id }, h('span', { class: 'picker-label' }, presentLabel(related, rec)), h('span', { class: 'muted picker-id' }, rec.id)));
  };

  async function load(fresh) {
    const mine = ++seq;
    if (fresh) {
      page = 1;
      replace(results);
    }
    replace(status, 'Loading…');
    const q = search.value.trim();
    const filter = q ? ['id', ...searchableFields(related)].map((f) => `${f} ~ ${filterLiteral(q)}`).join(' || ') : '';
    try {
      const res = await send(`/api/collections/${encodeURIComponent(related.id)}/records`, { query: { page, perPage: PICKER_PAGE_SIZE, filter, skipTotal: 1 } });
      if (mine !== seq) return;
      results.append(...res.items.map(row));
      replace(status, results.children.length ? '' : 'No records match.');
      more.hidden = res.items.length < PICKER_PAGE_SIZE;
      page += 1;
    } catch (err) {
      if (mine === seq) replace(status, h('span', { class: 'error', role: 'alert' }, err.message));
    }
  }
  search.addEventListener('input', debounce(() => load(true), SEARCH_DEBOUNCE_MS));
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') e.preventDefault();
  });

  const m = modal({
    title: `Pick ${multi ? 'records' : 'a record'} of ${related.name}`,
    wide: true,
    body: h('div', { class: 'picker' }, fieldBox({ label: 'Search', name: 'search', input: search }), status, results, more),
    actions: [
      (close) => button('Cancel', () => close(undefined), { kind: 'ghost' }),
      (close) => button('Select', () => close(chosen), { kind: 'primary', attrs: { 'data-action': 'select' } }),
    ],
  });
  load(true);
  search.focus();
  return m.done;
}
