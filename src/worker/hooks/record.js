// PocketBase's `Record` for hooks: a JS object over the record's field values (API values:
// dates as text, json as values, multi-values as arrays) and its Collection. Evaluated once
// per runtime after prelude.js and collection.js. It owns the Go-shaped reads (`get` gives a
// DateTime for dates and a JSONRaw byte array for json), the `set` modifiers, visibility, and
// the API JSON a record serializes to. It never touches the database itself: saving, loading
// and tokens are `$app` calls and `__native.data` operations.
(function (g) {
  "use strict";
  const N = g.__native;
  const vb = g.__vb;

  const SECRET = new Set(["password", "tokenKey"]);
  const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

  function fieldOf(rec, name) {
    const c = rec.__s.c;
    return c && c.fields ? c.fields.getByName(name) : null;
  }
  function multiple(f) {
    return f && (f.type === "select" || f.type === "relation" || f.type === "file") && Number(f.maxSelect) > 1;
  }

  // Go's types.JSONRaw as goja shows it: a byte array whose String() is the JSON text.
  function jsonRaw(value) {
    const text = value === undefined ? "null" : JSON.stringify(value);
    const out = vb.bytes(N.utf8Encode(text));
    Object.defineProperty(out, "toString", { value: () => text, enumerable: false });
    Object.defineProperty(out, "__json", { value: true, enumerable: false });
    return out;
  }
  vb.jsonRaw = jsonRaw;

  function toList(v) {
    if (v === null || v === undefined || v === "") return [];
    if (Array.isArray(v)) return v.map((x) => String(x)).filter((x) => x !== "");
    return [String(v)];
  }

  // A value as the field stores it (the shape the API answers).
  function normalize(f, v) {
    if (!f) return v instanceof g.DateTime ? v.string() : v;
    switch (f.type) {
      case "number": {
        const n = Number(v);
        return Number.isFinite(n) ? n : 0;
      }
      case "bool":
        return v === true || v === 1 || v === "true" || v === "1" || v === "on";
      case "date":
      case "autodate":
        if (v === null || v === undefined || v === "") return "";
        if (v instanceof g.DateTime) return v.string();
        if (v instanceof Date) return new g.DateTime(v.getTime()).string();
        return new g.DateTime(v).string();
      case "json":
        if (v !== null && v !== undefined && v.__json === true) return JSON.parse(String(v));
        if (vb.isBytes(v)) { try { return JSON.parse(toString(v)); } catch (_) { return toString(v); } }
        return v === undefined ? null : v;
      case "select":
      case "relation":
      case "file": {
        const list = toList(v);
        return multiple(f) ? list : (list.length ? list[list.length - 1] : "");
      }
      case "geoPoint":
        return v && typeof v === "object" ? { lon: Number(v.lon) || 0, lat: Number(v.lat) || 0 } : { lon: 0, lat: 0 };
      default:
        if (v === null || v === undefined) return "";
        if (v instanceof g.DateTime) return v.string();
        return typeof v === "object" ? JSON.stringify(v) : String(v);
    }
  }

  // The zero value of a field a new record does not set.
  function zero(f) {
    switch (f.type) {
      case "number": return 0;
      case "bool": return false;
      case "json": return null;
      case "geoPoint": return { lon: 0, lat: 0 };
      default: return multiple(f) ? [] : "";
    }
  }

  function copy(v) {
    return v === null || typeof v !== "object" ? v : JSON.parse(JSON.stringify(v));
  }
  // copy() of a record's values, a JSON round trip per object value only: most values are
  // primitives, and a round trip of the whole object was most of reading a record. The
  // same result: undefined, functions and symbols drop out, non-finite numbers become null,
  // -0 becomes 0.
  function copyData(d) {
    if (d === null || typeof d !== "object" || Array.isArray(d) || typeof d.toJSON === "function") return copy(d);
    const out = {};
    const keys = Object.keys(d);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      const v = d[k];
      switch (typeof v) {
        case "string":
        case "boolean":
          out[k] = v;
          break;
        case "number":
          out[k] = Number.isFinite(v) ? (v === 0 ? 0 : v) : null;
          break;
        case "undefined":
        case "function":
        case "symbol":
          break;
        default: {
          // An own "__proto__" (JSON.parse makes one) cannot be assigned.
          if (k === "__proto__") return copy(d);
          const t = v === null ? "null" : JSON.stringify(v);
          if (t !== undefined) out[k] = JSON.parse(t);
        }
      }
    }
    return out;
  }

  // Fields are not properties (PocketBase: `record.title` is null, not undefined). A read that
  // finds nothing on the record or its class reaches this proxy, which ends Record's prototype
  // chain in place of Object.prototype: the record's own state and its methods are plain
  // property reads (a Proxy around each record ran a trap for every one of them).
  const MISSING = new Proxy(Object.prototype, {
    get(target, key, receiver) {
      if (typeof key === "symbol" || key in target) return Reflect.get(target, key, receiver);
      return key === "then" ? undefined : null;
    },
  });

  // A record's state, in one non-enumerable own property: defining each member on every
  // record took nine defineProperty calls, most of a record's cost. The members keep their
  // old names as accessors (below) for the other modules; hide/show Sets are made on first use.
  function state(c, d) {
    return { c, d, o: {}, isNew: true, x: {}, hide: null, show: null, custom: false, plain: null };
  }
  // A record of `c` over `d` as it is (no zero values): for callers that replace the data.
  function bare(c, d) {
    const r = Object.create(Record.prototype);
    Object.defineProperty(r, "__s", { value: state(c, d) });
    return r;
  }
  function inSet(set, n) { return set !== null && set.has(n); }

  class Record {
    constructor(collection, data) {
      const c = collection === undefined || collection === null ? null : vb.makeCollection(collection);
      const d = {};
      if (c) for (const f of c.fields) d[f.name] = zero(f);
      Object.defineProperty(this, "__s", { value: state(c, d) });
      if (data && typeof data === "object") this.load(data);
    }

    // The collection, the values, the record as loaded (PocketBase's original(): not
    // refreshed by a save), whether it is yet to be inserted, the expand, the visibility
    // overrides, withCustomData and a password just set in plain text.
    get __c() { return this.__s.c; }
    set __c(v) { this.__s.c = v; }
    get __d() { return this.__s.d; }
    set __d(v) { this.__s.d = v; }
    get __o() { return this.__s.o; }
    set __o(v) { this.__s.o = v; }
    get __new() { return this.__s.isNew; }
    set __new(v) { this.__s.isNew = v; }
    get __x() { return this.__s.x; }
    set __x(v) { this.__s.x = v; }
    get __hide() { const s = this.__s; if (s.hide === null) s.hide = new Set(); return s.hide; }
    set __hide(v) { this.__s.hide = v; }
    get __show() { const s = this.__s; if (s.show === null) s.show = new Set(); return s.show; }
    set __show(v) { this.__s.show = v; }
    get __custom() { return this.__s.custom; }
    set __custom(v) { this.__s.custom = v; }
    get __plain() { return this.__s.plain; }
    set __plain(v) { this.__s.plain = v; }

    get id() { const id = this.__s.d.id; return id === undefined || id === null ? "" : String(id); }
    set id(v) { this.__s.d.id = String(v ?? ""); }

    collection() { return this.__s.c; }
    tableName() { return this.__s.c ? this.__s.c.name : ""; }
    isNew() { return this.__s.isNew; }
    markAsNew() { this.__s.isNew = true; }
    markAsNotNew() { this.__s.isNew = false; }
    pk() { return this.id; }
    lastSavedPK() { return this.__s.isNew ? "" : this.id; }

    get(name) {
      name = String(name);
      if (name === "expand") return this.expand();
      const f = fieldOf(this, name);
      const v = this.__s.d[name];
      if (!f) return v === undefined ? null : v;
      if (f.type === "date" || f.type === "autodate") return new g.DateTime(v === undefined || v === "" ? "" : v);
      if (f.type === "json") return jsonRaw(v === undefined ? null : v);
      // The stored hash never shows (PocketBase answers ""); a password just set does.
      if (f.type === "password") return this.__s.plain === null ? "" : this.__s.plain;
      if (v === undefined) return null;
      return Array.isArray(v) ? v.slice() : v;
    }
    getRaw(name) { const v = this.__s.d[String(name)]; return v === undefined ? null : v; }
    getString(name) {
      const f = fieldOf(this, name);
      const v = this.__s.d[name];
      if (v === null || v === undefined) return "";
      if (f && f.type === "password") return this.__s.plain === null ? "" : this.__s.plain;
      if (f && f.type === "json") return JSON.stringify(v);
      if (Array.isArray(v)) return JSON.stringify(v);
      if (typeof v === "object") return JSON.stringify(v);
      return String(v);
    }
    getInt(name) { const n = Number(this.__s.d[name]); return Number.isFinite(n) ? Math.trunc(n) : 0; }
    getFloat(name) { const n = Number(this.__s.d[name]); return Number.isFinite(n) ? n : 0; }
    getBool(name) { const v = this.__s.d[name]; return v === true || v === 1 || v === "true" || v === "1"; }
    getDateTime(name) { const v = this.__s.d[name]; return new g.DateTime(v === undefined || v === null ? "" : v); }
    getStringSlice(name) { return toList(this.__s.d[name]); }
    getGeoPoint(name) { return this.__s.d[name] || { lon: 0, lat: 0 }; }
    getUnsavedFiles() { return []; }

    set(key, value) {
      key = String(key);
      if (key === "expand") { this.setExpand(value); return; }
      const d = this.__s.d;
      let mode = "";
      let name = key;
      // Character codes first: most keys are plain names, and four string searches per key
      // were a good part of a load.
      const first = key.charCodeAt(0);
      const last = key.charCodeAt(key.length - 1);
      if (last === 101 /* e */ && key.endsWith(":autogenerate")) {
        name = key.slice(0, -13);
        const f = fieldOf(this, name);
        if (f && f.type === "text" && f.autogeneratePattern) d[name] = N.randomString(15, "abcdefghijklmnopqrstuvwxyz0123456789");
        return;
      }
      if (first === 43 /* + */) { mode = "prepend"; name = key.slice(1); }
      else if (last === 43 /* + */) { mode = "append"; name = key.slice(0, -1); }
      else if (last === 45 /* - */) { mode = "subtract"; name = key.slice(0, -1); }
      const f = fieldOf(this, name);
      if (name === "password" && f && f.type === "password") { this.setPassword(value); return; }
      if (!mode) { d[name] = normalize(f, value); return; }
      const cur = d[name];
      if (f && f.type === "number") {
        const n = Number(value) || 0;
        d[name] = (Number(cur) || 0) + (mode === "subtract" ? -n : n);
        return;
      }
      const list = toList(cur);
      const add = toList(value);
      let next;
      if (mode === "append") next = list.concat(add);
      else if (mode === "prepend") next = add.concat(list);
      else next = list.filter((x) => !add.includes(x));
      d[name] = f ? normalize(f, multiple(f) ? Array.from(new Set(next)) : next) : next;
    }
    load(data) {
      for (const k of Object.keys(data || {})) this.set(k, data[k]);
    }
    // Replaces the values with what the store answered (no modifiers, no normalising).
    __fill(data) {
      const s = this.__s;
      for (const k of Object.keys(data || {})) {
        if (k === "collectionId" || k === "collectionName") continue;
        if (k === "expand") { s.x = data.expand || {}; continue; }
        s.d[k] = data[k];
      }
    }

    original() {
      const r = new Record(this.__s.c);
      r.__fill(copy(this.__s.o));
      r.__o = copy(this.__s.o);
      r.__new = this.__s.isNew;
      return r;
    }
    fresh() {
      const r = new Record(this.__s.c);
      if (this.__s.c) for (const f of this.__s.c.fields) if (f.name in this.__s.d) r.__d[f.name] = copy(this.__s.d[f.name]);
      r.__o = copy(this.__s.o);
      r.__new = this.__s.isNew;
      return r;
    }
    clone() {
      const s = this.__s;
      const r = bare(s.c, copyData(s.d));
      const t = r.__s;
      t.o = copyData(s.o);
      t.isNew = s.isNew;
      t.x = Object.assign({}, s.x);
      if (s.hide !== null) t.hide = new Set(s.hide);
      if (s.show !== null) t.show = new Set(s.show);
      t.custom = s.custom;
      t.plain = s.plain;
      return r;
    }
    fieldsData() {
      const out = {};
      if (this.__s.c) for (const f of this.__s.c.fields) out[f.name] = copy(this.__s.d[f.name]);
      return out;
    }
    customData() {
      const out = {};
      for (const k of Object.keys(this.__s.d)) if (!fieldOf(this, k)) out[k] = copy(this.__s.d[k]);
      return out;
    }

    // ------------------------------------------------------------ visibility and export
    hide(...names) { for (const n of names.flat()) { this.__hide.add(String(n)); this.__show.delete(String(n)); } return this; }
    unhide(...names) { for (const n of names.flat()) { this.__show.add(String(n)); this.__hide.delete(String(n)); } return this; }
    withCustomData(on) { this.__s.custom = on !== false; return this; }
    ignoreEmailVisibility(on) { this.__ignoreEmail = on !== false; return this; }
    ignoreUnchangedFields() { return this; }

    expand() { return Object.assign({}, this.__s.x); }
    setExpand(m) { this.__s.x = {}; this.mergeExpand(m); }
    mergeExpand(m) {
      for (const k of Object.keys(m || {})) {
        const v = m[k];
        this.__s.x[k] = Array.isArray(v) ? v.map((x) => vb.toRecord(x, null)) : vb.toRecord(v, null);
      }
    }
    expandedOne(rel) {
      const v = this.__s.x[rel];
      if (v === undefined || v === null) return null;
      return Array.isArray(v) ? (v.length ? vb.toRecord(v[0], null) : null) : vb.toRecord(v, null);
    }
    expandedAll(rel) {
      const v = this.__s.x[rel];
      if (v === undefined || v === null) return [];
      return (Array.isArray(v) ? v : [v]).map((x) => vb.toRecord(x, null));
    }

    // The API JSON of the record: PocketBase's publicExport.
    publicExport() {
      const out = {};
      const s = this.__s;
      const c = s.c;
      const d = s.d;
      if (c) { out.collectionId = c.id; out.collectionName = c.name; }
      const auth = c && c.type === "auth";
      const emailShown = !auth || this.__ignoreEmail || d.emailVisibility === true || inSet(s.show, "email");
      if (c) {
        for (const f of c.fields) {
          const n = f.name;
          if (SECRET.has(n) && auth) continue;
          if (f.type === "password") continue;
          const hidden = (f.hidden && !inSet(s.show, n)) || inSet(s.hide, n);
          if (hidden) continue;
          if (n === "email" && auth && !emailShown) continue;
          // A field the record was read without (`?fields=`, hidden for the requester) stays out.
          if (!(n in d)) continue;
          out[n] = copy(d[n]);
        }
      }
      // A record whose collection came without its fields (a partial definition) shows its data.
      if (s.custom || !c || !c.fields.length) {
        for (const k of Object.keys(d)) {
          if (k in out || fieldOf(this, k) || inSet(s.hide, k) || SECRET.has(k)) continue;
          if (k === "email" && auth && !emailShown) continue;
          out[k] = copy(d[k]);
        }
      }
      const keys = Object.keys(s.x);
      if (keys.length) {
        const x = {};
        for (const k of keys) {
          const v = s.x[k];
          x[k] = Array.isArray(v) ? v.map((r) => (r && r.publicExport ? r.publicExport() : r)) : (v && v.publicExport ? v.publicExport() : v);
        }
        out.expand = x;
      }
      return out;
    }
    toJSON() { return this.publicExport(); }
    string() { return JSON.stringify(this); }
    toString() { return JSON.stringify(this); }

    // ------------------------------------------------------------ auth records
    email() { return this.getString("email"); }
    setEmail(v) { this.__s.d.email = String(v ?? ""); }
    emailVisibility() { return this.getBool("emailVisibility"); }
    setEmailVisibility(v) { this.__s.d.emailVisibility = !!v; }
    verified() { return this.getBool("verified"); }
    setVerified(v) { this.__s.d.verified = !!v; }
    tokenKey() { return this.getString("tokenKey"); }
    setTokenKey(v) { this.__s.d.tokenKey = String(v ?? ""); }
    refreshTokenKey() { this.__s.d.tokenKey = N.randomString(50, ALNUM); }
    setPassword(pw) {
      this.__s.plain = String(pw ?? "");
      this.__s.d.password = this.__s.plain;
      this.refreshTokenKey();
    }
    setRandomPassword() { const pw = N.randomString(30, ALNUM); this.setPassword(pw); return pw; }
    validatePassword(pw) {
      if (this.__s.plain !== null) return this.__s.plain !== "" && this.__s.plain === String(pw);
      const hash = this.__s.d.password;
      return N.data("verifyPassword", JSON.stringify({ hash: typeof hash === "string" ? hash : "", password: String(pw ?? "") })) === "true";
    }
    isSuperuser() { return !!this.__s.c && this.__s.c.name === "_superusers"; }
    __token(kind, extra) {
      return JSON.parse(N.data("token", JSON.stringify({ kind, collection: this.__s.c ? this.__s.c.id : "", id: this.id, tokenKey: this.tokenKey(), email: this.email(), extra })));
    }
    newAuthToken() { return this.__token("auth"); }
    newStaticAuthToken(seconds) { return this.__token("auth", { seconds: Number(seconds) || 0 }); }
    newVerificationToken() { return this.__token("verification"); }
    newPasswordResetToken() { return this.__token("passwordReset"); }
    newEmailChangeToken(email) { return this.__token("emailChange", { newEmail: String(email ?? "") }); }
    newFileToken() { return this.__token("file"); }
  }
  Object.setPrototypeOf(Record.prototype, MISSING);
  g.Record = Record;

  // What `__native.data` answers for a record (`{c: collectionJSON, d: fields}`) or an API
  // JSON object, as a Record not new.
  vb.toRecord = function (v, collection) {
    if (v === null || v === undefined) return null;
    if (v instanceof Record) return v;
    const c = collection || (v.collectionId ? vb.collectionById(v.collectionId) : null);
    const r = bare(c === undefined || c === null ? null : vb.makeCollection(c), {});
    r.__fill(v);
    const s = r.__s;
    s.o = copyData(s.d);
    s.isNew = false;
    return r;
  };
  vb.Record = Record;
  vb.normalizeValue = normalize;

  // An auth record for `e.auth` (as jsvm's request event builds it).
  vb.makeRecord = function (json, collection) {
    if (json === null || json === undefined) return null;
    return vb.toRecord(json, collection ? vb.makeCollection(collection) : null);
  };
})(globalThis);
