// The API client: one `send` over fetch, the superuser's auth kept in localStorage, and the
// PocketBase error envelope turned into ApiError {status, message, data} so forms can show each
// field's error next to its input. The dashboard uses only the public API, as any SDK does.

const AUTH_KEY = 'vb_admin_auth';
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || (status ? `Request failed (${status}).` : 'Cannot reach the server.'));
    this.status = status;
    this.data = (body && typeof body.data === 'object' && body.data) || {};
    this.body = body;
  }
}

function decodeJwt(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')));
  } catch {
    return null;
  }
}

export const auth = {
  get state() {
    try {
      return JSON.parse(localStorage.getItem(AUTH_KEY)) || null;
    } catch {
      return null;
    }
  },
  get token() {
    return this.state?.token || '';
  },
  get record() {
    return this.state?.record || null;
  },
  /** True while a superuser token is stored and not expired. */
  get valid() {
    const claims = this.token && decodeJwt(this.token);
    return Boolean(claims && claims.exp * 1000 > Date.now());
  },
  save(token, record) {
    localStorage.setItem(AUTH_KEY, JSON.stringify({ token, record }));
    listeners.forEach((fn) => fn());
  },
  clear() {
    localStorage.removeItem(AUTH_KEY);
    listeners.forEach((fn) => fn());
  },
  onChange(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  decode: decodeJwt,
};

/** Builds "path?k=v" leaving out empty values. */
export function withQuery(path, query) {
  if (!query) return path;
  const qs = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') qs.set(key, String(value));
  }
  const text = qs.toString();
  return text ? `${path}${path.includes('?') ? '&' : '?'}${text}` : path;
}

/**
 * send('/api/collections', {method: 'POST', body: {...}}) → parsed JSON (null for 204).
 * body: a plain object (sent as JSON), FormData (multipart) or a string/Blob as is.
 * raw: true returns the Response (downloads).
 */
export async function send(path, { method = 'GET', query, body, headers = {}, signal, raw = false } = {}) {
  const h = { ...headers };
  if (auth.token && !('Authorization' in h)) h.Authorization = auth.token;
  let payload = body;
  if (body != null && !(body instanceof FormData) && !(body instanceof Blob) && typeof body !== 'string') {
    h['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(withQuery(path, query), { method, headers: h, body: payload, signal });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, null);
  }
  if (raw && res.ok) return res;
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  const data = type.includes('json') ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) {
    // An expired or revoked superuser token: back to sign-in, keeping where the user was.
    if (res.status === 401 && auth.token && !auth.valid) auth.clear();
    throw new ApiError(res.status, typeof data === 'object' ? data : { message: data });
  }
  return data;
}

/** Every page of a list endpoint, for small system lists (collections, backups…). */
export async function fullList(path, query = {}) {
  const items = [];
  for (let page = 1; ; page += 1) {
    const res = await send(path, { query: { ...query, page, perPage: 500, skipTotal: 1 } });
    items.push(...res.items);
    if (res.items.length < 500) return items;
  }
}

/** URL of a stored file; `token` is a file token for protected files. */
export function fileUrl(record, filename, { thumb, token, download } = {}) {
  const path = `/api/files/${encodeURIComponent(record.collectionId)}/${encodeURIComponent(record.id)}/${encodeURIComponent(filename)}`;
  return withQuery(path, { thumb, token, download: download ? 1 : undefined });
}

let collectionsCache = null;
/** The collections list, cached until `invalidateCollections()` (after any schema change). */
export function collections({ force = false } = {}) {
  if (force || !collectionsCache) {
    collectionsCache = fullList('/api/collections', { sort: 'name' }).catch((err) => {
      collectionsCache = null;
      throw err;
    });
  }
  return collectionsCache;
}
export function invalidateCollections() {
  collectionsCache = null;
}
