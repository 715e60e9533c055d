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
    return rec.__c && rec.__c.fields ? rec.__c.fields.getByName(name) : null;
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

  class Record {
    constructor(collection, data) {
      const c = collection === undefined || collection === null ? null : vb.makeCollection(collection);
      Object.defineProperty(this, "__c", { value: c, writable: true, enumerable: false });
      Object.defineProperty(this, "__d", { value: {}, writable: true, enumerable: false });
      // The record as loaded (PocketBase's original(): not refreshed by a save), and whether
      // it is yet to be inserted.
      Object.defineProperty(this, "__o", { value: {}, writable: true, enumerable: false });
      Object.defineProperty(this, "__new", { value: true, writable: true, enumerable: false });
      Object.defineProperty(this, "__x", { value: {}, writable: true, enumerable: false });
      Object.defineProperty(this, "__hide", { value: new Set(), writable: true, enumerable: false });
      Object.defineProperty(this, "__show", { value: new Set(), writable: true, enumerable: false });
      Object.defineProperty(this, "__custom", { value: false, writable: true, enumerable: false });
      Object.defineProperty(this, "__plain", { value: null, writable: true, enumerable: false });
      if (c) for (const f of c.fields) this.__d[f.name] = zero(f);
      if (data && typeof data === "object") this.load(data);
    }

    get id() { return this.__d.id === undefined || this.__d.id === null ? "" : String(this.__d.id); }
    set id(v) { this.__d.id = String(v ?? ""); }

    collection() { return this.__c; }
    tableName() { return this.__c ? this.__c.name : ""; }
    isNew() { return this.__new; }
    markAsNew() { this.__new = true; }
    markAsNotNew() { this.__new = false; }
    pk() { return this.id; }
    lastSavedPK() { return this.__new ? "" : this.id; }

    get(name) {
      name = String(name);
      if (name === "expand") return this.expand();
      const f = fieldOf(this, name);
      const v = this.__d[name];
      if (!f) return v === undefined ? null : v;
      if (f.type === "date" || f.type === "autodate") return new g.DateTime(v === undefined || v === "" ? "" : v);
      if (f.type === "json") return jsonRaw(v === undefined ? null : v);
      // The stored hash never shows (PocketBase answers ""); a password just set does.
      if (f.type === "password") return this.__plain === null ? "" : this.__plain;
      if (v === undefined) return null;
      return Array.isArray(v) ? v.slice() : v;
    }
    getRaw(name) { const v = this.__d[String(name)]; return v === undefined ? null : v; }
    getString(name) {
      const f = fieldOf(this, name);
      const v = this.__d[name];
      if (v === null || v === undefined) return "";
      if (f && f.type === "password") return this.__plain === null ? "" : this.__plain;
      if (f && f.type === "json") return JSON.stringify(v);
      if (Array.isArray(v)) return JSON.stringify(v);
      if (typeof v === "object") return JSON.stringify(v);
      return String(v);
    }
    getInt(name) { const n = Number(this.__d[name]); return Number.isFinite(n) ? Math.trunc(n) : 0; }
    getFloat(name) { const n = Number(this.__d[name]); return Number.isFinite(n) ? n : 0; }
    getBool(name) { const v = this.__d[name]; return v === true || v === 1 || v === "true" || v === "1"; }
    getDateTime(name) { const v = this.__d[name]; return new g.DateTime(v === undefined || v === null ? "" : v); }
    getStringSlice(name) { return toList(this.__d[name]); }
    getGeoPoint(name) { return this.__d[name] || { lon: 0, lat: 0 }; }
    getUnsavedFiles() { return []; }

    set(key, value) {
      key = String(key);
      if (key === "expand") { this.setExpand(value); return; }
      let mode = "";
      let name = key;
      if (key.endsWith(":autogenerate")) {
        name = key.slice(0, -13);
        const f = fieldOf(this, name);
        if (f && f.type === "text" && f.autogeneratePattern) this.__d[name] = N.randomString(15, "abcdefghijklmnopqrstuvwxyz0123456789");
        return;
      }
      if (key.startsWith("+")) { mode = "prepend"; name = key.slice(1); }
      else if (key.endsWith("+")) { mode = "append"; name = key.slice(0, -1); }
      else if (key.endsWith("-")) { mode = "subtract"; name = key.slice(0, -1); }
      const f = fieldOf(this, name);
      if (name === "password" && f && f.type === "password") { this.setPassword(value); return; }
      if (!mode) { this.__d[name] = normalize(f, value); return; }
      const cur = this.__d[name];
      if (f && f.type === "number") {
        const n = Number(value) || 0;
        this.__d[name] = (Number(cur) || 0) + (mode === "subtract" ? -n : n);
        return;
      }
      const list = toList(cur);
      const add = toList(value);
      let next;
      if (mode === "append") next = list.concat(add);
      else if (mode === "prepend") next = add.concat(list);
      else next = list.filter((x) => !add.includes(x));
      this.__d[name] = f ? normalize(f, multiple(f) ? Array.from(new Set(next)) : next) : next;
    }
    load(data) {
      for (const k of Object.keys(data || {})) this.set(k, data[k]);
    }
    // Replaces the values with what the store answered (no modifiers, no normalising).
    __fill(data) {
      for (const k of Object.keys(data || {})) {
        if (k === "collectionId" || k === "collectionName") continue;
        if (k === "expand") { this.__x = data.expand || {}; continue; }
        this.__d[k] = data[k];
      }
    }

    original() {
      const r = new Record(this.__c);
      r.__fill(copy(this.__o));
      r.__o = copy(this.__o);
      r.__new = this.__new;
      return r;
    }
    fresh() {
      const r = new Record(this.__c);
      if (this.__c) for (const f of this.__c.fields) if (f.name in this.__d) r.__d[f.name] = copy(this.__d[f.name]);
      r.__o = copy(this.__o);
      r.__new = this.__new;
      return r;
    }
    clone() {
      const r = new Record(this.__c);
      r.__d = copy(this.__d);
      r.__o = copy(this.__o);
      r.__new = this.__new;
      r.__x = Object.assign({}, this.__x);
      r.__hide = new Set(this.__hide);
      r.__show = new Set(this.__show);
      r.__custom = this.__custom;
      r.__plain = this.__plain;
      return r;
    }
    fieldsData() {
      const out = {};
      if (this.__c) for (const f of this.__c.fields) out[f.name] = copy(this.__d[f.name]);
      return out;
    }
    customData() {
      const out = {};
      for (const k of Object.keys(this.__d)) if (!fieldOf(this, k)) out[k] = copy(this.__d[k]);
      return out;
    }

    // ------------------------------------------------------------ visibility and export
    hide(...names) { for (const n of names.flat()) { this.__hide.add(String(n)); this.__show.delete(String(n)); } return this; }
    unhide(...names) { for (const n of names.flat()) { this.__show.add(String(n)); this.__hide.delete(String(n)); } return this; }
    withCustomData(on) { this.__custom = on !== false; return this; }
    ignoreEmailVisibility(on) { this.__ignoreEmail = on !== false; return this; }
    ignoreUnchangedFields() { return this; }

    expand() { return Object.assign({}, this.__x); }
    setExpand(m) { this.__x = {}; this.mergeExpand(m); }
    mergeExpand(m) {
      for (const k of Object.keys(m || {})) {
        const v = m[k];
        this.__x[k] = Array.isArray(v) ? v.map((x) => vb.toRecord(x, null)) : vb.toRecord(v, null);
      }
    }
    expandedOne(rel) {
      const v = this.__x[rel];
      if (v === undefined || v === null) return null;
      return Array.isArray(v) ? (v.length ? vb.toRecord(v[0], null) : null) : vb.toRecord(v, null);
    }
    expandedAll(rel) {
      const v = this.__x[rel];
      if (v === undefined || v === null) return [];
      return (Array.isArray(v) ? v : [v]).map((x) => vb.toRecord(x, null));
    }

    // The API JSON of the record: PocketBase's publicExport.
    publicExport() {
      const out = {};
      const c = this.__c;
      if (c) { out.collectionId = c.id; out.collectionName = c.name; }
      const auth = c && c.type === "auth";
      const emailShown = !auth || this.__ignoreEmail || this.__d.emailVisibility === true || this.__show.has("email");
      if (c) {
        for (const f of c.fields) {
          const n = f.name;
          if (SECRET.has(n) && auth) continue;
          if (f.type === "password") continue;
          const hidden = (f.hidden && !this.__show.has(n)) || this.__hide.has(n);
          if (hidden) continue;
          if (n === "email" && auth && !emailShown) continue;
          // A field the record was read without (`?fields=`, hidden for the requester) stays out.
          if (!(n in this.__d)) continue;
          out[n] = copy(this.__d[n]);
        }
      }
      // A record whose collection came without its fields (a partial definition) shows its data.
      if (this.__custom || !c || !c.fields.length) {
        for (const k of Object.keys(this.__d)) {
          if (k in out || fieldOf(this, k) || this.__hide.has(k) || SECRET.has(k)) continue;
          if (k === "email" && auth && !emailShown) continue;
          out[k] = copy(this.__d[k]);
        }
      }
      const keys = Object.keys(this.__x);
      if (keys.length) {
        const x = {};
        for (const k of keys) {
          const v = this.__x[k];
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
    setEmail(v) { this.__d.email = String(v ?? ""); }
    emailVisibility() { return this.getBool("emailVisibility"); }
    setEmailVisibility(v) { this.__d.emailVisibility = !!v; }
    verified() { return this.getBool("verified"); }
    setVerified(v) { this.__d.verified = !!v; }
    tokenKey() { return this.getString("tokenKey"); }
    setTokenKey(v) { this.__d.tokenKey = String(v ?? ""); }
    refreshTokenKey() { this.__d.tokenKey = N.randomString(50, ALNUM); }
    setPassword(pw) {
      this.__plain = String(pw ?? "");
      this.__d.password = this.__plain;
      this.refreshTokenKey();
    }
    setRandomPassword() { const pw = N.randomString(30, ALNUM); this.setPassword(pw); return pw; }
    validatePassword(pw) {
      if (this.__plain !== null) return this.__plain !== "" && this.__plain === String(pw);
      const hash = this.__d.password;
      return N.data("verifyPassword", JSON.stringify({ hash: typeof hash === "string" ? hash : "", password: String(pw ?? "") })) === "true";
    }
    isSuperuser() { return !!this.__c && this.__c.name === "_superusers"; }
    __token(kind, extra) {
      return JSON.parse(N.data("token", JSON.stringify({ kind, collection: this.__c ? this.__c.id : "", id: this.id, tokenKey: this.tokenKey(), email: this.email(), extra })));
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
    const r = new Record(collection || (v.collectionId ? vb.collectionById(v.collectionId) : null));
    r.__d = {};
    r.__fill(v);
    r.__o = copy(r.__d);
    r.__new = false;
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
