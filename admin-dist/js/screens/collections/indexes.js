// The indexes editor: the collection's `CREATE [UNIQUE] INDEX` statements, each editable as SQL
// with a unique switch, removable, and a small builder that writes a new statement from chosen
// columns. Inputs are named `indexes.<i>` to receive the server's error for that statement.

import { h, replace } from '../../lib/dom.js';
import { button, field } from '../../lib/ui.js';

const UNIQUE_RE = /^\s*create\s+unique\s+index/i;

export function isUnique(sql) {
  return UNIQUE_RE.test(sql);
}

export function setUnique(sql, unique) {
  if (unique === isUnique(sql)) return sql;
  return unique ? sql.replace(/^\s*create\s+index/i, 'CREATE UNIQUE INDEX') : sql.replace(/^\s*create\s+unique\s+index/i, 'CREATE INDEX');
}

/** The column list of an index statement, for display. */
export function indexColumns(sql) {
  const m = /\(([^)]*)\)\s*(where\b.*)?$/is.exec(sql);
  return m ? m[1].trim() : '';
}

/**
 * Rewrites the column lists of `indexes` for renamed fields (`renames`: Map old → new), whatever
 * the quoting (bare, `backticks`, "double", [brackets]); the server refuses an index that names
 * a column the table no longer has.
 */
export function renameInIndexes(indexes, renames) {
  return indexes.map((sql) => {
    const open = sql.indexOf('(');
    if (open < 0) return sql;
    let cols = sql.slice(open);
    for (const [from, to] of renames) {
      const escaped = from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      cols = cols.replace(new RegExp(`[\`"\\[]?\\b${escaped}\\b[\`"\\]]?`, 'g'), `\`${to}\``);
    }
    return sql.slice(0, open) + cols;
  });
}

export function indexesEditor(draft) {
  const root = h('div', { class: 'indexes-editor' });
  const draw = (focus) => {
    const rows = draft.indexes.map((sql, i) => {
      const area = h('input', { type: 'text', class: 'code', name: `indexes.${i}`, autocomplete: 'off', spellcheck: false });
      area.value = sql;
      const unique = h('input', { type: 'checkbox', checked: isUnique(sql), 'aria-label': `Index ${i + 1} unique` });
      area.addEventListener('input', () => {
        draft.indexes[i] = area.value;
        unique.checked = isUnique(area.value);
      });
      unique.addEventListener('change', () => {
        draft.indexes[i] = setUnique(draft.indexes[i], unique.checked);
        area.value = draft.indexes[i];
      });
      return h(
        'li',
        { class: 'index-row' },
        field({ label: `Index ${i + 1}`, name: `indexes.${i}`, input: area }),
        h('label', { class: 'index-unique' }, unique, ' Unique'),
        button('✕', () => {
          draft.indexes.splice(i, 1);
          draw();
        }, { kind: 'ghost', ariaLabel: `Remove index ${i + 1}` }),
      );
    });
    const names = draft.fields.filter((f) => f.name).map((f) => f.name);
    const cols = h('select', { multiple: true, size: Math.min(6, Math.max(2, names.length)), 'aria-label': 'Columns of the new index' }, names.map((n) => h('option', { value: n }, n)));
    const uniq = h('input', { type: 'checkbox', 'aria-label': 'New index unique' });
    replace(
      root,
      rows.length ? h('ol', { class: 'index-rows' }, rows) : h('p', { class: 'muted' }, 'No indexes yet.'),
      h(
        'fieldset',
        { class: 'card index-new' },
        h('legend', {}, 'New index'),
        h('div', { class: 'row' }, field({ label: 'Columns', input: cols, help: 'Ctrl/Cmd-click for several.' }), h('label', { class: 'index-unique' }, uniq, ' Unique')),
        button('+ Add index', () => {
          const chosen = [...cols.selectedOptions].map((o) => o.value);
          if (!chosen.length) return cols.focus();
          const table = draft.name || 'collection';
          const name = `idx_${table}_${chosen.join('_')}`.replace(/\W/g, '_');
          draft.indexes.push(`CREATE ${uniq.checked ? 'UNIQUE ' : ''}INDEX ${name} ON ${table} (${chosen.join(', ')})`);
          draw(draft.indexes.length - 1);
        }),
      ),
    );
    if (focus != null) root.querySelector(`[name="indexes.${focus}"]`)?.focus();
  };
  draw();
  root.refresh = () => draw();
  return root;
}
