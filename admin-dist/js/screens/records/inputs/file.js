// File fields: the stored files (thumbnail for images, a link, a remove/undo toggle) and the files
// chosen for upload (previewed in the page before anything is sent). PocketBase's multipart
// semantics: a single-file field is replaced by sending `field`; a multi-file field appends with
// `field+`; removals are listed under `field-`.

import { h, replace, uid } from '../../../lib/dom.js';
import { fileUrl } from '../../../lib/api.js';
import { button } from '../../../lib/ui.js';
import { asList, isImage, isMulti } from '../schema.js';
import { group, helpOf, labelOf } from './common.js';

const PREVIEW_IMAGE = /^image\/(png|jpe?g|gif|webp|avif|bmp)$/;

/** A box with the file's extension, where no thumbnail can be shown. */
function fileIcon(name) {
  const ext = /\.([a-z0-9]{1,5})$/i.exec(name || '');
  return h('span', { class: 'file-icon', 'aria-hidden': 'true' }, ext ? ext[1].toUpperCase() : 'FILE');
}

export function file(field, { record, readOnly, fileToken }) {
  const multi = isMulti(field);
  const stored = asList(record[field.name]);
  const removed = new Set();
  let pending = [];
  const previews = new Map(); // File → blob URL, revoked when the file leaves the selection

  const storedList = h('ul', { class: 'file-list' });
  const pendingList = h('ul', { class: 'file-list' });
  const inputId = uid('file');
  const picker = h('input', {
    type: 'file',
    id: inputId,
    multiple: multi,
    accept: (field.mimeTypes || []).join(',') || null,
    class: 'file-input',
    onChange: () => {
      const chosen = [...picker.files];
      picker.value = '';
      pending = multi ? [...pending, ...chosen] : chosen.slice(-1);
      drawPending();
    },
  });

  const preview = (f) => {
    if (!previews.has(f)) previews.set(f, URL.createObjectURL(f));
    return previews.get(f);
  };

  function drawStored() {
    replace(
      storedList,
      stored.map((name) => {
        const gone = removed.has(name);
        const token = field.protected ? fileToken : undefined;
        return h(
          'li',
          { class: `file-item${gone ? ' removed' : ''}`, dataset: { file: name } },
          isImage(name) ? h('img', { class: 'thumb thumb-lg', src: fileUrl(record, name, { thumb: '100x100', token }), alt: '', width: 48, height: 48 }) : fileIcon(name),
          h('a', { href: fileUrl(record, name, { token }), target: '_blank', rel: 'noopener', class: 'file-name' }, name),
          readOnly
            ? null
            : button(gone ? 'Undo' : 'Remove', () => {
                if (gone) removed.delete(name);
                else removed.add(name);
                drawStored();
              }, { kind: 'ghost', ariaLabel: `${gone ? 'Keep' : 'Remove'} ${name}` }),
        );
      }),
    );
  }

  function drawPending() {
    for (const [f, url] of previews) {
      if (!pending.includes(f)) {
        URL.revokeObjectURL(url);
        previews.delete(f);
      }
    }
    replace(
      pendingList,
      pending.map((f) =>
        h(
          'li',
          { class: 'file-item new' },
          PREVIEW_IMAGE.test(f.type) ? h('img', { class: 'thumb thumb-lg preview', src: preview(f), alt: `Preview of ${f.name}`, width: 48, height: 48 }) : fileIcon(f.name),
          h('span', { class: 'file-name' }, f.name, h('span', { class: 'muted' }, ` · new, ${Math.max(1, Math.round(f.size / 1024))} KB`)),
          button('Remove', () => {
            pending = pending.filter((p) => p !== f);
            drawPending();
          }, { kind: 'ghost', ariaLabel: `Do not upload ${f.name}` }),
        ),
      ),
    );
  }

  drawStored();
  drawPending();
  const upload = readOnly
    ? null
    : h('div', { class: 'file-upload' }, h('label', { for: inputId, class: 'btn' }, multi ? 'Choose files' : stored.length ? 'Replace file' : 'Choose file'), picker);
  const limits = [multi ? `Up to ${field.maxSelect} files.` : null, field.mimeTypes?.length ? `Types: ${field.mimeTypes.join(', ')}.` : null, field.protected ? 'Protected: links carry a short-lived file token.' : null].filter(Boolean).join(' ');
  const node = group(field.name, labelOf(field), [storedList, pendingList, upload], { help: helpOf(field, limits) });
  node.cleanup = () => previews.forEach((url) => URL.revokeObjectURL(url));
  return {
    node,
    read(out) {
      for (const f of pending) out.files.push([multi ? `${field.name}+` : field.name, f]);
      const drop = [...removed];
      if (drop.length && (multi || !pending.length)) out.json[`${field.name}-`] = drop;
    },
  };
}
