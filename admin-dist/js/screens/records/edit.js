// Create or edit one record (routes /collections/:id/records/new and …/records/:recordId): an
// input per field type, the API's errors next to each input, multipart only when files are
// uploaded (files as parts, everything else in PocketBase's `@jsonPayload`), delete, and
// impersonate for auth records. View collections open read-only.

import { h } from '../../lib/dom.js';
import { collections, send } from '../../lib/api.js';
import { navigate } from '../../lib/router.js';
import { button, clearErrors, confirmDialog, field as fieldBox, formError, pageHeader, showErrors, toast } from '../../lib/ui.js';
import { collectionsSidebar } from '../collections/sidebar.js';
import { listPath } from './back.js';
import { impersonateDialog } from './impersonate.js';
import { inputFor } from './inputs/index.js';
import { asList, findCollection, relationNames } from './schema.js';

/** The fields as inputs, in schema order except that an auth record's password follows its
 * email/emailVisibility/verified block, as people expect. */
function formOrder(collection) {
  const fields = collection.fields.filter((f) => f.name !== 'id' && !(f.system && f.name === 'tokenKey'));
  if (collection.type !== 'auth') return fields;
  const pass = fields.filter((f) => f.system && f.type === 'password');
  const rest = fields.filter((f) => !pass.includes(f));
  const at = rest.findIndex((f) => f.system && f.name === 'verified') + 1;
  return at > 0 ? [...rest.slice(0, at), ...pass, ...rest.slice(at)] : fields;
}

function page(params, ...content) {
  return h('div', { class: 'page split records-page' }, collectionsSidebar(params.id), h('section', { class: 'record-edit' }, content));
}

function notFound(params, what) {
  return page(params, h('h1', {}, `${what} not found`), h('p', {}, h('a', { href: `#${listPath(params.id)}` }, 'Back to the records')));
}

export default async function screen({ params }) {
  const collection = await findCollection(params.id);
  if (!collection) return notFound(params, 'Collection');
  const collectionsById = new Map((await collections()).map((c) => [c.id, c]));
  const isNew = !params.recordId;
  const readOnly = collection.type === 'view';
  const base = `/api/collections/${encodeURIComponent(collection.id)}/records`;
  const back = () => navigate(listPath(params.id));

  let record = { collectionId: collection.id, collectionName: collection.name };
  if (!isNew) {
    try {
      record = await send(`${base}/${encodeURIComponent(params.recordId)}`, { query: { expand: relationNames(collection).join(',') } });
    } catch (err) {
      if (err.status === 404) return notFound(params, 'Record');
      throw err;
    }
  }
  const needsToken = collection.fields.some((f) => f.type === 'file' && f.protected && asList(record[f.name]).length);
  const fileToken = needsToken ? await send('/api/files/token', { method: 'POST' }).then((r) => r.token, () => '') : '';
  const ctx = { record, collection, isNew, readOnly, fileToken, collectionsById };

  const idInput = h('input', { type: 'text', readOnly: !isNew, autocomplete: 'off', placeholder: isNew ? 'Leave empty to generate' : null });
  idInput.value = isNew ? '' : record.id;
  const inputs = formOrder(collection).map((f) => inputFor(f, ctx));

  const save = readOnly ? null : button(isNew ? 'Create' : 'Save changes', null, { type: 'submit', kind: 'primary', attrs: { 'data-action': 'save' } });
  const form = h(
    'form',
    { class: 'card record-form', novalidate: true, onSubmit: (e) => submit(e) },
    fieldBox({ label: 'id', name: 'id', input: idInput, help: isNew ? '15 characters a–z and 0–9; generated when left empty.' : undefined }),
    inputs.map((i) => i.node),
    formError(),
    h('div', { class: 'form-actions' }, button(readOnly ? 'Back' : 'Cancel', back, { kind: 'ghost' }), save),
  );

  const focusFirstError = () => form.querySelector('[aria-invalid="true"]')?.focus();

  async function submit(e) {
    e.preventDefault();
    if (readOnly) return;
    clearErrors(form);
    const problems = Object.assign({}, ...inputs.map((i) => (i.check ? i.check() : null) || {}));
    if (Object.keys(problems).length) {
      const data = Object.fromEntries(Object.entries(problems).map(([k, message]) => [k, { code: 'client', message }]));
      showErrors(form, { message: 'Fix the marked fields first.', data });
      focusFirstError();
      return;
    }
    const out = { json: {}, files: [] };
    inputs.forEach((i) => i.read(out));
    if (isNew && idInput.value.trim()) out.json.id = idInput.value.trim();
    let body = out.json;
    if (out.files.length) {
      body = new FormData();
      body.append('@jsonPayload', JSON.stringify(out.json));
      for (const [key, file] of out.files) body.append(key, file, file.name);
    }
    save.disabled = true;
    try {
      await send(isNew ? base : `${base}/${encodeURIComponent(record.id)}`, { method: isNew ? 'POST' : 'PATCH', body });
      toast(isNew ? 'Record created.' : 'Record saved.', 'ok');
      back();
    } catch (err) {
      showErrors(form, err);
      focusFirstError();
    } finally {
      save.disabled = false;
    }
  }

  async function remove() {
    const ok = await confirmDialog(`Delete record ${record.id} of ${collection.name}? This cannot be undone.`, { title: 'Delete record', danger: true, confirmLabel: 'Delete' });
    if (!ok) return;
    try {
      await send(`${base}/${encodeURIComponent(record.id)}`, { method: 'DELETE' });
      toast('Record deleted.', 'ok');
      back();
    } catch (err) {
      showErrors(form, err);
    }
  }

  const actions = isNew || readOnly
    ? []
    : [
        collection.type === 'auth' ? button('Impersonate', () => impersonateDialog(collection, record), { attrs: { 'data-action': 'impersonate' } }) : null,
        button('Delete', remove, { kind: 'danger', attrs: { 'data-action': 'delete' } }),
      ];
  const title = isNew ? `New ${collection.name} record` : readOnly ? `${collection.name} record` : `Edit ${collection.name} record`;
  const node = page(params, pageHeader(title, { crumbs: [{ label: 'Collections', href: '#/collections' }, { label: collection.name, href: `#${listPath(params.id)}` }], actions }), form);
  node.cleanup = () => inputs.forEach((i) => i.node?.cleanup?.());
  return node;
}
