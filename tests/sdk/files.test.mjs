// File fields through the SDK: uploads with File/Blob in create and update (two at once,
// append with `field+`, remove with `field-`, replace), downloads through pb.files.getURL
// (content, Range, 304, download=1), thumbnails of a PNG, type checks on the bytes, protected
// files with pb.files.getToken(), files going away with their record, and files in batches
// (pb.createBatch(): uploads with creates and updates, all or nothing). The same file runs
// against local storage (tests/sdk.rs) and against SeaweedFS S3 (tests/files.rs).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { client, superuser, refused, fieldCodes, unique, emailFor } from './lib.mjs';

const DOCS = unique('docs');
const MEMBERS = unique('file_members');
const PASSWORD = 'member password 1';

// ---- a tiny PNG encoder (RGB, no filter), so the test needs no image package ----
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
function png(width, height) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const at = y * (width * 3 + 1) + 1 + x * 3;
      rows[at] = x % 256;
      rows[at + 1] = y % 256;
      rows[at + 2] = 128;
    }
  }
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}
const pngSize = (buf) => {
  assert.deepEqual([...buf.subarray(1, 4)], [0x50, 0x4e, 0x47], 'a PNG');
  return [buf.readUInt32BE(16), buf.readUInt32BE(20)];
};

const text = (s) => new Blob([s], { type: 'text/plain' });
// 1000 bytes whose every position is recognisable.
const KILO = Array.from({ length: 1000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');

let su, docs, member, memberPb;
const get = (url, headers = {}) => fetch(url, { headers });
const body = async (res) => Buffer.from(await res.arrayBuffer());

before(async () => {
  su = await superuser();
  const members = await su.collections.create({
    name: MEMBERS,
    type: 'auth',
    createRule: '',
    viewRule: 'id = @request.auth.id',
    fields: [],
  });
  await su.collections.create({
    name: DOCS,
    listRule: '',
    viewRule: "@request.auth.id != '' || secret = ''",
    createRule: '',
    updateRule: '',
    deleteRule: '',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'docs', type: 'file', maxSelect: 5, maxSize: 1024 * 1024 },
      { name: 'image', type: 'file', maxSelect: 1, mimeTypes: ['image/png', 'image/jpeg'], thumbs: ['50x30', '40x0'] },
      { name: 'secret', type: 'file', maxSelect: 1, protected: true },
      { name: 'owner', type: 'relation', collectionId: members.id, maxSelect: 1 },
    ],
  });
  docs = client().collection(DOCS);
  const email = emailFor('filer');
  await client().collection(MEMBERS).create({ email, password: PASSWORD, passwordConfirm: PASSWORD });
  memberPb = client();
  member = (await memberPb.collection(MEMBERS).authWithPassword(email, PASSWORD)).record;
});

test('create with two files, append, remove one, replace', async () => {
  const rec = await docs.create({ title: 'two', docs: [new File(['first'], 'Alpha File.txt'), new File(['second'], 'bravo.txt')] });
  assert.equal(rec.docs.length, 2);
  assert.match(rec.docs[0], /^alpha_file_[a-z0-9]{10}\.txt$/);
  assert.match(rec.docs[1], /^bravo_[a-z0-9]{10}\.txt$/);
  const url = (r, name, opts) => client().files.getURL(r, name, opts);
  assert.equal(await (await get(url(rec, rec.docs[0]))).text(), 'first');
  assert.equal(await (await get(url(rec, rec.docs[1]))).text(), 'second');

  const appended = await docs.update(rec.id, { 'docs+': new File(['third'], 'charlie.txt') });
  assert.equal(appended.docs.length, 3);
  assert.deepEqual(appended.docs.slice(0, 2), rec.docs);
  assert.match(appended.docs[2], /^charlie_[a-z0-9]{10}\.txt$/);

  const removed = await docs.update(rec.id, { 'docs-': [rec.docs[0]] });
  assert.deepEqual(removed.docs, appended.docs.slice(1));
  assert.equal((await get(url(rec, rec.docs[0]))).status, 404, 'a removed file is deleted after the commit');
  assert.equal(await (await get(url(rec, rec.docs[1]))).text(), 'second', 'the others stay');

  const replaced = await docs.update(rec.id, { docs: new File(['fourth'], 'delta.txt') });
  assert.equal(replaced.docs.length, 1);
  assert.match(replaced.docs[0], /^delta_[a-z0-9]{10}\.txt$/);
  for (const old of removed.docs) {
    assert.equal((await get(url(rec, old))).status, 404, `${old} was replaced`);
  }
  assert.equal(await (await get(url(replaced, replaced.docs[0]))).text(), 'fourth');

  // A name the record does not hold is refused, so a client cannot adopt another's file.
  const err = await refused(docs.update(rec.id, { docs: ['someone_elses_0123456789.txt'] }), 400);
  assert.equal(fieldCodes(err).docs, 'validation_invalid_file');
});

test('batch: a create with two files and an update appending one', async () => {
  await su.settings.update({ batch: { enabled: true } });
  const rec = await docs.create({ title: 'batch base', docs: [new File(['base'], 'base.txt')] });
  const batch = client().createBatch();
  batch.collection(DOCS).create({ title: 'batched', docs: [new File(['one'], 'One.txt'), new File(['two'], 'two.txt')] });
  batch.collection(DOCS).update(rec.id, { 'docs+': new File(['three'], 'three.txt') });
  const [created, updated] = await batch.send();
  assert.equal(created.status, 200);
  assert.equal(created.body.title, 'batched');
  assert.equal(created.body.docs.length, 2);
  // PocketBase names batch uploads twice: `One.txt` → `one_<rand>_<rand>.txt`.
  assert.match(created.body.docs[0], /^one_[a-z0-9]{10}_[a-z0-9]{10}\.txt$/);
  assert.match(created.body.docs[1], /^two_[a-z0-9]{10}_[a-z0-9]{10}\.txt$/);
  const url = (r, name) => client().files.getURL(r, name);
  assert.equal(await (await get(url(created.body, created.body.docs[0]))).text(), 'one');
  assert.equal(await (await get(url(created.body, created.body.docs[1]))).text(), 'two');
  assert.equal(updated.status, 200);
  assert.equal(updated.body.docs.length, 2);
  assert.equal(updated.body.docs[0], rec.docs[0], 'appended, the old file kept');
  assert.match(updated.body.docs[1], /^three_[a-z0-9]{10}_[a-z0-9]{10}\.txt$/);
  assert.equal(await (await get(url(rec, rec.docs[0]))).text(), 'base');
  assert.equal(await (await get(url(rec, updated.body.docs[1]))).text(), 'three');
});

test('batch: a failing last request stores nothing and deletes nothing', async () => {
  await su.settings.update({ batch: { enabled: true } });
  const rec = await docs.create({ title: 'batch keeper', docs: [new File(['keep'], 'keep.txt')] });
  const doomed = unique('doomed');
  const batch = client().createBatch();
  batch.collection(DOCS).update(rec.id, { docs: new File(['replacement'], 'replacement.txt') });
  batch.collection(DOCS).create({ title: doomed, docs: [new File(['x'], 'x.txt')] });
  batch.collection(DOCS).update('nosuchrecord12', { 'docs+': new File(['y'], 'y.txt') });
  const err = await refused(batch.send(), 400);
  assert.equal(err.response.message, 'Batch transaction failed.');
  assert.equal(err.response.data.requests['2'].response.status, 404);
  const after = await docs.getOne(rec.id);
  assert.deepEqual(after.docs, rec.docs, 'the replacement rolled back');
  assert.equal(await (await get(client().files.getURL(rec, rec.docs[0]))).text(), 'keep', 'the old file is still there');
  assert.equal((await docs.getList(1, 1, { filter: `title = "${doomed}"` })).totalItems, 0);

  // The bytes are checked as for a single request, and fail the batch at their item.
  const typed = client().createBatch();
  typed.collection(DOCS).create({ title: doomed });
  typed.collection(DOCS).create({ title: doomed, image: new File(['not a picture'], 'fake.png', { type: 'image/png' }) });
  const bad = await refused(typed.send(), 400);
  assert.equal(bad.response.data.requests['1'].response.data.image.code, 'validation_invalid_mime_type');
  assert.equal((await docs.getList(1, 1, { filter: `title = "${doomed}"` })).totalItems, 0);
});

test('download: headers, Range 0-99 gives 206 with 100 bytes, 304, 416', async () => {
  const rec = await docs.create({ docs: [new File([KILO], 'kilo.txt')] });
  const url = client().files.getURL(rec, rec.docs[0]);
  const full = await get(url);
  assert.equal(full.status, 200);
  assert.equal(full.headers.get('content-type'), 'text/plain; charset=utf-8');
  assert.equal(full.headers.get('content-length'), '1000');
  assert.equal(full.headers.get('accept-ranges'), 'bytes');
  assert.match(full.headers.get('content-disposition'), /^attachment; filename="kilo_[a-z0-9]{10}\.txt"$/);
  assert.equal(await full.text(), KILO);

  const part = await get(url, { Range: 'bytes=0-99' });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), 'bytes 0-99/1000');
  const bytes = await body(part);
  assert.equal(bytes.length, 100);
  assert.equal(bytes.toString(), KILO.slice(0, 100));
  const tail = await get(url, { Range: 'bytes=-10' });
  assert.equal(tail.status, 206);
  assert.equal(await tail.text(), KILO.slice(990));
  const beyond = await get(url, { Range: 'bytes=5000-' });
  assert.equal(beyond.status, 416);
  assert.equal(beyond.headers.get('content-range'), 'bytes */1000');
  await beyond.arrayBuffer();

  const etag = full.headers.get('etag');
  assert.ok(etag, 'an ETag');
  const again = await get(url, { 'If-None-Match': etag });
  assert.equal(again.status, 304);
  const since = await get(url, { 'If-Modified-Since': full.headers.get('last-modified') });
  assert.equal(since.status, 304);
  assert.match(full.headers.get('cache-control'), /max-age=\d+/);

  assert.equal((await get(url.replace(rec.id, 'x'.repeat(15)))).status, 404, 'another record id');
  const traversal = `${client().baseURL}/api/files/${DOCS}/${rec.id}/..%2F..%2Fdata.db`;
  assert.equal((await get(traversal)).status, 404);
  assert.equal((await get(`${client().baseURL}/api/files/nope/${rec.id}/${rec.docs[0]}`)).status, 404);
});

test('a PNG gets thumbnails of the asked sizes; other sizes serve the original; download=1 makes it an attachment', async () => {
  const rec = await docs.create({ image: new File([png(300, 200)], 'Picture.png') });
  assert.match(rec.image, /^picture_[a-z0-9]{10}\.png$/);
  const thumb = async (size) => {
    const res = await get(client().files.getURL(rec, rec.image, { thumb: size }));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    return pngSize(await body(res));
  };
  assert.deepEqual(await thumb('50x30'), [50, 30]);
  assert.deepEqual(await thumb('100x100'), [100, 100], '100x100 is always allowed');
  assert.deepEqual(await thumb('40x0'), [40, 27], 'Wx0 keeps the aspect ratio');
  assert.deepEqual(await thumb('50x30'), [50, 30], 'the cached thumbnail');
  assert.deepEqual(await thumb('70x70'), [300, 200], 'a size the field does not list');
  const original = await get(client().files.getURL(rec, rec.image));
  assert.match(original.headers.get('content-disposition'), /^inline; filename="picture_/);
  assert.deepEqual(pngSize(await body(original)), [300, 200]);
  // download=1 turns the inline image into an attachment, same name and bytes.
  const dl = await get(client().files.getURL(rec, rec.image, { download: true }));
  assert.equal(dl.status, 200);
  assert.equal(dl.headers.get('content-disposition'), `attachment; filename="${rec.image}"`);
  assert.deepEqual(pngSize(await body(dl)), [300, 200]);
});

test('mimeTypes and maxSize are checked against the bytes', async () => {
  const fake = new File(['this is text, not a picture'], 'fake.png', { type: 'image/png' });
  const err = await refused(docs.create({ image: fake }), 400);
  assert.equal(fieldCodes(err).image, 'validation_invalid_mime_type');
  const big = new File([Buffer.alloc(1024 * 1024 + 1, 1)], 'big.bin');
  const tooBig = await refused(docs.create({ docs: [big] }), 400);
  assert.equal(fieldCodes(tooBig).docs, 'validation_file_size_limit');
  const many = Array.from({ length: 6 }, (_, i) => new File([`n${i}`], `n${i}.txt`));
  const tooMany = await refused(docs.create({ docs: many }), 400);
  assert.equal(fieldCodes(tooMany).docs, 'validation_too_many_files');
});

test('a protected file: 404 without a token, 200 with a file token', async () => {
  const rec = await su.collection(DOCS).create({ secret: new File(['top secret'], 'secret.txt') });
  const guestUrl = client().files.getURL(rec, rec.secret);
  assert.equal((await get(guestUrl)).status, 404);
  await refused(client().files.getToken(), 401);
  const token = await memberPb.files.getToken();
  assert.equal(typeof token, 'string');
  const withToken = await get(memberPb.files.getURL(rec, rec.secret, { token }));
  assert.equal(withToken.status, 200);
  assert.equal(await withToken.text(), 'top secret');
  assert.match(withToken.headers.get('cache-control'), /no-store/);
  assert.equal((await get(memberPb.files.getURL(rec, rec.secret, { token: token + 'x' }))).status, 404, 'a forged token');
  // An auth token is not a file token.
  assert.equal((await get(memberPb.files.getURL(rec, rec.secret, { token: memberPb.authStore.token }))).status, 404);
  const suToken = await su.files.getToken();
  assert.equal((await get(su.files.getURL(rec, rec.secret, { token: suToken }))).status, 200);
  assert.ok(member.id);
});

test('deleting a record deletes its files', async () => {
  const rec = await docs.create({ docs: [new File(['gone soon'], 'gone.txt')], image: new File([png(20, 20)], 'p.png') });
  const urls = [client().files.getURL(rec, rec.docs[0]), client().files.getURL(rec, rec.image, { thumb: '100x100' })];
  for (const u of urls) assert.equal((await get(u)).status, 200);
  await docs.delete(rec.id);
  for (const u of urls) assert.equal((await get(u)).status, 404);
});

test('settings: testS3 checks the configured bucket; the secret is never returned', async () => {
  const settings = await su.settings.getAll();
  assert.equal(settings.s3.secret ?? '', '', 'no secret in settings');
  if (process.env.VB_S3 === '1') {
    // tests/files.rs enabled SeaweedFS before this run.
    assert.equal(settings.s3.enabled, true);
    assert.equal(await su.settings.testS3('storage'), true);
  } else {
    assert.equal(settings.s3.enabled, false);
    const err = await refused(su.settings.testS3('storage'), 400);
    assert.equal(err.response.message, 'S3 storage filesystem is not enabled.');
  }
  await refused(memberPb.settings.testS3('storage'), 403);
});
