// Compact table cells per field type: thumbnails for images, names for related records, badges
// for selects, a short excerpt for text and JSON. Cells never fetch: the list passes the
// expanded relations and a file token (for protected files) it already has.

import { h } from '../../lib/dom.js';
import { fileUrl } from '../../lib/api.js';
import { formatCell } from '../../lib/ui.js';
import { asList, isImage, presentLabel } from './schema.js';

const MAX_CHIPS = 2;
const MAX_TEXT_CHARS = 80;

const none = () => h('span', { class: 'muted' }, '—');

function clip(text) {
  return text.length > MAX_TEXT_CHARS ? `${text.slice(0, MAX_TEXT_CHARS)}…` : text;
}

function chips(labels) {
  if (!labels.length) return none();
  const shown = labels.slice(0, MAX_CHIPS).map((l) => h('span', { class: 'chip', title: l }, clip(l)));
  const more = labels.length - MAX_CHIPS;
  return h('span', { class: 'chips' }, shown, more > 0 ? h('span', { class: 'muted' }, `+${more}`) : null);
}

/** The cell content for `field` of `record`; `ctx` = {collectionsById, fileToken}. */
export function cell(field, record, ctx) {
  const value = record[field.name];
  switch (field.type) {
    case 'bool':
      return value ? h('span', { class: 'badge badge-ok' }, 'true') : h('span', { class: 'muted' }, 'false');
    case 'file': {
      const names = asList(value);
      if (!names.length) return none();
      const token = field.protected ? ctx.fileToken : undefined;
      const shown = names.slice(0, MAX_CHIPS).map((name) =>
        isImage(name)
          ? h('img', { class: 'thumb', src: fileUrl(record, name, { thumb: '100x100', token }), alt: name, title: name, width: 28, height: 28, loading: 'lazy' })
          : h('span', { class: 'chip', title: name }, clip(name)),
      );
      const more = names.length - MAX_CHIPS;
      return h('span', { class: 'chips' }, shown, more > 0 ? h('span', { class: 'muted' }, `+${more}`) : null);
    }
    case 'relation': {
      const related = ctx.collectionsById.get(field.collectionId);
      const expanded = asList(record.expand?.[field.name]);
      const byId = new Map(expanded.map((r) => [r.id, r]));
      return chips(asList(value).map((id) => (byId.has(id) ? presentLabel(related, byId.get(id)) : id)));
    }
    case 'select':
      return chips(asList(value));
    case 'editor': {
      const text = String(value || '').replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
      return text ? clip(text) : none();
    }
    case 'geoPoint':
      return value ? h('code', { class: 'cell-json' }, `${value.lon}, ${value.lat}`) : none();
    case 'json':
      return value == null ? none() : h('code', { class: 'cell-json' }, clip(JSON.stringify(value)));
    default:
      return formatCell(typeof value === 'string' ? clip(value) : value);
  }
}
