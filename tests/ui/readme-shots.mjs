// Takes the README's dashboard screenshots (docs/screenshots/*.png) from a running server with
// a superuser: seeds a small blog through the API, then photographs the records table, the
// collection editor and the logs page. Not a journey (tests/ui.rs does not run it):
//   VB_URL=http://127.0.0.1:8091 VB_EMAIL=… VB_PASSWORD=… node tests/ui/readme-shots.mjs
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, launch, superuserToken } from './lib.mjs';
import { openSignedIn } from './ops.mjs';

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'screenshots');
const token = await superuserToken();
const authors = await api('/api/collections', {
  method: 'POST',
  token,
  body: { name: 'authors', type: 'base', listRule: '', viewRule: '', fields: [{ name: 'name', type: 'text', required: true, presentable: true }] },
});
await api('/api/collections', {
  method: 'POST',
  token,
  body: {
    name: 'posts',
    type: 'base',
    listRule: '',
    viewRule: '',
    fields: [
      { name: 'title', type: 'text', required: true },
      { name: 'author', type: 'relation', collectionId: authors.id, maxSelect: 1 },
      { name: 'published', type: 'bool' },
      { name: 'views', type: 'number' },
      { name: 'created', type: 'autodate', onCreate: true },
    ],
  },
});
const names = ['Ada Lovelace', 'Grace Hopper', 'Edsger Dijkstra'];
const ids = [];
for (const name of names) ids.push((await api('/api/collections/authors/records', { method: 'POST', token, body: { name } })).id);
const titles = ['Notes on the Analytical Engine', 'Compilers for everyone', 'Go To considered harmful', 'A case against the GOTO statement', 'Structured programming', 'The humble programmer', 'Nanoseconds explained', 'On the cruelty of teaching computing'];
for (const [i, title] of titles.entries()) {
  await api('/api/collections/posts/records', { method: 'POST', token, body: { title, author: ids[i % ids.length], published: i % 3 !== 0, views: 100 * (i + 1) + 7 } });
}
const b = await launch({ width: 1280, height: 720 });
try {
  await openSignedIn(b.page, '/collections/posts');
  await b.page.getByText('Notes on the Analytical Engine').waitFor();
  await b.page.screenshot({ path: path.join(out, 'records.png') });
  await b.page.goto(`${process.env.VB_URL}/_/#/collections/posts/edit`);
  await b.page.getByRole('tab', { name: 'Fields' }).waitFor();
  await b.page.screenshot({ path: path.join(out, 'collection-editor.png') });
  await b.page.emulateMedia({ colorScheme: 'dark' });
  await b.page.goto(`${process.env.VB_URL}/_/#/logs`);
  await b.page.locator('svg').first().waitFor();
  await b.page.screenshot({ path: path.join(out, 'logs-dark.png') });
} finally {
  await b.close();
}
console.log(`screenshots in ${out}`);
