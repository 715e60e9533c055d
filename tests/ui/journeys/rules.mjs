// Journey: a collection's list rule goes from null (superusers only) to "" (everyone) in the
// editor and a guest request starts listing records; back to null and the guest is refused
// again. The rule input's autocomplete is driven by keyboard, and an invalid rule's error from
// the server shows under that rule while the stored rule stays as it was.
import { api, assert, checkLabels, env, journey, shot } from '../lib.mjs';
import { dropCollections, expectFailedRequests, signInWithToken } from './collections-lib.mjs';

const NAME = 'uir_posts';

/** What a guest (no token) gets from the list endpoint: the number of items, or 0 when refused. */
async function guestSees() {
  try {
    const res = await api(`/api/collections/${NAME}/records`);
    return res.items.length;
  } catch (err) {
    assert.equal(err.status, 403, String(err));
    return 0;
  }
}

async function saveAndConfirm(page, expectKind) {
  await page.evaluate(() => document.querySelectorAll('.toast').forEach((t) => t.remove()));
  await page.locator('[data-action=save]').click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  if (expectKind) await dialog.locator(`[data-kind=${expectKind}]`).first().waitFor();
  await dialog.getByRole('button', { name: 'Apply changes' }).click();
  await dialog.waitFor({ state: 'detached' });
  // The answer: either the saved collection's editor again, or the server's errors in the form.
  await page.locator('.toast-ok, .coll-editor .form-error:not(:empty)').last().waitFor();
}

journey('rules', async ({ page, errors }) => {
  const token = await signInWithToken(page);
  await dropCollections(token, [NAME]);
  await api('/api/collections', { method: 'POST', token, body: { name: NAME, type: 'base', fields: [{ name: 'title', type: 'text' }], listRule: null } });
  await api(`/api/collections/${NAME}/records`, { method: 'POST', token, body: { title: 'visible to guests?' } });
  assert.equal(await guestSees(), 0, 'null rule: a guest sees nothing');

  await page.goto(`${env.url}/_/#/collections/${NAME}/edit`);
  await page.getByRole('heading', { name: `Edit ${NAME}` }).waitFor();
  await page.getByRole('tab', { name: 'API rules' }).click();
  const listMode = page.getByLabel('List/Search rule', { exact: true });
  assert.equal(await listMode.inputValue(), 'locked');
  await checkLabels(page, 'rules tab');

  // null → "": everyone may list.
  await listMode.selectOption('public');
  await page.locator('.rule[data-field=listRule] .rule-explain', { hasText: 'guests included' }).waitFor();
  await saveAndConfirm(page, 'rule');
  await page.getByRole('heading', { name: `Edit ${NAME}` }).waitFor();
  assert.equal((await api(`/api/collections/${NAME}`, { token })).listRule, '');
  assert.equal(await guestSees(), 1, '"" rule: a guest lists the record');

  // Autocomplete: type, move with the keyboard, accept with Enter.
  await page.getByRole('tab', { name: 'API rules' }).click();
  await page.getByLabel('List/Search rule', { exact: true }).selectOption('filter');
  const filter = page.getByLabel('List/Search rule filter');
  await filter.pressSequentially('tit');
  const options = page.locator('.rule[data-field=listRule] [role=option]');
  await options.first().waitFor();
  assert.equal(await options.first().innerText(), 'title');
  await filter.press('Enter');
  assert.equal(await filter.inputValue(), 'title');
  await filter.pressSequentially(' != "" && @request.au');
  const listRule = page.locator('.rule[data-field=listRule]');
  await listRule.getByRole('option', { name: '@request.auth.', exact: true }).waitFor();
  await filter.press('Enter'); // "@request.auth." leads on to its children
  await listRule.getByRole('option', { name: '@request.auth.id', exact: true }).waitFor();
  await shot(page, 'rules-autocomplete');
  await checkLabels(page, 'rules with suggestions open');
  const ids = await options.allInnerTexts();
  const target = ids.indexOf('@request.auth.id');
  assert.ok(target >= 0, `suggestions: ${ids}`);
  for (let i = 0; i < target; i += 1) await filter.press('ArrowDown');
  await filter.press('Enter');
  assert.equal(await filter.inputValue(), 'title != "" && @request.auth.id');
  await filter.press('Escape');

  // An invalid rule: the server's error lands under the rule; nothing is stored.
  await filter.fill('nope_field = 1');
  await saveAndConfirm(page, 'rule');
  const error = page.locator('[data-error-for=listRule]');
  await error.filter({ hasText: /nope_field/ }).waitFor();
  assert.equal(await page.getByRole('tab', { name: /API rules/ }).evaluate((el) => el.classList.contains('has-error')), true);
  expectFailedRequests(errors, 400);
  await shot(page, 'rules-invalid');
  assert.equal((await api(`/api/collections/${NAME}`, { token })).listRule, '', 'the refused rule was not stored');

  // "" → null: guests are refused again.
  await page.getByLabel('List/Search rule', { exact: true }).selectOption('locked');
  await saveAndConfirm(page, 'rule');
  await page.getByRole('heading', { name: `Edit ${NAME}` }).waitFor();
  await page.getByRole('tab', { name: 'API rules' }).click();
  assert.equal(await page.getByLabel('List/Search rule', { exact: true }).inputValue(), 'locked');
  assert.equal((await api(`/api/collections/${NAME}`, { token })).listRule, null);
  assert.equal(await guestSees(), 0, 'back to null: the guest sees nothing');
  await shot(page, 'rules-locked');
  await dropCollections(token, [NAME]);
});
