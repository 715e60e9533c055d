// Settings › Export collections: pick collections, see their JSON, download it or copy it.
// The file is what Import takes back (PocketBase's format: an array of collection models).

import { h } from '../../lib/dom.js';
import { collections } from '../../lib/api.js';
import { button, checkbox, codeArea, pageHeader, toast } from '../../lib/ui.js';

/** The export form of a collection: ids and everything the import needs, nothing derived. */
export function exportable(c) {
  const out = { ...c };
  delete out.created;
  delete out.updated;
  return out;
}

export default async function section() {
  const all = await collections({ force: true });
  const chosen = new Set(all.filter((c) => !c.system).map((c) => c.id));
  const preview = codeArea({ name: 'export-json', label: 'Exported JSON', rows: 18, readOnly: true });
  const area = preview.querySelector('textarea');
  const json = () => JSON.stringify(all.filter((c) => chosen.has(c.id)).map(exportable), null, 2);
  const refresh = () => {
    area.value = json();
  };
  const boxes = all.map((c) =>
    checkbox(`export-${c.name}`, c.name + (c.system ? ' (system)' : ''), {
      checked: chosen.has(c.id),
      onChange: (e) => {
        if (e.target.checked) chosen.add(c.id);
        else chosen.delete(c.id);
        refresh();
      },
    }),
  );
  refresh();
  const download = () => {
    const blob = new Blob([json()], { type: 'application/json' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `pb_schema_${new Date().toISOString().slice(0, 10)}.json`, class: 'sr-only' }, 'download');
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(json());
      toast('Copied.', 'ok');
    } catch {
      area.select();
      toast('Select-all done; copy with Ctrl+C.');
    }
  };
  const toggleAll = (on) => {
    all.forEach((c) => (on ? chosen.add(c.id) : chosen.delete(c.id)));
    boxes.forEach((b) => {
      b.querySelector('input').checked = on;
    });
    refresh();
  };
  return h(
    'div',
    {},
    pageHeader('Export collections', { crumbs: [{ label: 'Settings' }], actions: [button('Copy', copy), button('Download JSON', download, { kind: 'primary' })] }),
    h(
      'div',
      { class: 'card' },
      h('div', { class: 'row' }, button('Select all', () => toggleAll(true), { kind: 'ghost' }), button('Select none', () => toggleAll(false), { kind: 'ghost' })),
      h('fieldset', { class: 'export-choice' }, h('legend', {}, 'Collections to export'), boxes),
      preview,
    ),
  );
}
